"""The service's long-lived parts, built once from the settings and injected into routes.

Database (migrated at start), the turn engine (NLU + policy + bot), the durable worker, the
outbox sender (when sending is configured) and the notify outbox's sender (when a Slack,
webhook, Zendesk or bot runtime callback target is configured).
"""

from __future__ import annotations

import logging
import threading

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
from tierline.serving.metrics import METRICS
from tierline.serving.registry import ChampionRegistry, ChampionWatcher, ModelChoice
from tierline.serving.queue.sender import OutboxSender
from tierline.serving.settings import Settings
from tierline.serving.storage.db import Database
from tierline.serving.storage.models import Job, Ticket
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
        self.watcher = None
        self.models = ModelChoice(settings.nlu_model_dir, settings.policy_dir)
        if settings.model_registry_uri:
            self.registry = ChampionRegistry(settings.model_registry_uri, settings.model_cache_dir)
            self.models = self.registry.choose(self.models)
            if settings.model_registry_poll_seconds > 0:
                self.watcher = ChampionWatcher(self, settings.model_registry_poll_seconds)
            if analyzer is not None and self.models.nlu_version:
                analyzer = None  # the registry's champion replaces the given analyzer
        analyzer = analyzer or BundleAnalyzer.load(self.models.nlu_dir, threads=settings.nlu_threads)
        self.engine = self._engine(analyzer, self.models)
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
                                      notify_targets=ticket_targets)
        self.worker = JobWorker(self.db, self.engine, poll_seconds=settings.worker_poll_seconds,
                                lease_seconds=settings.job_lease_seconds,
                                max_attempts=settings.job_max_attempts,
                                batch_size=settings.worker_batch_size,
                                threads=settings.worker_threads,
                                on_ticket=self.ticket_created,
                                on_replies=lambda: self.sender and self.sender.wake(),
                                notify_targets=ticket_targets)
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
        """The turn engine on ``models``, with the settings' language route (its second model
        stack loads on the first conversation in one of its languages)."""
        return TurnEngine.load(self.settings.flow_path, analyzer=analyzer,
                               policy_dir=models.policy_dir, route=self.settings.language_route(),
                               threads=self.settings.nlu_threads)

    def reload(self) -> dict:
        """Load the models again and switch to them without a restart: the registry's current
        champions when a registry is configured, else the settings' folders.

        The new engine is built beside the old one; the swap is one reference assignment per
        user (routes read ``services.engine``/``batcher`` per request, the worker per job), so
        requests in flight finish on the old models and none is dropped. Serialised, so a
        watcher and an admin cannot interleave two swaps.
        """
        with self._reload_lock:
            settings = self.settings
            models = ModelChoice(settings.nlu_model_dir, settings.policy_dir)
            if self.registry is not None:
                models = self.registry.choose(models)
            analyzer = BundleAnalyzer.load(models.nlu_dir, threads=settings.nlu_threads)
            engine = self._engine(analyzer, models)
            old_batcher = self.batcher
            self.batcher = BatchingAnalyzer(engine.analyze_texts)
            self.engine = self.worker.engine = self.decider.engine = engine
            self.models = models
            old_batcher.close()
            log.info("models reloaded: %s", models.describe())
            return {**models.describe(), "nlu_metrics": analyzer.config.metrics,
                    "policy_metrics": engine.policy.artifact.metrics}

    def start(self) -> None:
        """Migrate the schema, then start the background threads."""
        self.db.migrate()
        if self.notifications:
            self.notifications.start()
        self.intake.start()
        self.decider.start()
        self.worker.start()
        if self.watcher:
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
        if self.watcher:
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
        """Queue depth per team and pending jobs, read at scrape time."""
        with self.db.session() as s:
            METRICS.jobs_pending.set(s.scalar(select(func.count()).select_from(Job).where(
                Job.status == "pending")) or 0)
            for team, count in s.execute(select(Ticket.team, func.count()).where(
                    Ticket.status != "resolved").group_by(Ticket.team)):
                METRICS.queue_depth.labels(team=team).set(count)
