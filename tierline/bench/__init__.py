"""tierline's benchmarks and load tooling (``tierline bench``, ``make bench``).

Never imported at run time: ``serving``, ``nlu`` and ``training`` do not import it (tests hold
them to that), and the CLI imports it inside the ``bench`` commands. It may import
``serving``, ``nlu`` and ``training`` (whose ``timing`` holds the latency loops and the machine
description that the bundle comparison uses too).

- ``nlu``: the NLU engines side by side (``bench nlu``) and whole turns (``bench turn``).
- ``webhook``: signed deliveries to an in-process service (``bench webhook``).
- ``http``: the end-to-end benchmark of ``tierline serve`` on PostgreSQL (``bench http``).
- ``load``: the load generator (signed deliveries over raw keep-alive HTTP/1.1).
- ``fake_graph``: the fake Graph API the service sends its replies to during ``bench http``.
- ``postgres``: a fresh PostgreSQL database per run.
- ``meters``: CPU seconds from ``/proc`` (service, PostgreSQL, load generator).
- ``profiler``: py-spy on the service's processes and a summary of its samples.
"""
