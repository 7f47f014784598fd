"""``tierline doctor``: is this installation ready to serve, and if not, what to do.

Five checks, each reported as lines of ``ok``, ``warning`` (works, but look at it) or
``problem`` (will not work as configured; the command exits 1), every line saying what to do:

- **settings**: they load; secrets are set, not the example's ``CHANGE_ME`` and not short
  enough to guess; settings that only work in pairs are set in pairs;
- **database**: reachable, the schema at this release's head; API keys and agents exist;
- **graph**: the WhatsApp access token, tried with one ``GET`` of the phone number at
  ``TIERLINE_WHATSAPP_API_BASE`` (an unreachable Graph API is said plainly: a warning);
- **flow**: the bot flow validates; each of its routing teams has an agent who can work it,
  and no agent is in a team the flow does not route to;
- **models**: each NLU bundle and policy loads and answers, and each language of the flow is
  served by a bundle trained on it.

Nothing is written: a missing SQLite file is reported, not created.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import SecretStr, ValidationError
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from tierline.nlu.flow import BotFlow, FlowError, load_flow
from tierline.serving.settings import Settings
from tierline.serving.storage.db import Database
from tierline.serving.storage.models import Agent, ApiKey

Level = Literal["ok", "warning", "problem"]
#: The example env file's stand-in for every secret (``deploy/tierline.env.example``).
PLACEHOLDERS = {"change_me", "changeme", "change-me", "secret", "password", "xxx", "todo"}
#: Shorter random secrets are guessable; ``openssl rand -hex 32`` gives 64 characters.
MIN_SECRET_CHARS = 16
NEW_SECRET = "`openssl rand -hex 32`"
PROBE_TEXT = "where is my order?"


@dataclass(frozen=True)
class Finding:
    """One line of the report."""

    level: Level
    check: str
    message: str

    def line(self) -> str:
        return f"{self.level:<8} {self.check}: {self.message}"


@dataclass
class Report:
    """The findings, and what one check learns for the next (the flow, the agents)."""

    findings: list[Finding] = field(default_factory=list)
    flow: BotFlow | None = None
    #: (name, teams, admin) of the agents who may sign in; None when the database was not read.
    agents: list[tuple[str, list[str], bool]] | None = None

    def add(self, level: Level, check: str, message: str) -> None:
        self.findings.append(Finding(level, check, message))

    @property
    def problems(self) -> int:
        return sum(f.level == "problem" for f in self.findings)

    @property
    def warnings(self) -> int:
        return sum(f.level == "warning" for f in self.findings)


def diagnose(settings_factory: Callable[[], Settings] = Settings) -> Report:
    """Run every check (settings first: the others need them)."""
    report = Report()
    try:
        settings = settings_factory()
    except ValidationError as exc:
        for error in exc.errors():
            name = "TIERLINE_" + "_".join(str(p) for p in error["loc"]).upper() \
                if error["loc"] else "the settings"
            report.add("problem", "settings", f"{name}: {error['msg']}: fix it in the "
                       "environment or the env file")
        return report
    check_settings(settings, report)
    check_database(settings, report)
    check_graph(settings, report)
    check_flow(settings, report)
    check_models(settings, report)
    return report


# --- settings ---------------------------------------------------------------------------------

def _value(secret: SecretStr | str | None) -> str | None:
    if isinstance(secret, SecretStr):
        return secret.get_secret_value()
    return secret


def _placeholder(value: str) -> bool:
    return value.strip().lower() in PLACEHOLDERS or "change_me" in value.lower()


def _secret(report: Report, name: str, value: str | None, min_chars: int = MIN_SECRET_CHARS,
            what: str = f"use {NEW_SECRET}") -> bool:
    """Report a set secret that is a placeholder (problem) or short (warning); True when it
    passed."""
    if value is None:
        return False
    if _placeholder(value) or not value.strip():
        report.add("problem", "settings", f"{name} is empty or still the example's CHANGE_ME: "
                   f"{what}")
        return False
    if len(value) < min_chars:
        report.add("warning", "settings", f"{name} is short ({len(value)} characters, "
                   f"fewer than {min_chars}), easy to guess: {what}")
        return False
    return True


def _pair(report: Report, first: str, first_value, second: str, second_value, enables: str) -> bool:
    """Settings that only work together: one without the other is a problem."""
    if (first_value is None) != (second_value is None):
        missing = second if first_value is not None else first
        report.add("problem", "settings", f"{enables} needs both {first} and {second}: set "
                   f"{missing} (or unset the other)")
        return False
    return first_value is not None


def check_settings(settings: Settings, report: Report) -> None:
    """Secrets set, not placeholders, not short; pairs complete."""
    before = len(report.findings)
    app_secret, verify = _value(settings.whatsapp_app_secret), _value(settings.whatsapp_verify_token)
    if _pair(report, "TIERLINE_WHATSAPP_APP_SECRET", app_secret, "TIERLINE_WHATSAPP_VERIFY_TOKEN",
             verify, "the WhatsApp webhook"):
        _secret(report, "TIERLINE_WHATSAPP_APP_SECRET", app_secret,
                what="copy it from Meta's dashboard (App settings, Basic, App secret)")
        _secret(report, "TIERLINE_WHATSAPP_VERIFY_TOKEN", verify,
                what=f"use {NEW_SECRET}, and the same string in Meta's webhook settings")
    elif app_secret is None and verify is None:
        report.add("warning", "settings", "the WhatsApp webhook is off: set "
                   "TIERLINE_WHATSAPP_APP_SECRET and TIERLINE_WHATSAPP_VERIFY_TOKEN to receive "
                   "customers' messages (README, The Meta app)")
    access, phone = _value(settings.whatsapp_access_token), settings.whatsapp_phone_number_id
    if _pair(report, "TIERLINE_WHATSAPP_ACCESS_TOKEN", access, "TIERLINE_WHATSAPP_PHONE_NUMBER_ID",
             phone, "sending replies"):
        _secret(report, "TIERLINE_WHATSAPP_ACCESS_TOKEN", access,
                what="generate a permanent token (README, The Meta app, step 8)")
        if not phone.strip().isdigit():
            report.add("problem", "settings", "TIERLINE_WHATSAPP_PHONE_NUMBER_ID is not a phone "
                       "number id (digits): copy it from WhatsApp, API Setup")
    console = _value(settings.console_secret)
    if console is None:
        level = "problem" if settings.workers > 1 else "warning"
        report.add(level, "settings", "TIERLINE_CONSOLE_SECRET is unset: "
                   + ("with several processes a console session signed by one is refused by the "
                      "others" if settings.workers > 1 else "console sessions end at each restart")
                   + f"; set it to {NEW_SECRET}")
    else:
        _secret(report, "TIERLINE_CONSOLE_SECRET", console, min_chars=32)
    if settings.webhook_enabled and not settings.console_secure_cookie:
        report.add("warning", "settings", "TIERLINE_CONSOLE_SECURE_COOKIE is off: behind HTTPS "
                   "set it to true so the console's cookie is never sent in clear")
    webhook_secret = _value(settings.notify_webhook_secret)
    if _pair(report, "TIERLINE_NOTIFY_WEBHOOK_URL", settings.notify_webhook_url,
             "TIERLINE_NOTIFY_WEBHOOK_SECRET", webhook_secret, "the ticket webhook"):
        _secret(report, "TIERLINE_NOTIFY_WEBHOOK_SECRET", webhook_secret)
    _secret(report, "TIERLINE_RUNTIME_CALLBACK_SECRET", _value(settings.runtime_callback_secret))
    zendesk = {"TIERLINE_ZENDESK_BASE_URL": settings.zendesk_base_url,
               "TIERLINE_ZENDESK_EMAIL": settings.zendesk_email,
               "TIERLINE_ZENDESK_API_TOKEN": _value(settings.zendesk_api_token)}
    if any(v is not None for v in zendesk.values()) and not settings.zendesk_enabled:
        unset = [name for name, v in zendesk.items() if not v]
        report.add("problem", "settings", f"Zendesk exports need all three of its settings: set "
                   f"{', '.join(unset)} (or unset the others)")
    elif settings.zendesk_enabled:
        _secret(report, "TIERLINE_ZENDESK_API_TOKEN", zendesk["TIERLINE_ZENDESK_API_TOKEN"],
                min_chars=1, what="create an API token in Zendesk (Admin, Apps and integrations)")
    try:
        password = make_url(settings.database_url).password
    except Exception:  # noqa: BLE001 - an unparsable URL is the database check's to report
        password = None
    if password is not None and _placeholder(str(password)):
        report.add("problem", "settings", "TIERLINE_DATABASE_URL's password is still CHANGE_ME: "
                   "set the password of the database user (createuser --pwprompt)")
    if len(report.findings) == before:
        report.add("ok", "settings", "secrets set, none a placeholder or short")


# --- database ---------------------------------------------------------------------------------

def _reason(exc: BaseException) -> str:
    """The first line of a driver's error, without SQLAlchemy's wrapping."""
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def check_database(settings: Settings, report: Report) -> None:
    """Reachable, at this release's head; API keys and agents there."""
    try:
        url = make_url(settings.database_url)
        shown = url.render_as_string(hide_password=True)
    except Exception as exc:  # noqa: BLE001 - sqlalchemy's ArgumentError, ValueError
        report.add("problem", "database", f"TIERLINE_DATABASE_URL is not a database URL ({exc}): "
                   "e.g. postgresql://tierline:<password>@127.0.0.1:5432/tierline")
        return
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:") \
            and not Path(url.database).is_file():
        report.add("problem", "database", f"no database file at {url.database}: "
                   "`tierline db upgrade` creates it (so does starting the service)")
        return
    db = None
    try:
        db = Database.for_settings(settings)
        current, head = db.current_revision(), db.head_revision()
        if current != head:
            report.add("problem", "database", _behind(shown, current, head))
            return
        with db.session() as s:
            keys = s.scalar(select(func.count()).select_from(ApiKey)
                            .where(ApiKey.revoked_at.is_(None)))
            agents = [a for a in s.scalars(select(Agent)) if a.may_sign_in()]
    except Exception as exc:  # noqa: BLE001 - every failure to connect or read is the finding
        report.add("problem", "database", f"cannot use {shown} ({_reason(exc)}): check "
                   "TIERLINE_DATABASE_URL, that the server runs and that its user may connect")
        return
    finally:
        if db is not None:
            db.dispose()
    report.agents = [(a.name, list(a.teams or []), bool(a.is_admin)) for a in agents]
    report.add("ok", "database", f"{shown} reachable, schema at this release's head ({head})")
    if not keys:
        report.add("warning", "database", "no API key: /v1/analyze and /v1/decide refuse every "
                   "caller (`tierline api-keys add` if a bot runtime or a job calls them)")
    if not agents:
        report.add("warning", "database", "no agent may sign in: nobody works the tickets "
                   "(`tierline agents add --name NAME --teams TEAM`)")


def _behind(shown: str, current: str | None, head: str) -> str:
    """What to do about a schema that is not at this release's head."""
    if current is None:
        return f"{shown} has no schema yet: run `tierline db upgrade` (or start the service)"
    if not Database.knows_revision(current):
        return (f"{shown} is at revision {current}, which this release does not know (a newer "
                f"release migrated it): run that release, or with it `tierline db downgrade "
                f"{head}` first (README, Upgrading)")
    return (f"{shown} is at revision {current}, this release's head is {head}: run "
            "`tierline db upgrade` (the service also migrates at start)")


# --- graph ------------------------------------------------------------------------------------

def check_graph(settings: Settings, report: Report) -> None:
    """One ``GET /{phone_number_id}`` with the access token at the configured Graph API."""
    import httpx

    if not settings.sending_enabled:
        report.add("warning", "graph", "not checked: sending is off (TIERLINE_WHATSAPP_ACCESS_TOKEN "
                   "and TIERLINE_WHATSAPP_PHONE_NUMBER_ID unset), replies wait in the outbox")
        return
    base = settings.whatsapp_api_base.rstrip("/")
    if not base.startswith(("https://", "http://")):
        report.add("problem", "graph", f"TIERLINE_WHATSAPP_API_BASE {base!r} is not an http(s) "
                   "URL: unset it for https://graph.facebook.com/v21.0")
        return
    phone = settings.whatsapp_phone_number_id.strip()
    try:
        answer = httpx.get(f"{base}/{phone}", params={"fields": "display_phone_number,verified_name"},
                           headers={"Authorization": "Bearer "
                                    + settings.whatsapp_access_token.get_secret_value()},
                           timeout=min(settings.whatsapp_send_timeout, 10.0))
    except httpx.HTTPError as exc:
        report.add("warning", "graph", f"unreachable: no answer from {base} ({type(exc).__name__}), "
                   "so the access token was not checked; replies wait in the outbox until it "
                   "answers (check the network, a proxy, TIERLINE_WHATSAPP_API_BASE)")
        return
    code, message = _meta_error(answer)
    if answer.status_code == 200:
        body = answer.json() if answer.headers.get("content-type", "").startswith(
            "application/json") else {}
        number = body.get("display_phone_number") or "?"
        name = body.get("verified_name")
        report.add("ok", "graph", f"the Graph API accepts the access token; phone number id "
                   f"{phone} is {number}" + (f" ({name})" if name else ""))
    elif answer.status_code == 401 or code == 190:
        report.add("problem", "graph", f"the Graph API refused the access token (HTTP "
                   f"{answer.status_code}, Meta code {code}: {message}): generate a new permanent "
                   "token (README, The Meta app, step 8) and set TIERLINE_WHATSAPP_ACCESS_TOKEN")
    elif answer.status_code >= 500 or answer.status_code == 429:
        report.add("warning", "graph", f"the Graph API answered HTTP {answer.status_code} "
                   f"({message}): Meta's side; run the doctor again later")
    else:
        report.add("problem", "graph", f"the Graph API answered HTTP {answer.status_code} (Meta "
                   f"code {code}: {message}): check TIERLINE_WHATSAPP_PHONE_NUMBER_ID and the "
                   "token's whatsapp_business_messaging permission")


def _meta_error(answer) -> tuple[int | None, str]:
    """Meta's error code and message of an answer (never the request's token)."""
    try:
        error = answer.json().get("error") or {}
        return error.get("code"), str(error.get("message", ""))[:200] or "no message"
    except (ValueError, AttributeError):
        return None, answer.text[:200] or "no message"


# --- flow -------------------------------------------------------------------------------------

def check_flow(settings: Settings, report: Report) -> None:
    """The flow validates; each routing team has someone to work it."""
    from tierline.serving.tickets.lifecycle import known_teams

    try:
        report.flow = load_flow(settings.flow_path)
    except FlowError as exc:
        report.add("problem", "flow", f"{exc}: fix the file (README, The bot flow) or "
                   "TIERLINE_FLOW_PATH")
        return
    teams = known_teams(report.flow.escalation.routing)
    report.add("ok", "flow", f"{settings.flow_path} is valid: languages "
               f"{', '.join(report.flow.languages)}; teams {', '.join(teams)}")
    if report.agents is None:
        return
    admins = [name for name, _, admin in report.agents if admin]
    for team in teams:
        if not any(team in agent_teams for _, agent_teams, _ in report.agents) and not admins:
            report.add("warning", "flow", f"nobody works team {team!r}: its tickets wait unseen "
                       f"(`tierline agents add --name NAME --teams {team}`)")
    for name, agent_teams, _ in report.agents:
        stray = [t for t in agent_teams if t not in teams]
        if stray:
            report.add("warning", "flow", f"agent {name!r} is in team(s) {', '.join(stray)}, "
                       f"which the flow does not route to: its queue there stays empty "
                       f"(the flow's teams: {', '.join(teams)})")


# --- models -----------------------------------------------------------------------------------

def check_models(settings: Settings, report: Report) -> None:
    """Each bundle and policy loads and answers; each flow language has a bundle for it."""
    from tierline.nlu.analyzer import BundleAnalyzer
    from tierline.nlu.bundle import read_policy_json
    from tierline.nlu.policy import EscalationPolicy, PolicyArtifact

    if settings.model_registry_uri:
        report.add("warning", "models", f"served from the registry at "
                   f"{settings.model_registry_uri} (its champions); only the folders below "
                   "were checked, the fallback when a model has no champion")
    route = settings.language_route()
    stacks = {"TIERLINE_NLU_MODEL_DIR": (settings.nlu_model_dir, settings.policy_dir,
                                         "TIERLINE_POLICY_DIR")}
    if route is not None:
        stacks["TIERLINE_MULTILINGUAL_NLU_DIR"] = (route.nlu_dir, route.policy_dir,
                                                   "TIERLINE_MULTILINGUAL_POLICY_DIR")
    loaded: dict[str, BundleAnalyzer] = {}
    for setting, (nlu_dir, policy_dir, policy_setting) in stacks.items():
        try:
            analyzer = BundleAnalyzer.load(nlu_dir)
            analyzer.analyze([PROBE_TEXT])
        except Exception as exc:  # noqa: BLE001 - missing files, a bad config, onnxruntime
            report.add("problem", "models", f"the NLU bundle at {nlu_dir} does not load ({exc}): "
                       f"check {setting} (the shipped bundles are in models/)")
            continue
        try:
            artifact = PolicyArtifact.model_validate(read_policy_json(policy_dir))
            if report.flow is not None:
                EscalationPolicy(artifact, report.flow.escalation)
        except Exception as exc:  # noqa: BLE001 - missing file, invalid JSON or fields
            report.add("problem", "models", f"the policy at {policy_dir} does not load ({exc}): "
                       f"check {policy_setting}")
            continue
        loaded[setting] = analyzer
        model = analyzer.model_id
        report.add("ok", "models", f"{nlu_dir} ({model.name} {model.version[:19]}) and "
                   f"{policy_dir} load and answer")
    languages = report.flow.languages if report.flow is not None else \
        sorted({"en", *(route.languages if route else ())})
    served = []
    for language in languages:
        setting = "TIERLINE_MULTILINGUAL_NLU_DIR" if route is not None and \
            language in route.languages else "TIERLINE_NLU_MODEL_DIR"
        analyzer = loaded.get(setting)
        if analyzer is None:
            continue
        if language in analyzer.languages:
            served.append(f"{language} ({analyzer.model_id.name})")
        else:
            report.add("warning", "models", f"language {language!r} of the flow is served by "
                       f"{stacks[setting][0]}, which was not trained on it "
                       f"({', '.join(analyzer.languages)}): its scores are not trustworthy; "
                       "route it to the multilingual bundle (TIERLINE_MULTILINGUAL_LANGUAGES)")
    if served:
        report.add("ok", "models", f"languages served by a bundle trained on them: {', '.join(served)}")
