"""Child processes the command line starts, stopped with the command that started them.

``tierline mlflow-ui`` runs MLflow's server and ``tierline bench http`` runs ``tierline serve``
(and py-spy): long-lived children that must not outlive the command. A plain
``subprocess.run`` left MLflow's server running when the command was stopped with SIGTERM
(Python's default SIGTERM handler ends the process at once, no ``finally`` runs), and a
server's own worker processes were never the command's to stop.

So each child here is

- started in a process group of its own (a new session), so that its own children, a
  server's workers, are stopped with it, and a terminal's Ctrl-C reaches it only through the
  command;
- asked to die with its parent on Linux (``PR_SET_PDEATHSIG``: a ``kill -9`` of the command
  sends it SIGTERM);
- stopped when the command exits, on SIGINT, SIGTERM or SIGHUP (:func:`child`,
  :func:`signals_exit`, and an ``atexit`` hook for any child still registered): SIGTERM to the
  group, then SIGKILL to whatever is left of it after a grace period.
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)
#: Seconds a stopped group gets between SIGTERM and SIGKILL.
GRACE_SECONDS = 10.0
PR_SET_PDEATHSIG = 1

_running: set[subprocess.Popen] = set()
_lock = threading.Lock()


def _die_with_parent() -> None:  # runs in the child, between fork and exec
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def start(args: Sequence[str], **popen_kwargs) -> subprocess.Popen:
    """Start ``args`` in a process group of its own, registered to be stopped at exit."""
    proc = subprocess.Popen(list(args), start_new_session=True, preexec_fn=_die_with_parent,
                            **popen_kwargs)
    with _lock:
        _running.add(proc)
    return proc


def group_alive(pgid: int) -> bool:
    """Whether any process of group ``pgid`` is still running (zombies waiting to be reaped do
    not count: on Linux the group's members are read from ``/proc``)."""
    proc_dir = Path("/proc")
    if not proc_dir.is_dir():
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    for stat in proc_dir.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop(proc: subprocess.Popen, grace: float = GRACE_SECONDS) -> int | None:
    """Stop ``proc`` and its process group: SIGTERM, then SIGKILL after ``grace`` seconds to
    whatever of the group still runs. Reaps ``proc``; returns its exit code."""
    pgid = proc.pid  # a session leader's group id is its pid
    if proc.poll() is None or group_alive(pgid):
        _signal_group(pgid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while proc.poll() is None or group_alive(pgid):
            if time.monotonic() > deadline:
                log.warning("process group %d still running %.0f s after SIGTERM: SIGKILL",
                            pgid, grace)
                _signal_group(pgid, signal.SIGKILL)
                break
            time.sleep(0.05)
    code = proc.wait()
    with _lock:
        _running.discard(proc)
    return code


@atexit.register
def stop_all() -> None:
    """Stop every child still running (at interpreter exit)."""
    with _lock:
        running = list(_running)
    for proc in running:
        stop(proc)


@contextmanager
def signals_exit() -> Iterator[None]:
    """Inside, SIGTERM and SIGHUP end the command like Ctrl-C does (SIGINT raises
    KeyboardInterrupt): ``SystemExit(128 + signal)`` in the main thread, so that ``finally``
    blocks and ``atexit`` hooks run and stop the children. Only the first signal is raised; the
    next ones do not interrupt the stopping. Does nothing outside the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    raised = threading.Event()

    def handler(signum, frame) -> None:
        if not raised.is_set():
            raised.set()
            raise SystemExit(128 + signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextmanager
def child(args: Sequence[str], grace: float = GRACE_SECONDS, **popen_kwargs
          ) -> Iterator[subprocess.Popen]:
    """``args`` running for the duration of the block, stopped (with its process group) when
    the block ends for any reason: normal exit, an exception, SIGINT, SIGTERM or SIGHUP."""
    with signals_exit():
        proc = start(args, **popen_kwargs)
        try:
            yield proc
        finally:
            # A second signal while stopping must not leave the group running.
            ignored = {sig: signal.signal(sig, signal.SIG_IGN)
                       for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)} \
                if threading.current_thread() is threading.main_thread() else {}
            try:
                stop(proc, grace)
            finally:
                for sig, old in ignored.items():
                    signal.signal(sig, old)
