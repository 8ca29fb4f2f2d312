"""The service tree: which actors run, in what order, under which policy.

Start order is alerter, classifier, checkpointer, node, so every peer a child may
need on start-up is already there; shutdown runs in reverse, after a final
checkpoint has been taken while the node still answers.
"""

from __future__ import annotations

import logging
import os

import pykka

from actors.alerter import AlerterActor
from actors.checkpointer import CheckpointerActor
from actors.classifier import ClassifierActor
from actors.inbox import Inbox
from actors.messages import CheckpointFailed, CheckpointNow, CheckpointSaved, WhereIs
from actors.node_actor import TradingNodeActor
from storage import ControlChannel, Retention, RunInfo, Store
from supervisor.config import TELEGRAM_TOKEN_ENV, ServiceConfig
from supervisor.spec import ChildSpec, Restart, SupervisorSpec
from supervisor.supervisor import Supervisor

log = logging.getLogger(__name__)

FINAL_CHECKPOINT_TIMEOUT_S = 15.0


def service_spec(config: ServiceConfig, run: RunInfo, restore: bool = True) -> SupervisorSpec:
    db, node = config.db_path, config.node
    sv = config.supervision
    return SupervisorSpec(
        children=(
            ChildSpec(
                "alerter",
                lambda ctx: AlerterActor.start(
                    ctx,
                    db,
                    node.trader_id,
                    node.mode.value,
                    telegram=config.telegram,
                    token=os.environ.get(TELEGRAM_TOKEN_ENV),
                ),
                Restart.PERMANENT,
            ),
            ChildSpec(
                "classifier",
                lambda ctx: ClassifierActor.start(ctx, breakers=config.breakers),
                Restart.PERMANENT,
            ),
            ChildSpec(
                "checkpointer",
                lambda ctx: CheckpointerActor.start(
                    ctx,
                    db,
                    run,
                    interval_s=config.checkpoint_interval_s,
                    heartbeat_interval_s=config.heartbeat_interval_s,
                    retention=Retention(
                        config.keep_checkpoints, config.keep_hourly_h, config.keep_daily_d
                    ),
                    halt_after_intervals=config.halt_after_failed_intervals,
                ),
                Restart.PERMANENT,
            ),
            ChildSpec(
                "node",
                lambda ctx: TradingNodeActor.start(ctx, node, restore=restore),
                Restart.PERMANENT,
                shutdown_timeout_s=20.0,
            ),
        ),
        strategy=sv.strategy,
        max_restarts=sv.max_restarts,
        period_s=sv.period_s,
        backoff_initial_s=sv.backoff_initial_s,
        backoff_max_s=sv.backoff_max_s,
        escalation=sv.escalation,
    )


class Service:
    """One run of the tree: opens the run record, starts, stops with a final checkpoint."""

    def __init__(self, config: ServiceConfig, restore: bool = True) -> None:
        self.config = config
        self._restore = restore
        self.events = Inbox()
        self._store = Store(config.db_path)
        self.run = self._store.open_run(config.node.trader_id, config.node.mode.value, os.getpid())
        self.supervisor: pykka.ActorRef[Supervisor] | None = None

    def start(self) -> None:
        self.supervisor = Supervisor.start(
            service_spec(self.config, self.run, self._restore), parent=self.events
        )
        log.info(
            "service started: trader %s, mode %s, run %d, db %s",
            self.run.trader_id,
            self.run.mode,
            self.run.run_id,
            self.config.db_path,
        )

    @property
    def trader_id(self) -> str:
        return self.run.trader_id

    def open_control(self) -> ControlChannel:
        return ControlChannel(self.config.db_path)

    def tell(self, role: str, message: object) -> bool:
        """Deliver to the current incarnation of ``role``; ``False`` if it is not running."""
        if self.supervisor is None or not self.supervisor.is_alive():
            return False
        try:
            ref = self.supervisor.ask(WhereIs(role), timeout=5.0)
        except (pykka.ActorDeadError, pykka.Timeout):
            return False
        if not isinstance(ref, pykka.ActorRef):
            return False
        try:
            ref.tell(message)
        except pykka.ActorDeadError:
            return False
        return True

    def final_checkpoint(self) -> CheckpointSaved | CheckpointFailed:
        reply = Inbox()
        if not self.tell("checkpointer", CheckpointNow(final=True, notify=reply)):
            return CheckpointFailed("checkpointer is not running", final=True)
        try:
            result = reply.expect_any(
                (CheckpointSaved, CheckpointFailed), timeout=FINAL_CHECKPOINT_TIMEOUT_S
            )
        except TimeoutError as exc:
            return CheckpointFailed(str(exc), final=True)
        assert isinstance(result, CheckpointSaved | CheckpointFailed)
        return result

    def stop(self, reason: str) -> CheckpointSaved | CheckpointFailed:
        result = self.final_checkpoint()
        if isinstance(result, CheckpointSaved):
            log.info("final checkpoint %d saved", result.checkpoint_id)
        else:
            log.error("final checkpoint failed: %s", result.reason)
        if self.supervisor is not None:
            try:
                self.supervisor.stop(block=True, timeout=60.0)
            except pykka.Timeout:
                log.error("supervisor did not stop within 60 s")
        self._store.close_run(self.run, reason)
        self._store.close()
        log.info("service stopped: %s", reason)
        return result
