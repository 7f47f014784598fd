"""Loopback ports and readiness, for the tests that start real servers: the benchmark's own
helpers (one way to find a free port and to wait for ``/readyz``)."""

from __future__ import annotations

from tierline.bench.load import free_port, wait_ready

__all__ = ["free_port", "wait_ready"]
