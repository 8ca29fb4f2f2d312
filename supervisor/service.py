"""The service tree: which actors run, in what order, under which policy.

Start order is alerter, classifier, checkpointer, gate, node, so every peer a child
may need on start-up is already there; shutdown runs in reverse, after a final
checkpoint has been taken while the node still answers.

Child specs read the config through a ``LiveConfig`` when a child (re)starts, not
a copy taken at start-up: a reload (SIGHUP) reaches the running actors as messages
and every later restart of an actor as its settings. One service per trader and
database, and one per binance-testnet account on the host: a second one is refused
(``AlreadyRunning``) before it records anything.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import pykka

from actors.alerter import AlerterActor, PumpOutbox
from actors.base import ChildContext
from actors.checkpointer import CheckpointerActor
from actors.classifier import ClassifierActor
from actors.gate import GateActor
from actors.inbox import Inbox
from actors.node_actor import TradingNodeActor
from protocol import (
    TELEGRAM_TOKEN_ENV,
    TESTNET_KEY_ENV,
    Beat,
    CheckpointFailed,
    CheckpointSaved,
    ConfigReloaded,
    ExpectFinal,
    Mode,
    QueryState,
    UpdateBreakers,
    UpdateRisk,
    WhereIs,
    place_supervisor,
)
from storage import ControlChannel, GateRow, RunInfo, StorageError, Store
from storage.lock import InstanceLock, account_hash, account_lock_path, lock_path
from storage.store import utc_now
from supervisor.config import (
    ConfigError,
    ServiceConfig,
    load_config,
)
from supervisor.health import unresponsive
from supervisor.heap import freeze_heap
from supervisor.spec import ChildSpec, Restart, SupervisorSpec
from supervisor.supervisor import Supervisor

log = logging.getLogger(__name__)

OUTBOX_DRAIN_TIMEOUT_S = 10.0
# Room for the final checkpoint's retries (``actors.checkpointer.FINAL_ATTEMPTS`` of the
# 1 s busy timeout, with a backoff between them) before the checkpointer is given up.
CHECKPOINTER_SHUTDOWN_S = 20.0


class LiveConfig:
    """The config as it is now: replaced by a reload, read by every (re)start of a child."""

    def __init__(self, config: ServiceConfig) -> None:
        self._lock = threading.Lock()
        self._config = config

    def get(self) -> ServiceConfig:
        with self._lock:
            return self._config

    def set(self, config: ServiceConfig) -> None:
        with self._lock:
            self._config = config


def service_spec(
    config: ServiceConfig | LiveConfig,
    run: RunInfo,
    since_run: int = 0,
    account_lock: Path | None = None,
) -> SupervisorSpec:
    """The tree; ``since_run`` > 0 (a ``--fresh`` run) ignores earlier runs' checkpoints;
    ``account_lock``: the node's lock of its venue account (binance-testnet)."""
    live = config if isinstance(config, LiveConfig) else LiveConfig(config)
    first = live.get()
    db, sv = first.db_path, first.settings.supervisor
    started_at = time.time()  # chat commands sent before it were meant for another run
    if first.settings.metrics.enabled:
        # Only then: prometheus-client and the probe server are the metrics' alone.
        from actors.metrics import MetricsActor
    metrics = (
        (
            ChildSpec(
                "metrics",
                lambda ctx: MetricsActor.start(
                    ctx,
                    run.trader_id,
                    live.get().settings.metrics,
                    live.get().settings.breakers,
                    live.get().settings.service.checkpoint_interval_s,
                    live.get().settings.service.heartbeat_interval_s,
                    starting_balance=None
                    if live.get().settings.service.mode is Mode.BINANCE_TESTNET
                    else live.get().settings.account.starting_balance,
                ),
                Restart.PERMANENT,
            ),
        )
        if first.settings.metrics.enabled
        else ()
    )
    return SupervisorSpec(
        children=(
            *metrics,  # first: listening before anyone has news for it
            ChildSpec(
                "alerter",
                lambda ctx: AlerterActor.start(
                    ctx,
                    db,
                    run.trader_id,
                    run.mode,
                    telegram=live.get().telegram,
                    token=os.environ.get(TELEGRAM_TOKEN_ENV),
                    started_at=started_at,
                    readiness=live.get().settings.readiness,
                ),
                Restart.PERMANENT,
            ),
            ChildSpec(
                "classifier",
                lambda ctx: ClassifierActor.start(
                    ctx, breakers=live.get().settings.breakers, risk=live.get().settings.risk
                ),
                Restart.PERMANENT,
            ),
            ChildSpec(
                "checkpointer",
                lambda ctx: _checkpointer(ctx, live.get(), run, since_run),
                Restart.PERMANENT,
                shutdown_timeout_s=CHECKPOINTER_SHUTDOWN_S,  # the final write's retries
            ),
            ChildSpec(
                "gate",
                lambda ctx: GateActor.start(ctx, db, run.trader_id),
                Restart.PERMANENT,
            ),
            ChildSpec(
                "node",
                lambda ctx: TradingNodeActor.start(
                    ctx,
                    replace(
                        live.get().node,
                        lock_path=lock_path(db, run.trader_id, node=True),
                        account_lock_path=account_lock,
                    ),
                    hang_timeout_s=live.get().settings.service.node_hang_timeout_s,
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


def _checkpointer(
    ctx: ChildContext, config: ServiceConfig, run: RunInfo, since_run: int
) -> pykka.ActorRef[CheckpointerActor]:
    return CheckpointerActor.start(
        ctx,
        config.db_path,
        run,
        config.settings.service,
        beats=False,  # the runtime beats, while every actor answers
        since_run=since_run,
    )


def account_lock_of(
    config: ServiceConfig, node: bool = False, env: Mapping[str, str] | None = None
) -> tuple[Path, str] | None:
    """binance-testnet: the lock file of the account its keys trade, and the account's
    hash (what a refusal names: never the key). ``None`` in the other modes, which trade
    no account (binance-sandbox reads public data without keys)."""
    if config.node.mode is not Mode.BINANCE_TESTNET:
        return None
    key = (os.environ if env is None else env).get(TESTNET_KEY_ENV[0], "")
    if not key:
        return None  # the loader refuses a binance-testnet config without its keys
    return account_lock_path("binance-testnet", key, node=node, env=env), account_hash(key)


def refuse_if_running(config: ServiceConfig) -> None:
    """``AlreadyRunning`` if another session holds the service's locks - its trader's on
    its database, or its binance-testnet account's - taken and dropped at once (a probe:
    ``Service`` takes them for good)."""
    trader_id = config.node.trader_id
    InstanceLock(
        lock_path(config.db_path, trader_id), f"trader {trader_id} on {config.db_path}"
    ).acquire().release()
    account = _lock_account(config, trader_id)
    if account is not None:
        account.release()


def _lock_account(config: ServiceConfig, trader_id: str) -> InstanceLock | None:
    account = account_lock_of(config)
    if account is None:
        return None
    path, name = account
    lock = InstanceLock(
        path,
        f"the binance-testnet account of {TESTNET_KEY_ENV[0]} (hash {name})",
        busy="is already traded by another session",
        holder=f"trader {trader_id} on {config.db_path.resolve()}",
    )
    try:
        return lock.acquire()
    except OSError as exc:
        raise StorageError(
            f"cannot take the account lock in {path.parent}: {exc.strerror or exc}"
        ) from None


PROBE_WAIT_S = 0.5  # a CLI's probe of the lock (``held``) holds it for a moment


class Service:
    """One run of the tree: opens the run record, starts, stops with a final checkpoint."""

    def __init__(
        self, config: ServiceConfig, restore: bool = True, config_path: Path | None = None
    ) -> None:
        self.live = LiveConfig(config)
        self.config_path = config_path
        self.events = Inbox()
        trader_id = config.node.trader_id
        # Before anything is recorded: a second service of this trader is refused.
        self._lock = InstanceLock(
            lock_path(config.db_path, trader_id), f"trader {trader_id} on {config.db_path}"
        ).acquire(wait_s=PROBE_WAIT_S)
        self._account_lock: InstanceLock | None = None
        try:
            # And a second session on the same venue account, whatever its trader and
            # database (binance-testnet: the dashboard gives each launch a trader id).
            self._account_lock = _lock_account(config, trader_id)
            self._store = Store(config.db_path)
            self.run = self._store.open_run(
                trader_id, config.node.mode.value, os.getpid(), config.recorded()
            )
            self._since_run = 0 if restore else self.run.run_id
            if not restore:
                self._start_fresh(trader_id)
        except BaseException:
            self._release_locks()
            raise
        self.supervisor: pykka.ActorRef[Supervisor] | None = None

    def _release_locks(self) -> None:
        if self._account_lock is not None:
            self._account_lock.release()
        self._lock.release()

    @property
    def config(self) -> ServiceConfig:
        return self.live.get()

    def _start_fresh(self, trader_id: str) -> None:
        """``--fresh``: no checkpoint of an earlier run is restored, and every halt on
        record - the account's and each strategy's - is lifted (they belonged to the
        session that is being started over); the event and the log say which."""
        active = GateRow("ACTIVE", "fresh start (run --fresh)", "operator", utc_now())
        previous = self._store.gate(trader_id)
        self._store.set_gate(trader_id, active)
        account = previous.reason if previous is not None and previous.state != "ACTIVE" else None
        strategies: dict[str, str] = {}
        for sid, row in self._store.strategy_gates(trader_id).items():
            if row.state != "ACTIVE":
                self._store.set_strategy_gate(trader_id, sid, active)
                strategies[sid] = row.reason
        lifted = ([f"the account's ({account})"] if account is not None else []) + [
            f"{sid}'s ({reason})" for sid, reason in strategies.items()
        ]
        cleared = f"; halts on record lifted: {', '.join(lifted)}" if lifted else ""
        self._store.append_event(
            self.run,
            "fresh_start",
            {
                "detail": f"earlier checkpoints are not restored{cleared}",
                "lifted": {"account": account, "strategies": strategies},
            },
        )
        log.warning("fresh start: earlier checkpoints are not restored%s", cleared)

    def start(self) -> None:
        account = account_lock_of(self.config, node=True)
        self.spec = service_spec(
            self.live, self.run, self._since_run, None if account is None else account[0]
        )
        service = self.config.settings.service
        if service.split_cpus or service.node_cpus:
            # Before the tree: its threads inherit the supervisor's one CPU (the node
            # child gets the others, or node_cpus).
            home = place_supervisor(service.node_cpus)
            log.info("the supervisor on CPU %d, the node child on the others", home)
        self.supervisor = Supervisor.start(self.spec, parent=self.events)
        freeze_heap()  # the tree is built: a full collection walks only what comes next
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
        """Deliver to the current incarnation of ``role``; ``False`` if it is not running
        (or the tree has no such role: the metrics actor when metrics are off)."""
        if self.supervisor is None or not self.supervisor.is_alive():
            return False
        if role not in {c.role for c in self.spec.children}:
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
        except Exception as exc:  # whatever the file does, it never stops a trading service
            log.exception("reload: the config could not be read")
            first = (str(exc).splitlines() or [""])[0]
            result = ConfigReloaded(
                False, f"rejected, old limits kept: {type(exc).__name__}: {first}"
            )
        else:
            before = self.config.settings
            after = fresh.settings
            ignored = [
                name
                for name in after.model_fields
                if name not in ("risk", "breakers")
                and getattr(before, name) != getattr(after, name)
            ]
            # Restarts read it from here; the running actors are told.
            self.live.set(
                replace(
                    self.config,
                    settings=before.model_copy(
                        update={"risk": after.risk, "breakers": after.breakers}
                    ),
                )
            )
            self.tell("node", UpdateRisk(after.risk, after.breakers))
            self.tell("classifier", UpdateBreakers(after.breakers, after.risk))
            detail = (
                f"risk {before.risk!r} -> {after.risk!r}; "
                f"breakers {before.breakers!r} -> {after.breakers!r}"
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
            self.ask("alerter", PumpOutbox(last=True), timeout_s)
        except TimeoutError as exc:
            log.warning("outbox not drained: %s", exc)

    def stop(self, reason: str) -> CheckpointSaved | CheckpointFailed | None:
        """Stop the tree; the final checkpoint is the node's state after it stopped.

        The checkpointer is told to expect it, and the tree stops in reverse order:
        the node first (its child stops trading, snapshots itself, and the node actor
        hands that to the checkpointer), the checkpointer after it has written it. A
        snapshot taken before the node stopped could miss a fill that came after.

        Returns what became of the final checkpoint: saved, failed (the checkpointer
        could not write it, or was not running to), or ``None`` when there was no node
        to take it (the last checkpoint is then the latest state).
        """
        final = Inbox()
        expecting = self.tell("checkpointer", ExpectFinal(final))
        self.drain_outbox(OUTBOX_DRAIN_TIMEOUT_S)
        if self.supervisor is not None:
            try:
                self.supervisor.stop(block=True, timeout=60.0)
            except pykka.Timeout:
                log.error("supervisor did not stop within 60 s")
        result: CheckpointSaved | CheckpointFailed | None = (
            None if expecting else CheckpointFailed("the checkpointer was not running", True)
        )
        for message in final.poll():
            if isinstance(message, CheckpointSaved | CheckpointFailed):
                result = message
        if isinstance(result, CheckpointSaved):
            log.info("final checkpoint %d saved", result.checkpoint_id)
        elif result is None:
            log.warning(
                "no final checkpoint: the node was not running to take it; "
                "the last checkpoint is the latest state"
            )
        else:
            log.error("final checkpoint failed: %s", result.reason)
        try:
            self._store.close_run(self.run, reason)
        except StorageError as exc:  # the end of the run is not on record: say so, go on
            log.error("the run's end was not recorded: %s", exc)
        finally:
            self._store.close()
            self._release_locks()
        log.info("service stopped: %s", reason)
        return result
