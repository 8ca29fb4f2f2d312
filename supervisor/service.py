"""The service tree: which actors run, in what order, under which policy.

Start order is alerter, classifier, checkpointer, node, so every peer a child may
need on start-up is already there; shutdown runs in reverse, after a final
checkpoint has been taken while the node still answers.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path

import pykka

from actors.alerter import AlerterActor, PumpOutbox
from actors.checkpointer import CheckpointerActor
from actors.classifier import ClassifierActor
from actors.inbox import Inbox
from actors.messages import (
    Beat,
    CheckpointFailed,
    CheckpointNow,
    CheckpointSaved,
    ConfigReloaded,
    QueryState,
    UpdateBreakers,
    UpdateRisk,
    WhereIs,
)
from actors.node_actor import TradingNodeActor
from storage import ControlChannel, Retention, RunInfo, Store
from supervisor.config import TELEGRAM_TOKEN_ENV, ConfigError, ServiceConfig, load_config
from supervisor.health import unresponsive
from supervisor.spec import ChildSpec, Restart, SupervisorSpec
from supervisor.supervisor import Supervisor

log = logging.getLogger(__name__)

FINAL_CHECKPOINT_TIMEOUT_S = 15.0
OUTBOX_DRAIN_TIMEOUT_S = 10.0


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
                    heartbeat_interval_s=None,  # the runtime beats while every actor answers
                    retention=Retention(
                        config.keep_checkpoints, config.keep_hourly_h, config.keep_daily_d
                    ),
                    halt_after_intervals=config.halt_after_failed_intervals,
                ),
                Restart.PERMANENT,
            ),
            ChildSpec(
                "node",
                lambda ctx: TradingNodeActor.start(
                    ctx, node, restore=restore, hang_timeout_s=config.node_hang_timeout_s
                ),
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

    def __init__(
        self, config: ServiceConfig, restore: bool = True, config_path: Path | None = None
    ) -> None:
        self.config = config
        self.config_path = config_path
        self._restore = restore
        self.events = Inbox()
        self._store = Store(config.db_path)
        self.run = self._store.open_run(config.node.trader_id, config.node.mode.value, os.getpid())
        self.supervisor: pykka.ActorRef[Supervisor] | None = None

    def start(self) -> None:
        self.spec = service_spec(self.config, self.run, self._restore)
        self.supervisor = Supervisor.start(self.spec, parent=self.events)
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

    def ask(self, role: str, message: object, timeout_s: float) -> object:
        """Ask the current incarnation of ``role``; ``TimeoutError`` if it does not answer."""
        if self.supervisor is None or not self.supervisor.is_alive():
            raise TimeoutError("supervisor is not running")
        try:
            ref = self.supervisor.ask(WhereIs(role), timeout=timeout_s)
            if not isinstance(ref, pykka.ActorRef):
                raise TimeoutError(f"{role} is not running")
            return ref.ask(message, timeout=timeout_s)
        except (pykka.Timeout, pykka.ActorDeadError) as exc:
            raise TimeoutError(f"{role} did not answer within {timeout_s:g} s") from exc

    def unresponsive(self, timeout_s: float) -> list[str]:
        """Roles (and the supervisor) that do not answer a ping within ``timeout_s``."""
        return unresponsive(self.supervisor, [c.role for c in self.spec.children], timeout_s)

    def state(self, timeout_s: float = 2.0) -> str:
        try:
            state = self.ask("checkpointer", QueryState(), timeout_s)
        except TimeoutError:
            return "unknown"
        return str(state)

    def beat(self) -> None:
        self.tell("checkpointer", Beat())

    def reload(self) -> ConfigReloaded:
        """Re-read the config and apply only the risk limits and breakers (SIGHUP)."""
        try:
            fresh = load_config(self.config_path)
        except ConfigError as exc:
            result = ConfigReloaded(False, "rejected, old limits kept: " + "; ".join(exc.problems))
        else:
            old_risk, old_breakers = self.config.node.risk, self.config.breakers
            ignored = [
                name
                for name, before, after in (
                    ("instrument", self.config.node.instrument_id, fresh.node.instrument_id),
                    ("mode", self.config.node.mode, fresh.node.mode),
                    ("sizing", self.config.node.sizing, fresh.node.sizing),
                    ("strategy", self.config.node.strategy, fresh.node.strategy),
                    ("db_path", self.config.db_path, fresh.db_path),
                )
                if before != after
            ]
            self.tell("node", UpdateRisk(fresh.node.risk))
            self.tell("classifier", UpdateBreakers(fresh.breakers))
            self.config = replace(
                self.config,
                node=replace(self.config.node, risk=fresh.node.risk),
                breakers=fresh.breakers,
            )
            detail = (
                f"risk {old_risk} -> {fresh.node.risk}; breakers {old_breakers} -> {fresh.breakers}"
            )
            if ignored:
                detail += f"; changes to {', '.join(ignored)} need a restart and were not applied"
            result = ConfigReloaded(True, detail)
        self.tell("checkpointer", result)
        log.log(logging.INFO if result.accepted else logging.ERROR, "reload: %s", result.detail)
        return result

    def drain_outbox(self, timeout_s: float) -> None:
        """One last delivery round before the alerter stops, bounded by ``timeout_s``."""
        try:
            self.ask("alerter", PumpOutbox(), timeout_s)
        except TimeoutError as exc:
            log.warning("outbox not drained: %s", exc)

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
        self.drain_outbox(OUTBOX_DRAIN_TIMEOUT_S)
        if self.supervisor is not None:
            try:
                self.supervisor.stop(block=True, timeout=60.0)
            except pykka.Timeout:
                log.error("supervisor did not stop within 60 s")
        self._store.close_run(self.run, reason)
        self._store.close()
        log.info("service stopped: %s", reason)
        return result
