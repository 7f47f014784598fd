"""Conversation simulator: multi-turn WhatsApp conversations composed from real utterances.

Scripts are drawn from the project's data splits (train pools for the policy's training set,
test pools for its evaluation set, so no utterance is shared), with customer tiers and
timestamps. Each script is then played through the real :class:`tierline.nlu.engine.TurnEngine` with
``act=False`` (the bot answers, nobody escalates), recording at every turn the features the
policy sees and the truth the labelling function reads. Saved as JSON lines with a fixed seed.
"""

from __future__ import annotations

import json
import logging
import random
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from tqdm.auto import tqdm

from tierline.paths import DATA_DIR
from tierline.nlu.directory import CsvOrderLookup
from tierline.nlu.engine import TurnEngine
from tierline.nlu.labels import OUT_OF_SCOPE
from tierline.training.data import (
    HANDWRITTEN_INTENTS,
    WHATSAPP_INTENTS,
    XLMT_LANGUAGES,
    frustration_rows,
    handwritten_intent_rows,
    intent_rows,
    read_xlmt,
    shout,
    stable_fraction,
)
from tierline.training.labelling import P_SENSITIVE, TurnTruth, lead_probability

log = logging.getLogger(__name__)

SIMULATED_DIR = DATA_DIR / "simulated"
ROUTINE = ("track_order", "delivery_period", "delivery_options", "change_shipping_address",
           "set_up_shipping_address", "change_order", "place_order", "check_invoice",
           "get_invoice", "check_payment_methods", "check_refund_policy", "create_account",
           "edit_account", "recover_password", "newsletter_subscription", "review",
           "registration_problems", "switch_account")
FAQ = ("delivery_period", "delivery_options", "check_refund_policy", "check_payment_methods",
       "get_invoice", "check_invoice", "recover_password", "newsletter_subscription")
SENSITIVE = tuple(P_SENSITIVE)
EXPLICIT_PHRASES = ("agent", "human please", "can I talk to a person?", "operatore",
                    "voglio parlare con un operatore", "I want a human agent", "3",
                    "let me speak to a representative", "persona reale per favore")
#: Added to EXPLICIT_PHRASES when conversations are simulated for the multilingual model.
MORE_EXPLICIT_PHRASES = ("quiero hablar con una persona", "un agente por favor",
                         "quero falar com um atendente", "atendente humano por favor",
                         "passami un operatore")
#: Requests for a human by language, for conversations simulated in one language.
EXPLICIT_BY_LANGUAGE = {
    "it": ("operatore", "voglio parlare con un operatore", "persona reale per favore",
           "passami un operatore", "posso parlare con una persona?", "3"),
    "es": ("quiero hablar con una persona", "un agente por favor", "pásame con un humano",
           "necesito hablar con alguien de verdad", "3"),
    "pt": ("quero falar com um atendente", "atendente humano por favor",
           "me passa pra uma pessoa", "posso falar com alguém de verdade?", "3"),
}
#: How a customer writes an order number, and says they do not know it, by language.
ORDER_PREFIXES = {"en": ("", "my order is ", "it's ", "order "),
                  "it": ("", "il mio ordine è ", "è ", "ordine "),
                  "es": ("", "mi pedido es el ", "es el ", "pedido "),
                  "pt": ("", "meu pedido é ", "é o ", "pedido ")}
NO_ORDER_NUMBER = {"en": "I don't know it", "it": "non lo so", "es": "no lo sé",
                   "pt": "não sei"}
SCENARIOS = {"tracking": 0.18, "faq": 0.16, "sensitive": 0.16, "lost": 0.14, "frustrated": 0.16,
             "explicit": 0.10, "small_talk": 0.10}
TIERS = {"standard": 0.7, "premium": 0.2, "vip": 0.1}


@dataclass
class ScriptTurn:
    """One customer message of a script, with its truth."""

    text: str
    kind: str
    true_intent: str | None = None
    frustrated: bool = False


@dataclass
class Script:
    """A simulated conversation before it is played."""

    id: str
    tier: str
    start: str
    scenario: str
    turns: list[ScriptTurn] = field(default_factory=list)


class UtterancePools:
    """Real utterances by intent and frustrated messages, from one data split."""

    def __init__(self, split: str, xlmt_languages: tuple[str, ...] = ("english",)) -> None:
        """``xlmt_languages`` beyond English add those languages' negative tweets to the
        frustrated messages and more-language requests for a human to the explicit ones (the
        multilingual model's policy); intents stay English (no other-language intent data)."""
        self.by_intent: dict[str, list[str]] = defaultdict(list)
        for r in intent_rows():
            if r["split"] == split:
                self.by_intent[r["label"]].append(r["text"])
        sources = {"goemotions", "bitext", "xlmt_en"} | {
            f"xlmt_{XLMT_LANGUAGES[lang]}" for lang in xlmt_languages}
        self.frustrated = [r["text"] for r in frustration_rows(xlmt_languages=xlmt_languages)
                           if r["split"] == split and r["label"] == 1
                           and r["source"] in sources and len(r["text"]) < 200]
        multilingual = set(xlmt_languages) - {"english"}
        self.explicit = EXPLICIT_PHRASES + (MORE_EXPLICIT_PHRASES if multilingual else ())
        self.language = "en"

    def intent(self, rng: random.Random, intent: str) -> str:
        return rng.choice(self.by_intent[intent])


class LanguagePools(UtterancePools):
    """Utterances of one language other than English: the hand-written it/es/pt intent rows
    (``data/handwritten``), that language's XLM-T negative tweets as frustrated messages and its
    requests for a human.

    There is no other corpus of it/es/pt support intents, so the hand-written rows are split
    here by a hash of the text, ``train`` (75 %) or ``test``, and so are the tweets (XLM-T
    ``train``, 80/20 as in the frustration data). Conversations simulated from them are what
    agents of an Italian (Spanish, Portuguese) shop see: they are decided by the multilingual
    model stack.
    """

    def __init__(self, split: str, language: str) -> None:
        if language not in EXPLICIT_BY_LANGUAGE:
            raise ValueError(f"no simulated conversations in {language!r}; "
                             f"languages: {sorted(EXPLICIT_BY_LANGUAGE)}")
        self.language = language
        self.by_intent = defaultdict(list)
        # The simulated conversations keep the intent rows they were first drawn from.
        rows = [r for r in handwritten_intent_rows((HANDWRITTEN_INTENTS, WHATSAPP_INTENTS))
                if r["language"] == language]
        chosen = [r for r in rows if _pool_split(r["text"], 0.75) == split]
        here = {r["label"] for r in chosen}
        # An intent the hash left without rows in this split keeps all of its rows.
        for r in chosen + [r for r in rows if r["label"] not in here]:
            self.by_intent[r["label"]].append(r["text"])
        folder = {code: name for name, code in XLMT_LANGUAGES.items()}[language]
        self.frustrated = [text for text, negative in read_xlmt(folder, "train")
                           if negative and len(text) < 200
                           and _pool_split(f"xlmt:{text}", 0.8) == split]
        self.explicit = EXPLICIT_BY_LANGUAGE[language]


def _pool_split(key: str, train_share: float) -> str:
    return "train" if stable_fraction(key) < train_share else "test"


def order_number(rng: random.Random, valid_numbers: list[str], language: str = "en"
                 ) -> tuple[str, bool]:
    """A customer's order-number message: a real one, an unknown one or a malformed one."""
    x = rng.random()
    if x < 0.7:
        return rng.choice(ORDER_PREFIXES[language]) + rng.choice(valid_numbers), True
    if x < 0.85:
        return f"ND-{rng.randint(0, 999999):06d}", False
    return rng.choice(["12345", "ND123", "order 5567", NO_ORDER_NUMBER[language]]), False


def make_script(rng: random.Random, pools: UtterancePools, index: int, valid_numbers: list[str],
                start: datetime, scenarios: dict[str, float] | None = None) -> Script:
    """Draw one conversation script (``scenarios``: their weights, default :data:`SCENARIOS`)."""
    scenarios = scenarios or SCENARIOS
    scenario = rng.choices(list(scenarios), weights=list(scenarios.values()))[0]
    tier = rng.choices(list(TIERS), weights=list(TIERS.values()))[0]
    when = start + timedelta(minutes=rng.randint(0, 14 * 24 * 60))
    s = Script(id=f"sim-{index:05d}", tier=tier, start=when.isoformat(), scenario=scenario)

    def say(intent: str, kind: str) -> None:
        s.turns.append(ScriptTurn(pools.intent(rng, intent), kind, intent))

    def vent() -> None:
        if rng.random() < 0.35 and s.turns:
            last = s.turns[-1]
            s.turns.append(ScriptTurn(shout(last.text), "frustrated", last.true_intent, True))
        else:
            s.turns.append(ScriptTurn(rng.choice(pools.frustrated), "frustrated", None, True))

    if rng.random() < 0.4:
        say("greeting", "small_talk")
    if scenario == "tracking":
        if rng.random() < 0.5:
            s.turns.append(ScriptTurn("1", "routine", "track_order"))
        else:
            say("track_order", "routine")
        text, _ = order_number(rng, valid_numbers, pools.language)
        s.turns.append(ScriptTurn(text, "order_number", "track_order"))
    elif scenario == "faq":
        for _ in range(rng.randint(1, 2)):
            say(rng.choice(FAQ), "faq")
    elif scenario == "sensitive":
        intent = rng.choice(SENSITIVE)
        say(intent, "sensitive")
        if rng.random() < 0.3:
            say(intent, "sensitive")
        if rng.random() < 0.3:
            vent()
    elif scenario == "lost":
        for _ in range(rng.randint(2, 4)):
            say(OUT_OF_SCOPE, "oos")
        if rng.random() < 0.5:
            vent()
        if rng.random() < 0.3:
            s.turns.append(ScriptTurn(rng.choice(pools.explicit), "explicit", "contact_human_agent"))
    elif scenario == "frustrated":
        say(rng.choice(ROUTINE + SENSITIVE), "routine")
        s.turns[-1].kind = "sensitive" if s.turns[-1].true_intent in SENSITIVE else "routine"
        for _ in range(rng.randint(1, 2)):
            vent()
    elif scenario == "explicit":
        if rng.random() < 0.5:
            say("contact_human_agent", "explicit")
        else:
            s.turns.append(ScriptTurn(rng.choice(pools.explicit), "explicit", "contact_human_agent"))
    else:
        say(rng.choice(ROUTINE), "routine")
    if rng.random() < 0.3:
        say(rng.choice(["thanks", "goodbye"]), "small_talk")
    return s


def play(engine: TurnEngine, scripts: list[Script], seed: int) -> list[dict]:
    """Play every script through the engine (``act=False``); one labelled row per turn."""
    rng = random.Random(seed + 1)
    texts = sorted({t.text for s in scripts for t in s.turns})
    analyses = dict(zip(texts, engine.analyze_texts(texts)))
    rows = []
    for script in tqdm(scripts, desc="simulate", unit="conv", mininterval=5):
        state = engine.new_state(script.id, tier=script.tier)
        now = datetime.fromisoformat(script.start)
        failed = frustrated = 0
        seen_intents: set[str] = set()
        for n, turn in enumerate(script.turns):
            repeated = turn.true_intent in seen_intents and turn.kind in ("sensitive", "routine", "faq")
            truth = TurnTruth(kind=turn.kind, true_intent=turn.true_intent,
                              frustrated=turn.frustrated, failed_before=failed,
                              frustrated_before=frustrated, repeated=repeated)
            result = engine.turn(state, turn.text, now=now, analysis=analyses[turn.text], act=False)
            p_lead = lead_probability(truth, script.tier)
            rows.append({
                "conversation_id": script.id, "turn": n, "tier": script.tier,
                "scenario": script.scenario, "at": now.isoformat(), **asdict(turn),
                "failed_before": failed, "frustrated_before": frustrated, "repeated": repeated,
                "bot_failed": result.bot_failed, "p_lead": round(p_lead, 4),
                "label": int(rng.random() < p_lead),
                "features": {k: round(v, 5) for k, v in result.decision.features.items()},
            })
            state = result.state
            failed += int(result.bot_failed)
            frustrated += int(turn.frustrated)
            if turn.true_intent:
                seen_intents.add(turn.true_intent)
            now += timedelta(seconds=rng.randint(20, 300))
    return rows


def simulate(engine: TurnEngine, split: str, n_conversations: int, seed: int,
             xlmt_languages: tuple[str, ...] = ("english",), language: str = "en",
             scenarios: dict[str, float] | None = None) -> list[dict]:
    """Draw and play ``n_conversations`` from the ``split`` utterance pools.

    ``language`` other than English draws every message from :class:`LanguagePools` (the
    conversations of an Italian, Spanish or Portuguese shop; their rows record the
    ``language``); ``xlmt_languages`` then does not apply.
    """
    rng = random.Random(seed)
    pools = UtterancePools(split, xlmt_languages) if language == "en" \
        else LanguagePools(split, language)
    valid = CsvOrderLookup(engine.flow.path(engine.flow.orders.file)).numbers()
    start = datetime(2026, 11, 2, tzinfo=timezone.utc)
    scripts = [make_script(rng, pools, i, valid, start, scenarios) for i in range(n_conversations)]
    if language != "en":
        for script in scripts:
            script.id = f"sim-{language}-{script.id.removeprefix('sim-')}"
    rows = play(engine, scripts, seed)
    if language != "en":
        for row in rows:
            row["language"] = language
    return rows


def save_rows(rows: list[dict], path: Path) -> Path:
    """Write rows as JSON lines."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def load_rows(path: Path) -> list[dict]:
    """Read rows written by :func:`save_rows`."""
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
