"""The service's long-lived parts, built once from the settings and injected into routes.

Database (migrated at start), the turn engine (NLU + policy + bot), the durable worker, the
outbox sender (when sending is configured), the notify outbox's sender (when a Slack,
webhook, Zendesk or bot runtime callback target is configured) and the live watcher, which
keeps this process on the generation of models and flow every process serves
(:mod:`tierline.serving.live`).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

from sqlalchemy import func, select

from tierline.nlu.analyzer import BundleAnalyzer
from tierline.nlu.engine import TurnEngine
from tierline.serving.api_keys import ApiKeys
from tierline.serving.queue.batching import BatchingAnalyzer
from tierline.serving.queue.decider import BatchedDecider
from tierline.serving.notify.notify import Notifier, SignedWebhookNotifier, SlackNotifier
from tierline.serving.notify.outbox import NotificationSender, TicketExporter
from tierline.serving.notify.runtime import RUNTIME, RuntimeNotifier
from tierline.serving.notify.sinks import ZendeskSink
from tierline.serving.queue.intake import IntakeWriter
from tierline.nlu.reasons import from_stored
from tierline.serving.live import LiveRow, LiveState, LiveWatcher, flow_digest
from tierline.serving.metrics import METRICS, forget_this_process
from tierline.serving.registry import ChampionRegistry, ModelChoice
from tierline.serving.queue.sender import OutboxSender
from tierline.serving.settings import Settings
from tierline.serving.storage.db import Database, Timeouts
from tierline.serving.storage.models import Job, Ticket, utcnow
from tierline.serving.tickets.canned import CannedLibrary
from tierline.serving.tickets.lifecycle import known_teams
from tierline.serving.channels.whatsapp.client import GraphClient
from tierline.serving.queue.worker import JobWorker

log = logging.getLogger(__name__)


class Services:
    """Everything with a lifetime longer than a request."""

    def __init__(self, settings: Settings, analyzer: BundleAnalyzer | None = None) -> None:
        self.settings = settings
        self.db = Database.for_settings(settings)
        self.api_keys = ApiKeys(self.db, settings.api_key_cache_seconds)
        self._reload_lock = threading.Lock()
        self.registry = None
        self.models = self._folders()
        if settings.model_registry_uri:
            self.registry = ChampionRegistry(settings.model_registry_uri, settings.model_cache_dir,
                                             multilingual=settings.language_route() is not None)
            self.models = self.registry.choose(self.models)
            if analyzer is not None and self.models.nlu_version:
                analyzer = None  # the registry's champion replaces the given analyzer
        analyzer = analyzer or BundleAnalyzer.load(self.models.nlu_dir, threads=settings.nlu_threads)
        self.engine = self._engine(analyzer, self.models)
        #: The console's canned replies, checked now: a bad file stops the start (CannedError).
        self.canned = CannedLibrary(settings.canned_replies_path,
                                    known_teams(self.engine.flow.escalation.routing),
                                    self.engine.flow.languages)
        self.live = LiveRow(self.db)
        #: The generation this process serves, and what it is (generation read at start).
        self.serving = self._state(self.engine, self.models)
        #: The last reload that failed in this process (None once one succeeds): trigger,
        #: generation, error, time. ``GET /v1/admin/models`` shows it.
        self.reload_failure: dict | None = None
        self.watcher = LiveWatcher(self, settings.live_poll_seconds,
                                   settings.model_registry_poll_seconds if self.registry else 0.0)
        self.batcher = BatchingAnalyzer(self.engine.analyze_texts)
        self.intake = IntakeWriter(self.db, settings.whatsapp_phone_number_id, self.new_state,
                                   max_queue=settings.intake_queue_max,
                                   timeout=settings.intake_timeout_seconds)
        notifiers = self._notifiers()
        # Each ticket opened is announced to these; the runtime gets conversation events only.
        ticket_targets = tuple(target for target in notifiers if target != RUNTIME)
        self.notifications = None
        if notifiers:
            self.notifications = NotificationSender(
                self.db, notifiers, max_age_seconds=settings.notify_max_age_seconds,
                base_delay=settings.notify_retry_base_seconds,
                max_delay=settings.notify_retry_max_seconds,
                lease_seconds=settings.notify_lease_seconds,
                poll_seconds=settings.notify_poll_seconds)
        self.decider = BatchedDecider(self.db, self.engine, on_ticket=self.ticket_created,
                                      notify_targets=ticket_targets,
                                      public_url=settings.public_url)
        self.worker = JobWorker(self.db, self.engine, poll_seconds=settings.worker_poll_seconds,
                                lease_seconds=settings.job_lease_seconds,
                                max_attempts=settings.job_max_attempts,
                                batch_size=settings.worker_batch_size,
                                threads=settings.worker_threads,
                                on_ticket=self.ticket_created,
                                on_replies=lambda: self.sender and self.sender.wake(),
                                notify_targets=ticket_targets,
                                public_url=settings.public_url)
        self.sender = None
        if settings.sending_enabled:
            client = GraphClient(settings.whatsapp_api_base,
                                 settings.whatsapp_access_token.get_secret_value(),
                                 timeout=settings.whatsapp_send_timeout,
                                 concurrency=settings.sender_concurrency)
            self.sender = OutboxSender(self.db, client, rate=settings.whatsapp_send_rate,
                                       max_age_seconds=settings.whatsapp_max_send_age_seconds,
                                       base_delay=settings.whatsapp_retry_base_seconds,
                                       max_delay=settings.whatsapp_retry_max_seconds,
                                       lease_seconds=settings.sending_lease_seconds,
                                       poll_seconds=settings.worker_poll_seconds,
                                       batch_size=settings.sender_batch_size,
                                       max_in_flight=settings.sender_concurrency)

    def _notifiers(self) -> dict[str, Notifier]:
        """The configured notification and export targets, by the name their rows carry
        (``slack``, ``webhook``, ``zendesk``), and the bot runtime's callback (``runtime``)."""
        settings, timeout = self.settings, self.settings.notify_timeout_seconds
        notifiers: list[Notifier] = []
        if settings.notify_slack_url:
            notifiers.append(SlackNotifier(settings.notify_slack_url, timeout=timeout))
        if settings.notify_webhook_url and settings.notify_webhook_secret:
            notifiers.append(SignedWebhookNotifier(
                settings.notify_webhook_url, settings.notify_webhook_secret.get_secret_value(),
                timeout=timeout))
        if settings.zendesk_enabled:
            notifiers.append(TicketExporter(self.db, ZendeskSink(
                settings.zendesk_base_url, settings.zendesk_email,
                settings.zendesk_api_token.get_secret_value(), timeout=timeout)))
        if settings.runtime_callback_enabled:
            notifiers.append(RuntimeNotifier(
                settings.runtime_callback_url, settings.runtime_callback_secret.get_secret_value(),
                timeout=timeout))
        return {notifier.name: notifier for notifier in notifiers}

    def _engine(self, analyzer: BundleAnalyzer, models: ModelChoice) -> TurnEngine:
        """The turn engine on ``models``, with the settings' language route on the multilingual
        pair ``models`` names (its second model stack loads on the first conversation in one of
        its languages)."""
        route = self.settings.language_route()
        if route is not None and models.multilingual_nlu_dir is not None:
            route = replace(route, nlu_dir=models.multilingual_nlu_dir,
                            policy_dir=models.multilingual_policy_dir)
        return TurnEngine.load(self.settings.flow_path, analyzer=analyzer,
                               policy_dir=models.policy_dir, route=route,
                               threads=self.settings.nlu_threads)

    @property
    def generation(self) -> int:
        """The ``live_versions`` generation this process serves."""
        return self.serving.generation

    def reload(self, reason: str = "admin reload") -> dict:
        """``POST /v1/admin/reload``: load the models and flow again (the registry's current
        champions when a registry is configured, else the settings' folders), announce them as
        the next generation, which every other process then follows, and switch.

        Loaded before anything is announced: a broken file raises here, and no process moves.
        """
        with self._reload_lock, self._recorded("admin", None):
            engine, models, state = self._load(self._models_now())
            generation = self.live.bump(state, reason)
            self._switch(engine, models, replace(state, generation=generation))
            return self.described()

    def follow_registry(self) -> None:
        """When a champion alias moved: load the new champions and announce them, unless
        another process announced a generation since this one's (it then follows that)."""
        champions = self.registry.champions()
        if champions == self.models.versions:
            return
        seen = self.generation
        if self.live.read().generation != seen:
            return  # behind: following the row comes first (it may be this very move)
        with self._reload_lock, self._recorded("registry", None):
            engine, models, state = self._load(self.registry.pinned(champions, self._folders()))
            moved = ", ".join(f"{name} {version}" for name, version in champions._asdict().items()
                              if version is not None)
            generation = self.live.bump(state, f"registry: {moved or 'no champions'}",
                                        expected=seen)
            if generation is None:
                log.info("a champion moved, but another process announced it first")
                return
            self._switch(engine, models, replace(state, generation=generation))

    def follow(self, live: LiveState) -> None:
        """Serve generation ``live`` (another process announced it): load the registry
        versions it names (or the folders) and the flow, then switch. Raises, still serving
        the previous models, when they cannot be loaded."""
        with self._reload_lock:
            if live.generation <= self.generation:
                return
            with self._recorded("follow", live.generation):
                models = self._folders()
                if self.registry is not None:
                    models = self.registry.pinned(live.versions, models)
                engine, models, state = self._load(models)
                self._switch(engine, models, replace(state, generation=live.generation))
            self._compare(live)

    def described(self) -> dict:
        """What this process serves (``GET /v1/admin/models``, the reload's answer)."""
        return {**self.models.describe(), **self.serving.describe(), "pid": os.getpid(),
                "reload_failure": self.reload_failure,
                "nlu_metrics": self.engine.analyzer.config.metrics,
                "policy_metrics": self.engine.policy.artifact.metrics}

    def _folders(self) -> ModelChoice:
        """The settings' folders: the English pair, and the multilingual route's (if any)."""
        route = self.settings.language_route()
        return ModelChoice(self.settings.nlu_model_dir, self.settings.policy_dir,
                           multilingual_nlu_dir=route.nlu_dir if route else None,
                           multilingual_policy_dir=route.policy_dir if route else None)

    def _models_now(self) -> ModelChoice:
        """The registry's champions (folders where none), or the folders without a registry."""
        return self.registry.choose(self._folders()) if self.registry else self._folders()

    def _load(self, models: ModelChoice) -> tuple[TurnEngine, ModelChoice, LiveState]:
        """A new engine on ``models`` and the flow file, beside the one serving, and what it
        is (its generation still 0)."""
        analyzer = BundleAnalyzer.load(models.nlu_dir, threads=self.settings.nlu_threads)
        engine = self._engine(analyzer, models)
        return engine, models, self._state(engine, models)

    def _state(self, engine: TurnEngine, models: ModelChoice) -> LiveState:
        return LiveState(0, models.nlu_version, models.policy_version,
                         str(engine.analyzer.model_id),
                         flow_digest(engine.flow, self.settings.flow_path),
                         models.multilingual_nlu_version, models.multilingual_policy_version)

    def _switch(self, engine: TurnEngine, models: ModelChoice, state: LiveState) -> None:
        """Serve ``engine`` from now on.

        The swap is one reference assignment per user (routes read ``services.engine`` /
        ``batcher`` per request, the worker per job), so requests in flight finish on the old
        models and none is dropped. Callers hold the reload lock, so a watcher and an admin
        cannot interleave two swaps.
        """
        old_batcher = self.batcher
        self.batcher = BatchingAnalyzer(engine.analyze_texts)
        self.engine = self.worker.engine = self.decider.engine = engine
        self.models = models
        self.serving = state
        old_batcher.close()
        METRICS.served_generation.set(state.generation)
        log.info("now serving generation %d: %s", state.generation, state.describe())

    @contextmanager
    def _recorded(self, trigger: str, generation: int | None) -> Iterator[None]:
        """Count the reload's outcome; remember a failure (the process keeps its models)."""
        try:
            yield
        except Exception as exc:
            METRICS.model_reloads.labels(trigger=trigger, outcome="failed").inc()
            self.reload_failure = {"trigger": trigger, "generation": generation,
                                   "error": f"{type(exc).__name__}: {exc}",
                                   "at": utcnow().isoformat()}
            raise
        METRICS.model_reloads.labels(trigger=trigger, outcome="ok").inc()
        self.reload_failure = None

    def _compare(self, live: LiveState) -> None:
        """Warn when this process loaded other files than the process that announced
        ``live`` (files differ between hosts, or changed again since)."""
        differs = live.differences(self.serving)
        if differs:
            log.warning("generation %d: this process loaded a different %s than the process "
                        "that announced it (%s here, %s there)", live.generation,
                        " and ".join(differs), [getattr(self.serving, d) for d in differs],
                        [getattr(live, d) for d in differs])

    def start(self) -> None:
        """Migrate the schema, then start the background threads."""
        self.db.migrate()
        live = self.live.read()
        self.serving = replace(self.serving, generation=live.generation)
        METRICS.served_generation.set(live.generation)
        self._compare(live)
        if self.notifications:
            self.notifications.start()
        self.intake.start()
        self.decider.start()
        self.worker.start()
        self.watcher.start()
        if self.sender:
            self.sender.start()
        else:
            log.warning("WhatsApp sending disabled: set TIERLINE_WHATSAPP_ACCESS_TOKEN and "
                        "TIERLINE_WHATSAPP_PHONE_NUMBER_ID (replies stay in the outbox)")
        if not self.settings.webhook_enabled:
            log.warning("WhatsApp webhook disabled: set TIERLINE_WHATSAPP_APP_SECRET and "
                        "TIERLINE_WHATSAPP_VERIFY_TOKEN to enable /webhooks/whatsapp")

    def stop(self) -> None:
        """Drain: finish the job, the send and the notification in hand, close the pool
        (notifications not yet delivered wait in their table)."""
        self.watcher.stop()
        self.intake.stop()
        self.decider.stop()
        self.worker.stop()
        if self.sender:
            self.sender.stop()
        if self.notifications:
            self.notifications.stop()
        self.batcher.close()
        self.db.dispose()
        forget_this_process()

    def new_state(self, conversation_id: str, customer_id: str) -> dict:
        """The initial state of a new conversation (tier from the customer directory)."""
        return self.engine.new_state(conversation_id, customer_id=customer_id).to_dict()

    def ticket_created(self, ticket: Ticket) -> None:
        """After the turn's transaction (which queued the ticket's notifications) committed:
        count it, and wake the notify outbox."""
        reasons = from_stored(ticket.context.get("reason_codes"), ticket.context.get("reasons"))
        METRICS.escalations.labels(team=ticket.team,
                                   reason=reasons[0].code if reasons else "unspecified").inc()
        if self.notifications:
            self.notifications.wake()

    def refresh_gauges(self) -> None:
        """Queue depth per team and pending jobs, read at scrape time.

        Every team of the flow is set, 0 when its queue is empty: a team left out would keep
        the last count any process wrote for it."""
        with self.db.session() as s:
            METRICS.jobs_pending.set(s.scalar(select(func.count()).select_from(Job).where(
                Job.status == "pending")) or 0)
            depth = dict.fromkeys(known_teams(self.engine.flow.escalation.routing), 0)
            depth.update(s.execute(select(Ticket.team, func.count()).where(
                Ticket.status != "resolved").group_by(Ticket.team)).all())
            for team, count in depth.items():
                METRICS.queue_depth.labels(team=team).set(count)
