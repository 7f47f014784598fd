"""What the figures cost: CPU seconds of processes read from ``/proc`` (Linux: user + system),
for the service's process tree, PostgreSQL's backends of one database and the load generator."""

from __future__ import annotations

import os
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2:].split()  # fields after "pid (comm) "


def process_tree(root: int) -> list[int]:
    """``root`` and its descendants (uvicorn's worker processes)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))):
            parents.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += parents.get(pid, [])
    return tree


def postgres_backends(database: str) -> list[int]:
    """PostgreSQL server processes serving ``database`` (``postgres: user db host ...``)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if cmd.startswith("postgres:") and f" {database} " in cmd:
                pids.append(int(entry.name))
    return pids


def cpu_seconds(pids: list[int]) -> float:
    """Sum of user + system CPU time of these processes."""
    total = 0
    for pid in pids:
        if fields := _stat(pid):
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _TICKS


class CpuMeter:
    """CPU seconds spent by the service, PostgreSQL (this database's backends) and the load
    generator itself between ``start()`` and ``stop()``."""

    def __init__(self, service_pid: int, database: str) -> None:
        self.service_pid, self.database = service_pid, database

    def _now(self) -> dict[str, float]:
        me = os.times()
        return {"service": cpu_seconds(process_tree(self.service_pid)),
                "postgres": cpu_seconds(postgres_backends(self.database)),
                "loadgen": me.user + me.system}

    def start(self) -> None:
        self._start = self._now()

    def stop(self) -> dict[str, float]:
        end = self._now()
        # PostgreSQL backends come and go with the pool: a backend that ended is not counted.
        return {k: max(0.0, end[k] - self._start[k]) for k in end}

