"""Commands that start a process stop it when they are stopped (``tierline.children``).

``tierline mlflow-ui`` is started on a free port and sent SIGTERM: MLflow's server, and every
process of its group, must be gone. The same for a small command built on
:func:`tierline.children.child` whose child starts a grandchild, on SIGINT, SIGHUP and a plain
exit.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from tests.net import free_port
from tests.test_cli import TIERLINE
from tierline.children import group_alive


def running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def wait_for_line(path: Path, pattern: str, proc: subprocess.Popen, timeout: float = 120.0
                  ) -> re.Match:
    """The first match of ``pattern`` in the file ``proc`` writes its output to."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(pattern, path.read_text())
        if found:
            return found
        assert proc.poll() is None, f"exited {proc.returncode}: {path.read_text()[-2000:]}"
        time.sleep(0.1)
    raise AssertionError(f"no {pattern!r} in {timeout:.0f}s: {path.read_text()[-2000:]}")


def gone(pids: list[int], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while any(running(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_mlflow_ui_stops_its_server_on_sigterm(tmp_path):
    port = free_port()
    out = tmp_path / "out.txt"
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    with open(out, "w") as fh:
        proc = subprocess.Popen([TIERLINE, "mlflow-ui", "--port", str(port)], stdout=fh,
                                stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    try:
        server = int(wait_for_line(out, r"server pid (\d+)", proc).group(1))
        assert running(server) and group_alive(server)
        deadline = time.monotonic() + 180
        while True:  # the UI answers: the server and its workers are up
            try:
                if httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, out.read_text()[-2000:]
            time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 128 + signal.SIGTERM
        assert not running(server), "the MLflow server outlived `tierline mlflow-ui`"
        assert not group_alive(server), "a process of the server's group is still running"
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


#: A command that starts a shell which starts a grandchild (``sleep``), prints their pids and
#: then waits, or exits when told to.
COMMAND = textwrap.dedent("""
    import sys
    from tierline import children

    with children.child(["sh", "-c", "sleep 300 & echo grandchild $!; wait"],
                        stdout=sys.stdout.fileno()) as proc:
        print("child", proc.pid, flush=True)
        if sys.argv[1] == "exit":
            import time
            time.sleep(1.0)
            sys.exit(0)
        proc.wait()
""")


def _default_ctrl_c() -> None:  # runs in the child, between fork and exec
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("how", ["SIGINT", "SIGHUP", "SIGTERM", "exit"])
def test_a_child_and_its_own_children_stop_with_the_command(tmp_path, how):
    out = tmp_path / "out.txt"
    with open(out, "w") as fh:
        # Started as from a terminal, with Ctrl-C's default disposition: a process inherits an
        # ignored SIGINT (a pytest worker's, a background job's), and Python then never raises
        # KeyboardInterrupt. Two fresh-clone runs of the whole suite saw the SIGINT case
        # outlive the 30 s wait; neither the file alone nor beside the Ray test did, so this
        # inherited disposition is a suspected cause, not a confirmed one.
        proc = subprocess.Popen([sys.executable, "-c", COMMAND, how], stdout=fh,
                                stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parents[1],
                                preexec_fn=_default_ctrl_c)
    try:
        # "^": the shell may print "grandchild N" before Python prints "child N", and a bare
        # "child (\d+)" reads the grandchild's line.
        child = int(wait_for_line(out, r"(?m)^child (\d+)", proc, 60).group(1))
        grandchild = int(wait_for_line(out, r"grandchild (\d+)", proc, 60).group(1))
        assert running(child) and running(grandchild)
        if how != "exit":
            proc.send_signal(getattr(signal, how))
        proc.wait(30)
        assert gone([child, grandchild]), out.read_text()
        assert not group_alive(child)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
