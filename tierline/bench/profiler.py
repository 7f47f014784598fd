"""py-spy (the ``bench`` extra) on the service's processes, and where its samples went."""

from __future__ import annotations

import collections
import logging
import shutil
import subprocess
import sys
from pathlib import Path

from tierline import children

log = logging.getLogger(__name__)


def profile_service(pid: int, seconds: float, out: Path) -> subprocess.Popen | None:
    """Start py-spy on process ``pid`` and its children (the service's processes) for
    ``seconds``, writing collapsed stacks to ``out``; None when py-spy is not installed."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        log.warning("py-spy not installed: no profile (pip install -e '.[bench]')")
        return None
    # --gil: only the thread holding the GIL is sampled, i.e. where the Python CPU time goes
    # (threads waiting on the database or the network are left out).
    return children.start([py_spy, "record", "--pid", str(pid), "--subprocesses",
                           "--duration", str(int(seconds)), "--rate", "200", "--format", "raw",
                           "--gil", "--nonblocking", "-o", str(out)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


#: Where tierline's own functions live (``serving.``, ``nlu.`` in trees before the ``tierline`` package).
OWN_PACKAGES = ("tierline/serving", "tierline/nlu", "serving", "nlu")


def summarise_profile(raw: Path, top: int = 20) -> list[dict]:
    """Where the time goes, from py-spy's collapsed stacks: the functions with the largest share
    of samples on top of the stack (self), and tierline's own functions (``OWN_PACKAGES``)
    by their share of samples anywhere on the stack (inclusive)."""
    inclusive: collections.Counter = collections.Counter()
    own: collections.Counter = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = stack.split(";")
        total += int(count)
        own[frames[-1]] += int(count)
        for frame in set(frames):
            inclusive[frame] += int(count)
    if not total:
        return []
    # Old trees (a --baseline) had top-level serving/ and nlu/; now they are under tierline/.
    ours = [f for f, _ in inclusive.most_common()
            if any(f"({package}/" in f for package in OWN_PACKAGES)][:top]
    return ([{"kind": "self", "function": f, "pct": 100 * c / total} for f, c in own.most_common(top)]
            + [{"kind": "tierline, inclusive", "function": f, "pct": 100 * inclusive[f] / total}
               for f in ours])

