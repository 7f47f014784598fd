"""Canned replies: ready answers an agent inserts into a reply, per team and language.

The business words them in one YAML file (``data/bot/canned.yaml``; the setting
``TIERLINE_CANNED_REPLIES_PATH``)::

    teams:
      all:                # offered to every team
        en:
          - title: Greeting
            text: "Hi {customer_name}, this is {agent_name}: I'm looking into it now."
      billing:            # a team of bot.yaml's routing
        it:
          - title: Tempi del rimborso
            text: "Il rimborso dell'ordine {order_number} arriva in 5-10 giorni lavorativi."

A text may name the placeholders of :data:`PLACEHOLDERS`, filled when the agent inserts it
(:func:`fill`): the customer's WhatsApp name, the ticket's order number, the agent's name. The
file is checked when it is loaded (:func:`load_canned`, at the service's start): an unknown
placeholder, a team the flow does not route to, a language the flow does not speak, an empty
or over-long text are each a :class:`CannedError` that names the entry. The library
(:class:`CannedLibrary`) reads the file again when it changes; a change that does not pass
the checks is logged and the replies loaded before stay in use.
"""

from __future__ import annotations

import logging
import string
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

log = logging.getLogger(__name__)
#: What a canned text may name, each filled on insert.
PLACEHOLDERS = ("customer_name", "order_number", "agent_name")
#: The team key whose replies every team is offered.
ALL_TEAMS = "all"
#: A WhatsApp text message's limit.
MAX_TEXT_CHARS = 4096


class CannedError(ValueError):
    """The canned replies file is not valid; the message names the file and the entry."""


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=60)
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")
    teams: dict[str, dict[str, list[_Entry]]] = Field(default_factory=dict)


@dataclass(frozen=True)
class CannedReply:
    """One ready answer: the team it is for (or ``all``), its language, title and text."""

    team: str
    language: str
    title: str
    text: str


def placeholders_of(text: str) -> list[str]:
    """The placeholders ``text`` names, in order; ValueError for a stray brace or a format
    (``{{`` and ``}}`` write a brace itself)."""
    names = []
    for _, name, spec, conversion in string.Formatter().parse(text):
        if name is None:
            continue
        if spec or conversion:
            raise ValueError(f"placeholder {{{name}}} takes no format")
        names.append(name)
    return names


def fill(text: str, values: Mapping[str, str | None]) -> tuple[str, list[str]]:
    """``text`` with its placeholders filled from ``values``; a placeholder without a value
    (no profile name, no order number) stays as written, for the agent to fill in, and is
    returned among the missing."""
    out, missing = [], []
    for literal, name, _, _ in string.Formatter().parse(text):
        out.append(literal)
        if name is None:
            continue
        value = values.get(name)
        if value:
            out.append(value)
        else:
            out.append(f"{{{name}}}")
            missing.append(name)
    return "".join(out), missing


class CannedReplies:
    """A loaded, checked file of canned replies."""

    def __init__(self, replies: list[CannedReply]) -> None:
        self.replies = replies

    def offered(self, team: str, language: str) -> list[CannedReply]:
        """The replies for ``team`` in ``language``: the team's own first, then everyone's."""
        return ([r for r in self.replies if r.team == team and r.language == language]
                + [r for r in self.replies if r.team == ALL_TEAMS and r.language == language])


def load_canned(path: Path, teams: list[str], languages: list[str]) -> CannedReplies:
    """Read and check ``path`` against the flow's ``teams`` and ``languages``; a missing file
    is no replies at all. :class:`CannedError` names what is wrong, and where."""
    if not path.exists():
        log.info("no canned replies file at %s: the console offers none", path)
        return CannedReplies([])
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        parsed = _File.model_validate(raw)
    except yaml.YAMLError as exc:
        raise CannedError(f"{path}: not valid YAML: {exc}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise CannedError(f"{path}: {where}: {first['msg']}") from None
    replies = []
    for team, by_language in parsed.teams.items():
        if team != ALL_TEAMS and team not in teams:
            raise CannedError(f"{path}: teams.{team}: not a team of the flow's routing "
                              f"({', '.join(teams)}), nor {ALL_TEAMS!r}")
        for language, entries in by_language.items():
            if language not in languages:
                raise CannedError(f"{path}: teams.{team}.{language}: not a language of the "
                                  f"flow ({', '.join(languages)})")
            for n, entry in enumerate(entries):
                where = f"{path}: teams.{team}.{language}[{n}] ({entry.title!r})"
                try:
                    names = placeholders_of(entry.text)
                except ValueError as exc:
                    raise CannedError(f"{where}: {exc}; write {{{{ and }}}} for a brace") from None
                unknown = [name for name in names if name not in PLACEHOLDERS]
                if unknown:
                    raise CannedError(
                        f"{where}: unknown placeholder {{{unknown[0]}}}; the placeholders are "
                        + ", ".join(f"{{{p}}}" for p in PLACEHOLDERS))
                replies.append(CannedReply(team, language, entry.title, entry.text))
    return CannedReplies(replies)


class CannedLibrary:
    """The canned replies of a running service: loaded (and checked) when built, read again
    when the file changes (a change that fails the checks is logged; the replies before it
    stay)."""

    def __init__(self, path: Path, teams: list[str], languages: list[str]) -> None:
        self.path, self.teams, self.languages = Path(path), list(teams), list(languages)
        self._lock = threading.Lock()
        self._stamp = self._mtime()
        self._replies = load_canned(self.path, self.teams, self.languages)

    def _mtime(self) -> int | None:
        try:
            return self.path.stat().st_mtime_ns
        except OSError:
            return None

    def current(self) -> CannedReplies:
        """The replies of the file as it is now (as it was when last valid)."""
        stamp = self._mtime()
        with self._lock:
            if stamp != self._stamp:
                self._stamp = stamp
                try:
                    self._replies = load_canned(self.path, self.teams, self.languages)
                    log.info("canned replies reloaded from %s", self.path)
                except CannedError as exc:
                    log.error("canned replies not reloaded, the previous ones stay: %s", exc)
            return self._replies
