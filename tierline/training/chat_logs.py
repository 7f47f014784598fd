"""Chat logs as people have them, read into one shape for ``tierline evaluate conversations``.

The shape (:class:`LogConversation`), one JSON object per line of a ``.jsonl`` file::

    {"conversation_id": "c1", "language": "it", "customer": {"id": "+393331234567", "tier": "vip"},
     "messages": [{"role": "customer", "text": "ciao", "timestamp": "2026-03-12T14:05:00+01:00"},
                  {"role": "bot", "text": "Ciao! Come posso aiutarti?"},
                  {"role": "customer", "text": "MI AVETE ADDEBITATO DUE VOLTE", "escalate": true,
                   "intent": "payment_issue"}],
     "expected": {"handoff_by_turn": 2, "team": "billing"}}

Only customer lines are turns; bot and agent lines are context (shown in the report's
transcripts, never played). ``escalate`` (should this turn go to a human) and ``intent`` (the
intent a person reads in it) are labels a customer line may carry; ``expected`` labels the
conversation (:mod:`tierline.training.expected_handoffs`).

Readers of the same shape: a folder of WhatsApp webhook payloads, a WhatsApp chat export
(``.txt``, a folder of them, or the ``.zip`` the app shares; Android and iOS layouts), and the
service's own database (``conversations`` and their lines in ``message_log``, with agents'
verdicts on tickets as labels). A line, file or row that cannot be read is recorded as a
:class:`ReadProblem` (where, and why) when the caller passes a list for them, and the rest is
read; without a list the first one raises :class:`InputError`.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, model_validator

from tierline.nlu.labels import INTENT_LABELS
from tierline.nlu.phone import e164
from tierline.training.expected_handoffs import Expected


class InputError(ValueError):
    """A chat log that cannot be read; the message says where (line, file or row)."""


@dataclass
class ReadProblem:
    """A line, file or row that was not read, and why (in the CLI's output and the report)."""

    source: str
    line: int | None
    reason: str
    #: What ``line`` counts: "line" of a file, "row" (id) of a database table.
    unit: str = "line"

    def __str__(self) -> str:
        where = f"{self.unit} {self.line}" if self.line is not None else ""
        return ", ".join(part for part in (self.source, where) if part) + f": {self.reason}"


class LogMessage(BaseModel):
    """One line of a conversation: the customer's (a turn) or the bot's or an agent's (context)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    role: Literal["customer", "bot", "agent"] = "customer"
    text: str = Field(max_length=50_000)
    at: datetime | None = Field(None, validation_alias=AliasChoices("at", "timestamp"))
    button_id: str | None = None
    #: A person's label: should this customer turn have gone to a human.
    escalate: bool | None = None
    #: A person's label: the intent of this customer line (one of the model's labels).
    intent: str | None = None

    @model_validator(mode="after")
    def _labels_on_customer_lines(self) -> LogMessage:
        if self.role != "customer" and (self.escalate is not None or self.intent is not None
                                        or self.button_id is not None):
            raise ValueError("escalate, intent and button_id belong on customer lines")
        if self.intent is not None and self.intent not in INTENT_LABELS:
            raise ValueError(f"intent {self.intent!r} is not one of the model's intents")
        return self


class LogCustomer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = ""
    tier: str | None = None


class LogConversation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    conversation_id: str = Field(min_length=1)
    customer: LogCustomer = LogCustomer()
    messages: list[LogMessage] = Field(min_length=1)
    #: The conversation's language as labelled (reports group by it; the engine still detects,
    #: as the service does, and the report says which model stack each turn ran on).
    language: str | None = None
    #: The turn by which a human is needed and the team (``tierline.training.expected_handoffs``).
    expected: Expected | None = None

    @model_validator(mode="after")
    def _has_a_customer_line(self) -> LogConversation:
        if not any(m.role == "customer" for m in self.messages):
            raise ValueError("no customer messages (bot and agent lines are context, not turns)")
        return self

    @property
    def turns(self) -> list[LogMessage]:
        """The customer lines: what the engine plays, in order."""
        return [m for m in self.messages if m.role == "customer"]


def _problem(problems: list[ReadProblem] | None, problem: ReadProblem) -> None:
    """Record ``problem``, or raise it when the caller keeps none."""
    if problems is None:
        raise InputError(str(problem))
    problems.append(problem)


def _validation_reason(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    kind = "not valid JSON" if first["type"] == "json_invalid" else first["msg"]
    return kind + (f" (at {where})" if where else "")


def read_conversations(path: Path, problems: list[ReadProblem] | None = None
                       ) -> Iterator[LogConversation]:
    """Stream conversations from a JSONL file. A line that cannot be read (bad JSON, a field
    the format lacks, a conversation id seen before) is a :class:`ReadProblem` with its line
    number; without ``problems`` it raises."""
    empty = True
    seen: dict[str, int] = {}
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError:
                empty = False
                _problem(problems, ReadProblem(path.name, number, "not UTF-8 text"))
                continue
            if not line.strip():
                continue
            empty = False
            try:
                conversation = LogConversation.model_validate_json(line)
            except ValidationError as exc:
                _problem(problems, ReadProblem(path.name, number, _validation_reason(exc)))
                continue
            first = seen.setdefault(conversation.conversation_id, number)
            if first != number:
                _problem(problems, ReadProblem(path.name, number, (
                    f"conversation_id {conversation.conversation_id!r} already read at line {first}")))
                continue
            yield conversation
    if empty:
        raise InputError(f"{path}: no conversations (empty file)")


def read_webhook_folder(folder: Path, problems: list[ReadProblem] | None = None
                        ) -> Iterator[LogConversation]:
    """Conversations from exported webhook bodies (``*.json``, one delivery per file).

    Text, button and interactive messages are grouped by (business number, customer) and
    ordered by their WhatsApp timestamp; redeliveries (same message id) count once. A file
    that is not a webhook payload is a :class:`ReadProblem` (by file name). Unlike the JSONL
    path this holds the folder's texts in memory: export large logs as JSONL.
    """
    from tierline.serving.channels.whatsapp.payload import PayloadError, parse_webhook

    files = sorted(folder.glob("*.json"))
    if not files:
        raise InputError(f"{folder}: no webhook payloads (*.json)")
    seen: set[str] = set()
    by_conv: dict[str, list] = {}
    for file in files:
        try:
            messages, _ = parse_webhook(json.loads(file.read_bytes()))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            _problem(problems, ReadProblem(file.name, None, f"not valid JSON ({exc})"))
            continue
        except PayloadError as exc:
            _problem(problems, ReadProblem(file.name, None, f"not a WhatsApp webhook payload ({exc})"))
            continue
        for m in messages:
            if m.wamid in seen or m.type not in ("text", "button", "interactive"):
                continue
            seen.add(m.wamid)
            by_conv.setdefault(m.conversation_id, []).append(m)
    for conv_id, messages in by_conv.items():
        messages.sort(key=lambda m: (m.sent_at is None, m.sent_at))
        yield LogConversation(conversation_id=conv_id, customer=LogCustomer(id=messages[0].customer_id),
                              messages=[LogMessage(text=m.text[:50_000], at=m.sent_at,
                                                   button_id=m.button_id) for m in messages])


# --- WhatsApp chat exports ("Export chat" in the app) ------------------------------------------

#: Bidirectional marks the app puts around names, phone numbers and system lines.
_BIDI = re.compile("[\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
_DATE = r"(?P<date>\d{1,4}[./-]\d{1,2}[./-]\d{1,4})"
_TIME = r"(?P<time>\d{1,2}[:.]\d{2}(?:[:.]\d{2})?(?:[\s\u202f\u00a0]?[aApP]\.?\s?[mM]\.?)?)"
#: Android: ``12/03/2026, 14:05 - Name: text``; iOS: ``[03/12/2026, 14:05:33] Name: text``.
_ANDROID = re.compile(rf"^{_DATE},? {_TIME} [-–] (?P<rest>.*)$")
_IOS = re.compile(rf"^\[{_DATE},? {_TIME}\] (?P<rest>.*)$")
#: Attachments without a caption, in the app's en/it/es/pt wordings (Android and iOS).
_MEDIA = re.compile(
    r"^(<[^<>]*(media|multimedia|mídia|midia)[^<>]*>"
    r"|<(attached|allegato|adjunto|anexado): [^<>]*>"
    r"|(image|video|audio|sticker|gif|document|contact card) omitted"
    r"|(immagine|video|audio|sticker|gif|documento) omess[oa]"
    r"|(imagen|video|audio|sticker|gif|documento) omitid[oa]"
    r"|(imagem|vídeo|áudio|figurinha|gif|documento) (omitid[oa]|ocultad[oa])"
    r"|null)$", re.IGNORECASE)
#: Android's line of an attachment with a caption ("IMG-...jpg (file attached)"); the caption
#: follows on the next lines.
_ATTACHED = re.compile(r"^\S+\.\w{2,5} \((file attached|file allegato|archivo adjunto|"
                       r"arquivo anexado)\)$", re.IGNORECASE)
_DELETED = re.compile(
    r"^(this message was deleted|you deleted this message|questo messaggio è stato eliminato|"
    r"hai eliminato questo messaggio|se eliminó este mensaje|eliminaste este mensaje|"
    r"esta mensagem foi apagada|você apagou esta mensagem|mensagem apagada)\.?$", re.IGNORECASE)
_EDITED = re.compile(r"\s*<[^<>]*(edited|modificato|editó|editado|editada)[^<>]*>$",
                     re.IGNORECASE)
#: iOS writes system lines as messages from the chat, their text opening with a left-to-right
#: mark: "‎Messages and calls are end-to-end encrypted."
_IOS_SYSTEM_MARK = "\u200e"
#: Silence after which a chat export's next line starts a new conversation.
SESSION_GAP = timedelta(hours=24)


@dataclass
class _Line:
    """A message line of an export, its continuation lines joined."""

    number: int
    date_text: str
    day: tuple[int, int, int]
    clock: tuple[int, int, int]
    sender: str | None  # None: a system line
    text: str


@dataclass
class ExportStats:
    """What an export held besides messages (counted in the report, never dropped unsaid)."""

    system_lines: int = 0
    media: int = 0
    deleted: int = 0
    business_only_stretches: int = 0
    #: Things read on an assumption (a date order both ways fit), per file.
    notes: list[str] = field(default_factory=list)


def _clock(raw: str) -> tuple[int, int, int] | None:
    """``14:05``, ``14:05:33``, ``2:05 pm``, ``2:05 p. m.`` as (hour, minute, second)."""
    match = re.match(r"(\d{1,2})[:.](\d{2})(?:[:.](\d{2}))?\s*(?:([aApP])\.?\s?[mM]\.?)?$",
                     raw.replace("\u202f", " ").replace("\u00a0", " ").strip())
    if not match:
        return None
    hour, minute, second = int(match[1]), int(match[2]), int(match[3] or 0)
    if match[4]:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if match[4].lower() == "p" else 0)
    if hour > 23 or minute > 59 or second > 59:
        return None
    return hour, minute, second


def _day_parts(raw: str) -> tuple[int, int, int]:
    return tuple(int(p) for p in re.split(r"[./-]", raw))  # type: ignore[return-value]


def _to_date(parts: tuple[int, int, int], order: str) -> date | None:
    """The date of ``parts`` read in ``order`` ("dmy", "mdy"; four-digit first part: ymd)."""
    a, b, c = parts
    if a > 31:
        year, month, day = a, b, c
    elif order == "dmy":
        day, month, year = a, b, c
    else:
        month, day, year = a, b, c
    year += 2000 if year < 100 else 0
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _date_order(lines: list[_Line]) -> tuple[str, bool]:
    """Day/month or month/day, from the export's own dates: a first part above 12 says
    day/month, a second part above 12 month/day; else the order in which the lines' times
    never go backwards. Returns the order and whether it was a guess (both fit)."""
    firsts = [line.day for line in lines if line.day[0] <= 31]
    if any(a > 12 for a, _, _ in firsts):
        return "dmy", False
    if any(b > 12 for _, b, _ in firsts):
        return "mdy", False

    def backwards(order: str) -> int:
        times = [(_to_date(line.day, order), line.clock) for line in lines]
        return sum(1 for x, y in zip(times, times[1:]) if x[0] and y[0] and y < x)

    dmy, mdy = backwards("dmy"), backwards("mdy")
    if dmy == mdy:
        return "dmy", len({line.day for line in lines}) > 1
    return ("dmy" if dmy < mdy else "mdy"), False


def _export_lines(name: str, data: bytes, problems: list[ReadProblem] | None) -> list[_Line]:
    """The export's message and system lines, continuation lines joined to the line above."""
    lines: list[_Line] = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        try:
            text = raw.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError:
            _problem(problems, ReadProblem(name, number, "not UTF-8 text"))
            continue
        bare = text.lstrip("\ufeff\u200e")
        match = _IOS.match(bare) or _ANDROID.match(bare)
        clock = _clock(match["time"]) if match else None
        if match and clock is None:
            _problem(problems, ReadProblem(name, number, f"time {match['time']!r} is not a time"))
            continue
        if match:
            rest = match["rest"]
            sender, sep, body = rest.partition(": ")
            if not sep and rest.endswith(":"):  # an empty message body
                sender, sep, body = rest[:-1], ":", ""
            system = (not sep or len(sender) > 80
                      or (body.startswith(_IOS_SYSTEM_MARK)
                          and not _MEDIA.match(_BIDI.sub("", body).strip())))
            lines.append(_Line(number, match["date"], _day_parts(match["date"]), clock,
                               None if system else _BIDI.sub("", sender).strip(),
                               body if sep else rest))
        elif lines:
            lines[-1].text += "\n" + text
        elif text.strip():
            _problem(problems, ReadProblem(name, number, "not a WhatsApp message line (no date "
                                                         "and time at its start)"))
    return lines


def _message_text(body: str, stats: ExportStats) -> str | None:
    """The text a customer or the business wrote, or None for media, deletions and notices."""
    lines = [_BIDI.sub("", line) for line in body.split("\n")]
    if lines and _ATTACHED.match(lines[0].strip()):
        lines = lines[1:]  # an attachment; its caption, if any, follows
    text = _EDITED.sub("", "\n".join(lines).strip()).strip()
    if not text or _MEDIA.match(text):
        stats.media += 1
        return None
    if _DELETED.match(text):
        stats.deleted += 1
        return None
    return text


def _same_name(name: str) -> str:
    return " ".join(_BIDI.sub("", name).casefold().split())


def read_whatsapp_export(path: Path, business_names: Iterable[str],
                         problems: list[ReadProblem] | None = None, tz: tzinfo = timezone.utc,
                         date_order: str = "auto", session_gap: timedelta = SESSION_GAP,
                         stats: ExportStats | None = None, name: str | None = None,
                         data: bytes | None = None) -> Iterator[LogConversation]:
    """Conversations from one chat export (``.txt``), as the app writes it on Android and iOS.

    Lines from a sender in ``business_names`` (compared without case) are the business's:
    agent lines, context for the transcripts; every other sender's lines are customer turns.
    Times are the phone's local time, read in ``tz`` (the flow's business timezone). A silence
    of ``session_gap`` or more starts a new conversation (``<file>#2``...): the service would
    have met it as a fresh request. System lines ("Messages and calls are end-to-end
    encrypted"), attachments without a caption and deleted messages are not turns; they are
    counted in ``stats``. Lines that cannot be read are :class:`ReadProblem` s.
    """
    name = name or path.name
    stats = stats if stats is not None else ExportStats()
    business = {_same_name(n) for n in business_names}
    if not business:
        raise InputError(f"{name}: a chat export needs --business-name: the name the business's "
                         "messages carry in it")
    data = path.read_bytes() if data is None else data
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    lines = _export_lines(name, data, problems)
    if not lines:
        _problem(problems, ReadProblem(name, None, "no WhatsApp messages in this file"))
        return
    order, guessed = (date_order, False) if date_order != "auto" else _date_order(lines)
    if guessed:
        stats.notes.append(f"{name}: dates read day/month (both orders fit; --date-order mdy "
                           "if the phone wrote month/day)")
    senders = {line.sender for line in lines if line.sender is not None}
    if senders and not senders & {s for s in senders if _same_name(s) in business}:
        _problem(problems, ReadProblem(name, None, (
            f"none of the senders ({', '.join(sorted(senders))}) is the business "
            f"({', '.join(sorted(business_names))}); pass the business's name with --business-name")))
        return
    stem = Path(name).stem
    session: list[LogMessage] = []
    customer = ""
    last_at: datetime | None = None
    count = 0

    def flush() -> Iterator[LogConversation]:
        nonlocal count
        if not session:
            return
        if not any(m.role == "customer" for m in session):
            stats.business_only_stretches += 1
            return
        count += 1
        conversation_id = stem if count == 1 else f"{stem}#{count}"
        yield LogConversation(conversation_id=conversation_id,
                              customer=LogCustomer(id=e164(customer) or customer),
                              messages=list(session))

    for line in lines:
        day = _to_date(line.day, order)
        if day is None:
            _problem(problems, ReadProblem(name, line.number, (
                f"date {line.date_text} is not a date "
                f"({'day/month' if order == 'dmy' else 'month/day'} order)")))
            continue
        at = datetime(day.year, day.month, day.day, *line.clock, tzinfo=tz)
        if line.sender is None:
            stats.system_lines += 1
            continue
        text = _message_text(line.text, stats)
        if text is None:
            continue
        if last_at is not None and at - last_at >= session_gap:
            yield from flush()
            session = []
        last_at = at
        role = "agent" if _same_name(line.sender) in business else "customer"
        if role == "customer" and not any(m.role == "customer" for m in session):
            customer = line.sender
        if len(text) > 50_000:
            _problem(problems, ReadProblem(name, line.number, "message longer than 50,000 characters"))
            continue
        session.append(LogMessage(role=role, text=text, at=at))
    yield from flush()


def read_whatsapp_exports(path: Path, business_names: Iterable[str],
                          problems: list[ReadProblem] | None = None, tz: tzinfo = timezone.utc,
                          date_order: str = "auto", stats: ExportStats | None = None
                          ) -> Iterator[LogConversation]:
    """Chat exports: one ``.txt``, the ``.zip`` the app shares (its ``.txt`` inside), or a
    folder of either."""
    names = list(business_names)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".txt", ".zip"))
        if not files:
            raise InputError(f"{path}: no chat exports (*.txt, *.zip)")
    else:
        files = [path]
    for file in files:
        if file.suffix.lower() == ".zip":
            try:
                with zipfile.ZipFile(file) as archive:
                    texts = [(n, archive.read(n)) for n in archive.namelist() if n.endswith(".txt")]
            except zipfile.BadZipFile:
                _problem(problems, ReadProblem(file.name, None, "not a zip archive"))
                continue
            if not texts:
                _problem(problems, ReadProblem(file.name, None, "no chat (.txt) in the archive"))
            for inner, data in texts:
                # iOS names the chat "_chat.txt" inside "WhatsApp Chat - <name>.zip".
                label = f"{file.name}/{inner}" if Path(inner).stem != "_chat" else file.name
                yield from read_whatsapp_export(file, names, problems, tz, date_order,
                                                stats=stats, name=label, data=data)
        else:
            yield from read_whatsapp_export(file, names, problems, tz, date_order, stats=stats)


# --- the service's database --------------------------------------------------------------------

def read_database(url: str, problems: list[ReadProblem] | None = None,
                  days: tuple[date, date] | None = None) -> Iterator[LogConversation]:
    """The service's conversations (started within ``days``, when given) with their transcript
    lines, read through the service's export
    (:func:`tierline.serving.tickets.export.conversation_transcripts`): customer lines are
    turns, bot and agent lines context. An agent's verdict on a ticket labels the customer
    turn that opened it: ``yes`` and ``earlier`` escalate (``earlier`` the turn before too),
    ``no`` not; a corrected intent is that turn's intent label. Rows that cannot be used are
    :class:`ReadProblem` s by row id."""
    from tierline.serving.storage.db import Database
    from tierline.serving.tickets.export import conversation_transcripts

    db = Database(url)
    try:
        empty = True
        for transcript in conversation_transcripts(db, days):
            empty = False
            conversation = _database_conversation(transcript, problems)
            if conversation is not None:
                yield conversation
        if empty:
            raise InputError(f"{_safe_url(url)}: no conversations in the database"
                             + (f" from {days[0]} to {days[1]}" if days else ""))
    finally:
        db.dispose()


def _safe_url(url: str) -> str:
    """The URL without its password (for messages)."""
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


def _database_conversation(transcript, problems: list[ReadProblem] | None) -> LogConversation | None:
    messages: list[LogMessage] = []
    for line in transcript.lines:
        if line.role not in ("customer", "bot", "agent"):
            _problem(problems, ReadProblem("message_log", line.id, (
                f"role {line.role!r} is not customer, bot or agent (conversation "
                f"{transcript.id})"), "row"))
            continue
        if len(line.text) > 50_000:
            _problem(problems, ReadProblem("message_log", line.id,
                                           "text longer than 50,000 characters", "row"))
            continue
        messages.append(LogMessage(role=line.role, text=line.text, at=line.at))
    turns = [m for m in messages if m.role == "customer"]
    if not turns:
        _problem(problems, ReadProblem("conversations", None, (
            f"conversation {transcript.id}: no customer lines in message_log")))
        return None
    for verdict in transcript.verdicts:
        before = [n for n, m in enumerate(turns) if m.at is None or m.at <= verdict.opened_at]
        n = before[-1] if before else len(turns) - 1
        turns[n].escalate = verdict.escalation_needed in ("yes", "earlier")
        if verdict.escalation_needed == "earlier" and n > 0:
            turns[n - 1].escalate = True
        if verdict.corrected_intent in INTENT_LABELS:
            turns[n].intent = verdict.corrected_intent
    return LogConversation(conversation_id=transcript.id,
                           customer=LogCustomer(id=transcript.customer_id, tier=transcript.tier),
                           messages=messages)


def read_input(path: Path | None, problems: list[ReadProblem] | None = None, *,
               business_names: Iterable[str] = (), tz: tzinfo = timezone.utc,
               date_order: str = "auto", stats: ExportStats | None = None,
               database_url: str | None = None, days: tuple[date, date] | None = None
               ) -> Iterator[LogConversation]:
    """Any supported chat log: JSONL, a folder of webhook payloads, WhatsApp chat exports
    (``.txt``, ``.zip`` or a folder of them), or with no path the service's database."""
    if path is None:
        if not database_url:
            raise InputError("nothing to read: give a chat log, or --database-url")
        return read_database(database_url, problems, days)
    if path.is_dir():
        if any(p.suffix.lower() in (".txt", ".zip") for p in path.iterdir()):
            return read_whatsapp_exports(path, business_names, problems, tz, date_order, stats)
        return read_webhook_folder(path, problems)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if path.suffix.lower() in (".txt", ".zip"):
        return read_whatsapp_exports(path, business_names, problems, tz, date_order, stats)
    return read_conversations(path, problems)
