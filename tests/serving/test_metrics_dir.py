"""The multiprocess metrics folder ``tierline serve`` sets up (``tierline.serving.metrics_dir``).

Run in a fresh interpreter: prometheus_client chooses files or memory once, at its import,
and this test process imported it long ago. Two processes adding up over the folder:
``test_worker_processes_agree.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent('''
    import json, os, sys
    from pathlib import Path
    from tierline.serving.metrics_dir import ENV, multiprocess_metrics

    out = {}
    given = Path(sys.argv[1])
    given.mkdir()
    (given / "counter_1.db").write_bytes(b"a previous run")
    (given / "notes.txt").write_text("not ours")
    with multiprocess_metrics(given) as folder:
        out["given"] = [folder == given, os.environ[ENV] == str(given),
                        sorted(p.name for p in given.iterdir())]
    out["given_after"] = [ENV in os.environ, given.is_dir()]

    with multiprocess_metrics(None) as temp:
        from prometheus_client import generate_latest
        from tierline.serving.metrics import METRICS, MULTIPROCESS_DIR, exposition_registry
        METRICS.messages_in.inc(3)
        METRICS.served_generation.set(7)
        text = generate_latest(exposition_registry()).decode()
        out["temp"] = [MULTIPROCESS_DIR == str(temp), sorted(p.name for p in temp.iterdir()),
                       "tierline_messages_in_total 3.0" in text,
                       f'tierline_served_generation{{pid="{os.getpid()}"}} 7.0' in text]
    out["temp_after"] = [ENV in os.environ, temp.exists()]
    try:
        with multiprocess_metrics(None):
            pass
    except RuntimeError as exc:
        out["late"] = str(exc)
    print(json.dumps(out))
''')


def test_the_folder_starts_empty_and_a_temporary_one_is_removed(tmp_path):
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "metrics")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.splitlines()[-1])
    # A configured folder: the previous run's values deleted, anything else left; it stays.
    assert out["given"] == [True, True, ["notes.txt"]]
    assert out["given_after"] == [False, True]
    # The default: a temporary folder with this process's files, summed by /metrics, removed.
    folder_ok, files, summed, per_process = out["temp"]
    assert folder_ok and summed and per_process
    assert any(f.startswith("counter_") for f in files), files
    assert out["temp_after"] == [False, False]
    # Too late once prometheus_client is imported: its values would not go to the folder.
    assert "imported before" in out["late"]
