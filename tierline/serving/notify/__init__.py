"""Handoff side effects: notifications to agents and ticket exports to a help desk, durable
in the notify outbox (``outbox.py``); the notifiers (``notify.py``) and the Zendesk sink
(``sinks.py``) make one HTTP delivery each."""
