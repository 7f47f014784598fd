"""The app factory ``tierline serve`` runs: the app, plus making a worker process die with its
parent.

With ``--workers N`` uvicorn's parent process supervises N spawned workers. When the parent
is stopped normally it stops them; when it is killed (``kill -9``, the OOM killer) nobody does,
and the workers went on as orphans holding the port, the database pool and jobs' leases,
so a restarted service ran beside them. A worker now asks the kernel for SIGTERM when its
parent dies (``prctl(PR_SET_PDEATHSIG)`` on Linux; a thread watching the parent elsewhere),
and SIGTERM drains it like any shutdown.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import multiprocessing
import os
import signal
import sys
import threading

from fastapi import FastAPI

from tierline.serving.app import create_app

log = logging.getLogger(__name__)
PR_SET_PDEATHSIG = 1


def create_served_app() -> FastAPI:
    """``create_app()`` for ``tierline serve``; in a worker process, tied to its parent first."""
    parent = multiprocessing.parent_process()
    if parent is not None:  # a worker spawned by uvicorn's supervisor
        die_with_parent(parent.pid)
    return create_app()


def die_with_parent(parent_pid: int | None) -> None:
    """Have SIGTERM sent to this process when its parent dies."""
    if sys.platform.startswith("linux") and _prctl_deathsig(signal.SIGTERM):
        # The parent may have died before the request: then nothing would ever be sent.
        if parent_pid is not None and os.getppid() != parent_pid:
            os.kill(os.getpid(), signal.SIGTERM)
        return
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True,
                     name="tierline-parent-watch").start()


def _prctl_deathsig(sig: int) -> bool:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent_pid: int) -> None:
    """Where prctl is missing: poll the parent's pid once a second."""
    while os.getppid() == parent_pid:
        threading.Event().wait(1.0)
    log.warning("parent process %d is gone: stopping this worker", parent_pid)
    os.kill(os.getpid(), signal.SIGTERM)
