"""The folder where the processes of ``tierline serve --workers N`` keep their Prometheus values.

With ``TIERLINE_WORKERS`` processes each counted its own messages, and a scrape of
``/metrics`` reached one of them: the counters showed one process's share, a different one at
each scrape. prometheus_client's multiprocess mode fixes that: every process writes its values
to memory-mapped files in ``PROMETHEUS_MULTIPROC_DIR``, and ``/metrics`` adds them up
(``tierline.serving.metrics``).

prometheus_client decides once, when it is first imported, whether values go to files, so the
variable must be set in the environment before any process imports it: ``tierline serve`` does
it here, before uvicorn starts its worker processes (they inherit the environment). This module
must therefore not import prometheus_client itself.

Only with several processes: one process has nothing to add up, and its uvicorn ends it by
raising the SIGTERM it drained for again, so it would not live to remove a temporary folder
(uvicorn's parent of several processes returns normally).

The folder must start empty for each run of the service: values a previous run left there
would be added to this one's.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ENV = "PROMETHEUS_MULTIPROC_DIR"


@contextmanager
def multiprocess_metrics(directory: Path | None) -> Iterator[Path]:
    """Point ``PROMETHEUS_MULTIPROC_DIR`` at an empty folder while the block runs.

    ``directory`` None: a new temporary folder, removed afterwards. A given folder is created
    if needed and its ``*.db`` files from a previous run are deleted (one service per folder);
    it stays. A run killed with ``kill -9`` leaves its temporary folder behind (under systemd's
    ``PrivateTmp``, the unit's own /tmp, removed when the service stops).
    """
    if "prometheus_client" in sys.modules:
        raise RuntimeError("prometheus_client was imported before its multiprocess folder was set")
    owned = directory is None
    path = Path(tempfile.mkdtemp(prefix="tierline-metrics-")) if owned else directory
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()
    previous = os.environ.get(ENV)
    os.environ[ENV] = str(path)
    try:
        yield path
    finally:
        if previous is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = previous
        if owned:
            shutil.rmtree(path, ignore_errors=True)
