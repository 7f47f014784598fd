"""Batch evaluation of a chat log: streaming, report contents, bad input with line numbers."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nlu.engine import TurnEngine
from training.batch_eval import InputError, evaluate_conversations, read_conversations
from training.simulator import SIMULATED_DIR, load_rows


def write_log(path: Path, conversations: list[dict]) -> Path:
    path.write_text("\n".join(json.dumps(c) for c in conversations) + "\n")
    return path


@pytest.fixture(scope="module")
def engine(analyzer):
    return TurnEngine.load(analyzer=analyzer)


def simulated_log(path: Path, limit: int = 120) -> Path:
    """Held-out simulated conversations as a chat log with the lead's labels."""
    convs: dict[str, dict] = {}
    for r in load_rows(SIMULATED_DIR / "policy_test.jsonl"):
        c = convs.setdefault(r["conversation_id"], {"conversation_id": r["conversation_id"],
                                                   "customer": {"id": "x", "tier": r["tier"]},
                                                   "messages": []})
        c["messages"].append({"text": r["text"], "at": r["at"], "escalate": bool(r["label"])})
    return write_log(path, list(convs.values())[:limit])


def test_report_on_labelled_log(engine, tmp_path):
    log = simulated_log(tmp_path / "log.jsonl")
    report = evaluate_conversations(log, engine, tmp_path / "out")
    assert report["conversations"] == 120 and report["turns"] > 120
    assert 0 < report["escalation_rate_conversations"] < 1
    assert report["handoff_reasons"] and sum(report["handoff_at_turn"].values()) > 0
    agreement = report["agreement_with_labels"]
    assert agreement["roc_auc"] > 0.8 and agreement["labelled_turns"] == report["turns"]
    assert report["throughput"]["messages_per_s"] > 0
    html = (tmp_path / "out" / "report.html").read_text()
    assert "<img" in html and "Why the policy hands off" in html
    assert json.loads((tmp_path / "out" / "report.json").read_text())["turns"] == report["turns"]


def test_unlabelled_log_has_no_agreement_section(engine, tmp_path):
    log = write_log(tmp_path / "l.jsonl", [{"conversation_id": "a", "messages": [{"text": "hi"}]}])
    assert evaluate_conversations(log, engine, tmp_path / "o")["agreement_with_labels"] is None


@pytest.mark.parametrize("content,expected", [
    ('{"conversation_id": "a", "messages": [{"text": "hi"}]}\n{"conversation_id": "b", "mess', "line 2: not valid JSON"),
    ('{"conversation_id": "a", "messages": [{"text": "hi", "colour": "red"}]}\n', "line 1: Extra inputs are not permitted (at messages.0.colour)"),
    ('{"conversation_id": "a", "messages": []}\n', "line 1:"),
    ("\n\n", "empty file"),
])
def test_bad_logs_fail_with_line_numbers(tmp_path, content, expected):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(InputError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        list(read_conversations(path))


def test_cli_reports_bad_input_clearly(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text("{oops\n")
    exe = str(Path(sys.executable).parent / "tierline")
    out = subprocess.run([exe, "evaluate", "conversations", str(path), "--out", str(tmp_path / "o")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "line 1: not valid JSON" in out.stderr
