"""Handoff side effects: notifications to agents and external ticket sinks."""
