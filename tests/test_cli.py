"""The ``tierline`` command line, run as a user runs it."""

import json
import os
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


def test_chat_replays_a_piped_conversation_as_json_lines():
    script = "hello\n1\nND-100000\nTHIS IS USELESS!!! I WANT A HUMAN\n"
    out = subprocess.run([TIERLINE, "chat", "--at", "2026-11-24 11:00"], input=script,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    turns = [json.loads(line) for line in out.stdout.strip().splitlines()]
    assert [t["text"] for t in turns] == script.strip().split("\n")
    assert {"reply", "intent", "frustration", "p_escalate", "escalate", "reasons", "team"} <= set(turns[0])
    assert "ND-100000" in turns[2]["reply"]
    assert turns[3]["escalate"] and not turns[0]["escalate"]
    assert turns[3]["reasons"][0] == "customer asked for a human agent"


def test_chat_off_hours_in_italian_for_a_vip():
    out = subprocess.run([TIERLINE, "chat", "--tier", "vip", "--lang", "it", "--at",
                          "2026-11-28 22:00"], input="operatore\n", capture_output=True,
                         text=True, timeout=120)
    turn = json.loads(out.stdout.strip())
    assert turn["escalate"] and turn["off_hours"]
    assert "non è disponibile" in turn["reply"]


def test_simulate_labels_then_retrain_dry_run(tmp_path):
    """The retraining loop from the command line: labels into a database, a gated dry run."""
    exe = TIERLINE
    url = f"sqlite:///{tmp_path / 'svc.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    filled = subprocess.run([exe, "simulate-labels", "--database-url", url, "--conversations", "300"],
                            capture_output=True, text=True, timeout=300, env=env)
    assert filled.returncode == 0, filled.stderr
    assert "labels written" in filled.stdout
    out = subprocess.run([exe, "retrain", "--database-url", url, "--out", str(tmp_path / "run"),
                          "--dry-run"], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr
    # One line per stack with labels (only the English pair decided these), then the reports.
    reports = json.loads(out.stdout[out.stdout.index("{"):])
    assert list(reports) == ["default"]
    report = reports["default"]
    # The verdict turns on a paired z near its bar, which the int8 numerics of one CPU or
    # another decide (test_retrain.py); what the command must do is report it, register nothing.
    verdict = "PROMOTE" if report["promote"] else "REJECT"
    assert f"default: dry run, the gate would {verdict}; nothing registered" in out.stdout
    assert report["registered_version"] is None
    assert report["dry_run"] is True and report["mlflow_run_id"]
    assert report["disputed_slices"][0]["slice"] == "billing/non_vip"
    assert report["challenger"]["agent_brier"] < report["champion"]["agent_brier"]


def test_retrain_without_labels_says_so_in_one_line(tmp_path):
    """No agent labels (or too few): one line on stderr and exit 1, never a traceback."""
    from tierline.serving.storage.db import Database

    url = f"sqlite:///{tmp_path / 'empty.db'}"
    Database(url).migrate()
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    for args, message in (([], "no agent labels in"),
                          (["--stack", "multilingual"], "no agent labels in the database for the "
                                                        "multilingual model stack")):
        out = subprocess.run([TIERLINE, "retrain", "--database-url", url, "--out",
                              str(tmp_path / "run"), *args], capture_output=True, text=True,
                             timeout=300, env=env)
        assert out.returncode == 1, out.stderr
        errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and message in errors[0], out.stderr
        assert "Traceback" not in out.stderr
