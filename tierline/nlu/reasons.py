"""Why a conversation goes to a human: a stable reason code with its parameters.

The policy and the engine make every reason as a :class:`Reason` (``sensitive_topic`` with
``{"intent": "delete_account"}``, ``failed_replies`` with ``{"count": 2}``). That is what is
stored with the decision and the ticket, what the agent API and ``/v1/decide`` return as
``reason_codes``, what metrics are labelled by, and what the agent console words in the
agent's language (``tierline.serving.console.wording``). The English ``reasons`` strings of
the public APIs are derived from it (:attr:`Reason.text`), so there is one source.

Tickets and decisions stored before codes existed carry the English strings only;
:func:`parse` reads them back into codes (the inverse of :attr:`Reason.text`), so a metric, an
old ticket in the console and a new one go through the same table.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

#: Every reason code, in no particular order. ``other`` is a stored text no pattern reads (its
#: ``{"text": ...}`` is shown as it is); ``unspecified`` only labels a metric of a ticket
#: without reasons. The set is fixed: it is a metric label and part of the API.
REASON_CODES: tuple[str, ...] = (
    "asked_for_human", "failed_replies", "frustrated", "frustrated_earlier", "sensitive_topic",
    "vip", "premium", "repeated_request", "long_conversation", "shouting", "swearing",
    "problem_report", "repeat_contact", "delivered_not_received", "dispute", "double_charge",
    "bot_insult", "missing_item", "fed_up", "tried_again", "sarcasm", "invoice_error",
    "review_threat", "money_back", "cancel_request", "score", "with_agent",
    "csat_recorded", "unspecified", "other")
#: The escalation cues of :mod:`tierline.nlu.cues` a flow may name in ``escalate_on_cues``
#: besides shouting and swearing (which quote what fired): each is its own reason code, with
#: no parameters.
ESCALATION_CUES: tuple[str, ...] = (
    "repeat_contact", "delivered_not_received", "dispute", "double_charge", "bot_insult",
    "missing_item", "fed_up", "tried_again", "sarcasm", "invoice_error", "review_threat",
    "money_back", "cancel_request")


@dataclass(frozen=True)
class Reason:
    """One reason: a code of :data:`REASON_CODES` and its parameters (plain JSON values)."""

    code: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """The English phrase of the public APIs ("sensitive topic: delete_account")."""
        spec = _SPECS.get(self.code)
        try:
            return spec.english(self.params) if spec else str(self.params.get("text", self.code))
        except (KeyError, TypeError, ValueError):  # an odd stored row: its code, not a crash
            return str(self.params.get("text") or self.code.replace("_", " "))

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "params": dict(self.params)}

    def __hash__(self) -> int:  # params is a dict: hash its JSON
        return hash((self.code, json.dumps(self.params, sort_keys=True, default=str)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Reason:
        return cls(str(data.get("code", "other")), dict(data.get("params") or {}))


def describe_cue(cue: str) -> str:
    """'negative_word:useless' -> "'useless'"; 'all_caps' -> 'all caps'."""
    if ":" in cue:
        return f"'{cue.split(':', 1)[1]}'"
    return cue.replace("_", " ")


def _undescribe_cue(described: str) -> str:
    """The inverse of :func:`describe_cue`, as far as it goes: a quoted word comes back as a
    ``word:`` cue (its kind, negative word or profanity, is not in the text)."""
    if len(described) >= 2 and described[0] == described[-1] == "'":
        return f"word:{described[1:-1]}"
    return described.replace(" ", "_")


@dataclass(frozen=True)
class _Spec:
    english: Callable[[dict], str]
    #: Reads the English phrase back: a regex whose named groups are the parameters.
    pattern: str
    #: Converts the regex groups (strings) to the parameters' types.
    convert: Callable[[dict], dict] = lambda groups: groups


def _frustrated(p: dict) -> str:
    cues = ", ".join(describe_cue(c) for c in p.get("cues", []))
    return f"customer frustrated ({p['score']:.2f}" + (f": {cues})" if cues else ")")


_SPECS: dict[str, _Spec] = {
    "asked_for_human": _Spec(lambda p: "customer asked for a human agent",
                             r"customer asked for a human"),
    "failed_replies": _Spec(lambda p: f"{p['count']} failed bot replies",
                            r"(?P<count>\d+) failed bot replies",
                            lambda g: {"count": int(g["count"])}),
    "frustrated": _Spec(_frustrated,
                        r"customer frustrated \((?P<score>[\d.]+)(?:: (?P<cues>.*))?\)",
                        lambda g: {"score": float(g["score"]), "cues": [
                            _undescribe_cue(c) for c in (g["cues"] or "").split(", ") if c]}),
    "frustrated_earlier": _Spec(lambda p: f"customer was frustrated earlier ({p['score']:.2f})",
                                r"customer was frustrated earlier \((?P<score>[\d.]+)\)",
                                lambda g: {"score": float(g["score"])}),
    "sensitive_topic": _Spec(lambda p: f"sensitive topic: {p['intent']}",
                             r"sensitive topic: (?P<intent>\S+)"),
    "vip": _Spec(lambda p: "VIP customer", r"VIP customer"),
    "premium": _Spec(lambda p: "premium customer", r"premium customer"),
    "repeated_request": _Spec(lambda p: f"repeated request: {p['intent']}",
                              r"repeated request: (?P<intent>\S+)"),
    "long_conversation": _Spec(lambda p: f"long conversation ({p['messages']} messages)",
                               r"long conversation \((?P<messages>\d+) messages\)",
                               lambda g: {"messages": int(g["messages"])}),
    "shouting": _Spec(lambda p: "customer is shouting (all caps)", r"customer is shouting"),
    "swearing": _Spec(lambda p: f"customer is swearing ('{p['word']}')",
                      r"customer is swearing \('(?P<word>.*)'\)"),
    "problem_report": _Spec(lambda p: f"{p['tier']} customer reports a problem",
                            r"(?P<tier>\w+) customer reports a problem"),
    "repeat_contact": _Spec(lambda p: "customer has written about this before",
                            r"customer has written about this before"),
    "delivered_not_received": _Spec(
        lambda p: "order shows delivered but the customer did not receive it",
        r"order shows delivered but the customer did not receive it"),
    "dispute": _Spec(lambda p: "customer threatens a chargeback or legal action",
                     r"customer threatens a chargeback or legal action"),
    "double_charge": _Spec(lambda p: "customer reports a double charge",
                           r"customer reports a double charge"),
    "bot_insult": _Spec(lambda p: "customer is insulting the bot", r"customer is insulting the bot"),
    "missing_item": _Spec(lambda p: "part of the order is missing", r"part of the order is missing"),
    "fed_up": _Spec(lambda p: "customer says they are fed up", r"customer says they are fed up"),
    "tried_again": _Spec(lambda p: "customer already tried several times",
                         r"customer already tried several times"),
    "sarcasm": _Spec(lambda p: "customer is being sarcastic about a delay",
                     r"customer is being sarcastic about a delay"),
    "invoice_error": _Spec(lambda p: "customer reports a mistake on an invoice",
                           r"customer reports a mistake on an invoice"),
    "review_threat": _Spec(lambda p: "customer threatens a bad review",
                           r"customer threatens a bad review"),
    "money_back": _Spec(lambda p: "customer asks for their money back",
                        r"customer asks for their money back"),
    "cancel_request": _Spec(lambda p: "customer asks to cancel an order",
                            r"customer asks to cancel an order"),
    "score": _Spec(
        lambda p: (f"escalation score {p['p']:.2f} at or above the {p['tier']} threshold "
                   f"{p['threshold']:.2f} (mostly "
                   f"{' and '.join(n.replace('_', ' ') for n in p['features'])})"),
        r"escalation score (?P<p>[\d.]+) at or above the (?P<tier>\w+) threshold "
        r"(?P<threshold>[\d.]+) \(mostly (?P<features>.*)\)",
        lambda g: {"p": float(g["p"]), "tier": g["tier"], "threshold": float(g["threshold"]),
                   "features": [n.replace(" ", "_") for n in g["features"].split(" and ")]}),
    "with_agent": _Spec(lambda p: "conversation is already with an agent",
                        r"conversation is already with an agent"),
    "csat_recorded": _Spec(lambda p: f"satisfaction score {p['score']} recorded",
                           r"satisfaction score (?P<score>\d+) recorded",
                           lambda g: {"score": int(g["score"])}),
}
_PATTERNS = [(re.compile(spec.pattern), code, spec) for code, spec in _SPECS.items()]


def parse(text: str | None) -> Reason:
    """The :class:`Reason` of an English reason phrase (stored before codes existed):
    ``unspecified`` for none, ``other`` (with the text) for a phrase no pattern reads."""
    if not text:
        return Reason("unspecified")
    for pattern, code, spec in _PATTERNS:
        match = pattern.match(text)
        if match:
            return Reason(code, spec.convert({k: v for k, v in match.groupdict().items()}))
    return Reason("other", {"text": text})


def reason_code(text: str | None) -> str:
    """The code of an English reason phrase (one of :data:`REASON_CODES`)."""
    return parse(text).code


def from_stored(codes: Iterable[dict] | None, texts: Iterable[str] | None) -> list[Reason]:
    """The reasons of a stored ticket or decision: its ``reason_codes`` when it has them, else
    its English ``reasons`` read back with :func:`parse`."""
    if codes:
        return [Reason.from_dict(c) for c in codes]
    return [parse(t) for t in texts or ()]


def texts(reasons: Iterable[Reason]) -> list[str]:
    """The English phrases of ``reasons`` (the public APIs' ``reasons``)."""
    return [r.text for r in reasons]


def dicts(reasons: Iterable[Reason]) -> list[dict[str, Any]]:
    """``reasons`` as stored and returned (``reason_codes``)."""
    return [r.to_dict() for r in reasons]
