"""The ``tierline`` command line, run as a user runs it."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

TIERLINE = shutil.which("tierline") or str(Path(sys.executable).parent / "tierline")


def test_analyze_prints_one_json_object_per_text():
    out = subprocess.run([TIERLINE, "analyze", "where is my order", "THIS IS USELESS!!!"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.strip().splitlines()]
    assert len(lines) == 2
    assert lines[0]["intent"] == "track_order"
    assert set(lines[0]) >= {"intent", "intent_confidence", "intents", "frustration", "cues"}
    assert lines[1]["frustration"] > lines[0]["frustration"]


def test_analyze_with_a_missing_bundle_fails_clearly(tmp_path):
    out = subprocess.run([TIERLINE, "analyze", "hi", "--model", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "no model bundle" in out.stderr
