"""Chat logs labelled with the turn by which a human is needed: recall, false handoffs, teams.

A conversation of ``tierline evaluate conversations`` may carry ``language`` and ``expected``
(``handoff_by_turn``: the 1-based customer turn by which a careful supervisor says a human must
have it, ``null`` if the bot should keep it; ``team``). The held-out suite
``data/heldout/conversations.jsonl`` is written that way. For each language, and for the
engine beside keyword rules as no-code bot builders write them (measured in the same run):

- recall by the expected turn: conversations that need a human, handed off at or before it;
- false handoffs: conversations that do not need one, handed off anyway;
- team accuracy: handed-off conversations that need a human, routed to the expected team;
- calibration of P(escalate) on the turns up to the engine's handoff, each labelled 1 from the
  expected turn on (ECE and a reliability diagram).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from tierline.nlu.flow import BotFlow
from tierline.training.calibration import expected_calibration_error, reliability_curve
from tierline.training.evaluate import keyword_frustration, keyword_intent


class Expected(BaseModel):
    """What should happen in a labelled conversation."""

    model_config = ConfigDict(extra="forbid")

    handoff_by_turn: int | None = Field(None, ge=1, description="1-based customer turn")
    team: str | None = None
    trigger: str = ""
    kind: str = ""
    note: str = ""


#: Keyword rules of no-code bot builders, in the four languages: a human word, a sensitive word,
#: ALL CAPS or a negative word (``keyword_frustration``), or the menu digit "3".
KEYWORD_HUMAN = re.compile(
    r"\b(agent[ei]?|human[oa]?|operat(?:or|ore|ora)|operador[a]?|person[a]?|pessoa|"
    r"representative|atendente|asesor[a]?|umano)\b", re.IGNORECASE)
KEYWORD_SENSITIVE = re.compile(
    r"\b(refund|rimbors\w*|reembols\w*|cancel\w*|annull\w*|charged|addebit\w*|cobr\w*|"
    r"complaint|reclam\w*)\b", re.IGNORECASE)


def keyword_rules_escalate(text: str, failed_before: int, max_failed: int) -> bool:
    """The keyword baseline on one message."""
    return bool(KEYWORD_HUMAN.search(text) or KEYWORD_SENSITIVE.search(text)
                or keyword_frustration(text) or text.strip() == "3"
                or failed_before >= max_failed)


@dataclass
class ConversationOutcome:
    """What the engine and the keyword rules did with one labelled conversation."""

    language: str
    expected: Expected
    engine_turn: int | None  # 1-based turn of the engine's first handoff
    engine_team: str | None
    keyword_turn: int | None
    keyword_team: str | None
    #: (P(escalate), label) of each turn up to the engine's handoff.
    turns: list[tuple[float, int]]


def keyword_outcome(flow: BotFlow, texts: list[str], failed: list[bool]
                    ) -> tuple[int | None, str | None]:
    """The keyword baseline's first handoff turn (1-based) and its team (by keyword intent)."""
    failed_before = 0
    for n, text in enumerate(texts):
        if keyword_rules_escalate(text, failed_before, flow.escalation.max_failed_attempts):
            return n + 1, flow.escalation.routing.team_for(keyword_intent(text))
        failed_before += int(failed[n])
    return None, None


def turn_labels(expected: Expected, n_turns: int) -> list[int]:
    """1 for the turns at and after the expected handoff, 0 before it (0 for all without)."""
    by = expected.handoff_by_turn
    return [int(by is not None and n + 1 >= by) for n in range(n_turns)]


def summarise(outcomes: list[ConversationOutcome]) -> dict:
    """Per language (and all): the engine's and the keyword rules' figures side by side."""
    groups: dict[str, list[ConversationOutcome]] = defaultdict(list)
    for o in outcomes:
        groups[o.language].append(o)
        groups["all"].append(o)
    return {lang: {"conversations": len(group),
                   "need_a_human": sum(o.expected.handoff_by_turn is not None for o in group),
                   "engine": _figures(group, "engine"),
                   "keyword_rules": _figures(group, "keyword"),
                   "calibration": _calibration(group)}
            for lang, group in sorted(groups.items(), key=lambda kv: (kv[0] == "all", kv[0]))}


def _figures(group: list[ConversationOutcome], who: str) -> dict:
    positives = [o for o in group if o.expected.handoff_by_turn is not None]
    negatives = [o for o in group if o.expected.handoff_by_turn is None]
    turn = (lambda o: o.engine_turn) if who == "engine" else (lambda o: o.keyword_turn)
    team = (lambda o: o.engine_team) if who == "engine" else (lambda o: o.keyword_team)
    in_time = [o for o in positives if turn(o) is not None
               and turn(o) <= o.expected.handoff_by_turn]
    routed = [o for o in positives if turn(o) is not None and o.expected.team]
    by_trigger: dict[str, list[int]] = defaultdict(list)
    for o in positives:
        by_trigger[o.expected.trigger or "?"].append(int(o in in_time))
    return {
        "recall_by_expected_turn": _share(len(in_time), len(positives)),
        "handed_off_late": sum(turn(o) is not None and turn(o) > o.expected.handoff_by_turn
                               for o in positives),
        "missed": sum(turn(o) is None for o in positives),
        "false_handoffs": _share(sum(turn(o) is not None for o in negatives), len(negatives)),
        "team_accuracy": _share(sum(team(o) == o.expected.team for o in routed), len(routed)),
        "recall_by_trigger": {k: _share(sum(v), len(v)) for k, v in sorted(by_trigger.items())},
    }


def _calibration(group: list[ConversationOutcome]) -> dict:
    pairs = [t for o in group for t in o.turns]
    if not pairs:
        return {}
    return calibration_of(np.array([x for x, _ in pairs]), np.array([t for _, t in pairs]))


def calibration_of(p: np.ndarray, y: np.ndarray) -> dict:
    """Turns, ECE and the reliability curve (10 bins) of probabilities ``p`` against labels ``y``."""
    centres, observed, counts = reliability_curve(p, y, bins=10)

    def values(column: np.ndarray) -> list[float | None]:
        return [None if np.isnan(v) else round(float(v), 3) for v in column]

    return {"turns": len(p), "ece": round(float(expected_calibration_error(p, y, bins=10)), 4),
            "reliability": {"predicted": values(centres), "observed": values(observed),
                            "count": [int(c) for c in counts]}}


def _share(k: int, n: int) -> float | None:
    return round(k / n, 4) if n else None


def format_table(summary: dict) -> str:
    """The per-language figures as a Markdown table (engine vs keyword rules)."""
    lines = ["| language | conversations (need a human) | recall by expected turn: engine / "
             "keywords | false handoffs: engine / keywords | right team: engine / keywords | "
             "ECE of P(escalate) |", "|---|---|---|---|---|---|"]

    def pct(x: float | None) -> str:
        return "–" if x is None else f"{x:.1%}"

    for lang, s in summary.items():
        e, k = s["engine"], s["keyword_rules"]
        lines.append(f"| {lang} | {s['conversations']} ({s['need_a_human']}) | "
                     f"{pct(e['recall_by_expected_turn'])} / {pct(k['recall_by_expected_turn'])} | "
                     f"{pct(e['false_handoffs'])} / {pct(k['false_handoffs'])} | "
                     f"{pct(e['team_accuracy'])} / {pct(k['team_accuracy'])} | "
                     f"{s['calibration'].get('ece', '–')} |")
    return "\n".join(lines)


def reliability_png(summary: dict) -> str:
    """Reliability diagram of P(escalate) per language, as base64 PNG."""
    import base64
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect")
    for lang, s in summary.items():
        r = s["calibration"].get("reliability")
        if r:
            keep = [i for i, c in enumerate(r["count"]) if c]
            ax.plot([r["predicted"][i] for i in keep], [r["observed"][i] for i in keep],
                    marker="o", label=f"{lang} (ECE {s['calibration']['ece']})")
    ax.set_xlabel("P(escalate)")
    ax.set_ylabel("share of turns that needed a human")
    ax.legend(fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()
