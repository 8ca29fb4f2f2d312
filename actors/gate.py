"""GateActor: the one way halts and resumes reach the node, and what makes them durable.

A halt told straight to the node is lost whenever the node is restarting, and a node
that comes back ACTIVE after a fatal error trades on. So every halt and resume goes
through the gate. It forwards the command to the node at once (a halt waits for no
database write), records the desired trading state in the database, and answers
every node start with it (``GateQuery``): a node starts halted until a resume, after
a crash of its child, a restart of the service, or an escalation that left it down.

One strategy can be halted on its own (``Halt(strategy_id=...)``) while the others
trade: its record is kept beside the account's, applied on every node start the same
way, and confirmed by the node's ``OrdersCanceled`` naming it.

Whoever waits on a halt or resume (the operator's CLI, a Telegram chat) waits here,
not in the node actor, so the wait outlives a node restart: it is answered when the
node confirms - a node that starts halted confirms too - or with ``NotConfirmed``
after ``confirm_timeout_s``. The gate also says so on the alert channel: "Trading
halted" once the cancels are confirmed, "Trading resumed" once the node is ACTIVE,
under one fold key so the operator sees them in order.

The gate never fails because of the database: a record it cannot write is held in
memory (the latest state wins) and written on the next tick; a state it cannot read
at start is taken as HALTED, because not knowing is no reason to trade.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from actors.base import ChildContext, SupervisedActor
from actors.timer import Interval
from protocol import (
    MARKET,
    Alert,
    BreakerTripped,
    ErrorRaised,
    GateQuery,
    GateState,
    Halt,
    HaltMode,
    Mailbox,
    NodeStarted,
    NotConfirmed,
    OperationSucceeded,
    OrdersCanceled,
    Resume,
    Severity,
    TradingState,
    TradingStateChanged,
)
from storage import GateRow, StorageError, Store
from storage.store import utc_now

log = logging.getLogger(__name__)

ROLE = "gate"
OPERATION = "gate"
ALERT_KEY = "trading"
START_BUSY_TIMEOUT_S = 5.0  # halts and resumes fold together, in their order


@dataclass(frozen=True, slots=True)
class GateTick:
    """Once a second: expire waiters, write a held record."""


@dataclass(slots=True)
class _Waiter:
    command: str  # "halt" | "resume"
    notify: Mailbox
    deadline: float
    strategy_id: str | None = None  # a strategy's own halt or resume


def _what(strategy_id: str | None) -> str:
    return "Trading" if strategy_id is None else f"Strategy {strategy_id}"


class GateActor(SupervisedActor):
    def __init__(
        self,
        ctx: ChildContext,
        db_path: Path,
        trader_id: str,
        confirm_timeout_s: float = 20.0,
        tick_s: float = 1.0,
        busy_timeout_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(ctx)
        self._db_path = db_path
        self._trader_id = trader_id
        self._confirm_timeout_s = confirm_timeout_s
        self._tick_s = tick_s
        self._busy_timeout_s = busy_timeout_s
        self._clock = clock
        self._store: Store | None = None
        self._state = GateRow(TradingState.ACTIVE.value, "", "", utc_now())
        self._unsaved: GateRow | None = None
        self._strategies: dict[str, GateRow] = {}  # the strategies' own records
        self._unsaved_strategies: dict[str, GateRow] = {}
        # The latest halt / resume the node has not confirmed yet, by command and
        # strategy (None: the account's): (reason, source).
        self._unconfirmed: dict[tuple[str, str | None], tuple[str, str]] = {}
        self._waiters: list[_Waiter] = []
        self._known: tuple[str, ...] | None = None  # the node's strategies, once it started
        self._failed = False
        self._timer: Interval | None = None

    # ------------------------------------------------------------ lifecycle

    def started(self) -> None:
        self._timer = Interval(self._tick_s, self.actor_ref, GateTick, "gate-tick")
        try:
            # A write lock held for a moment (another actor's checkpoint) is waited out
            # at start; later writes give up sooner and are held and retried instead.
            self._store = Store(self._db_path, timeout_s=START_BUSY_TIMEOUT_S)
            found = self._store.gate(self._trader_id) or self._store.last_trading_state(
                self._trader_id
            )
            self._strategies = self._store.strategy_gates(self._trader_id)
            self._store.db.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_s * 1000)}")
        except StorageError as exc:
            self._state = GateRow(
                TradingState.HALTED.value,
                f"trading state unknown: {exc}",
                ROLE,
                utc_now(),
            )
            self._report(exc)
            return
        if found is not None:
            self._state = found
        log.info("gate: trading state %s (%s)", self._state.state, self._state.reason or "-")

    def stopped(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._write()  # a held record gets one last try
        if self._store is not None:
            self._store.close()

    # ------------------------------------------------------------ messages

    def receive(self, message: object) -> object:
        match message:
            case Halt(notify=notify, strategy_id=str(sid)) if self._unknown(sid, "halt", notify):
                pass
            case Resume(notify=notify, strategy_id=str(sid)) if self._unknown(
                sid, "resume", notify
            ):
                pass
            case Halt(
                reason=reason, source=source, notify=notify, strategy_id=strategy_id, mode=mode
            ):
                self._halt(reason, source, notify, strategy_id, mode)
            case Resume(reason=reason, source=source, notify=notify, strategy_id=strategy_id):
                self._resume(reason, source, notify, strategy_id)
            case GateQuery():
                return self.state
            case BreakerTripped(deepened=False, strategy_id=strategy_id, mode=mode):
                # The node halted itself (a replay's breakers, on market time): on record
                # like any halt, not sent back to it; its OrdersCanceled confirms it.
                self._halt(message.reason, MARKET, None, strategy_id, mode, forward=False)
            case BreakerTripped():
                pass
            case OrdersCanceled():
                self._halt_confirmed(message)
            case TradingStateChanged(
                state=TradingState.ACTIVE, reason=reason, strategy_id=strategy_id
            ):
                self._answer("resume", message, strategy_id)
                if self._unconfirmed.pop(("resume", strategy_id), None) is not None:
                    self.peers.tell(
                        "alerter",
                        Alert(
                            Severity.INFO,
                            f"{_what(strategy_id)} resumed",
                            f"{reason}.",
                            key=ALERT_KEY,
                        ),
                    )
            case NodeStarted(restored=restored, strategy_ids=strategy_ids):
                self.peers.resolve("node")  # a new node actor: the next halt goes there
                self._known = strategy_ids
                # A node that starts ACTIVE while a resume waits: the resume holds.
                active = self._state.state == TradingState.ACTIVE.value
                if active and (restored is None or restored.trading_state is TradingState.ACTIVE):
                    reason = f"{self._state.reason} (the node started ACTIVE)"
                    self._answer("resume", TradingStateChanged(TradingState.ACTIVE, reason))
                for sid, row in self._strategies.items():
                    if row.state == TradingState.ACTIVE.value:
                        started = TradingStateChanged(
                            TradingState.ACTIVE, f"{row.reason} (the node started)", sid
                        )
                        self._answer("resume", started, sid)
            case TradingStateChanged():
                pass
            case GateTick():
                self._expire()
                self._write()
            case _:
                return super().receive(message)
        return None

    @property
    def state(self) -> GateState:
        s = self._state
        halted = tuple(
            (sid, row.reason or "halted (on record)")
            for sid, row in self._strategies.items()
            if row.state == TradingState.HALTED.value
        )
        return GateState(
            TradingState(s.state), s.reason, s.source, s.at, halted, HaltMode(s.mode or "cancel")
        )

    # ------------------------------------------------------------ halt and resume

    def _unknown(self, strategy_id: str, command: str, notify: Mailbox | None) -> bool:
        """A strategy the node does not run: refused at once, nothing recorded (a record
        would be applied to every later start)."""
        if self._known is None or strategy_id in self._known:
            return False
        runs = ", ".join(self._known) or "none"
        log.warning("gate: %s of unknown strategy %s refused", command, strategy_id)
        if notify is not None:
            notify.tell(
                NotConfirmed(command, f"no strategy {strategy_id} in this node (it runs {runs})")
            )
        return True

    def _halt(
        self,
        reason: str,
        source: str,
        notify: Mailbox | None,
        strategy_id: str | None = None,
        mode: HaltMode = HaltMode.CANCEL,
        forward: bool = True,
    ) -> None:
        """``forward``: tell the node (False: the node made the halt itself)."""
        if notify is not None:
            self._wait("halt", notify, strategy_id)
        # The node first: a halt must not wait for a disk.
        forwarded = not forward or self.peers.tell(
            "node", Halt(reason, source, strategy_id=strategy_id, mode=mode)
        )
        self._unconfirmed["halt", strategy_id] = (reason, source)
        self._unconfirmed.pop(("resume", strategy_id), None)
        if strategy_id is not None:
            self._record_strategy(
                strategy_id, GateRow(TradingState.HALTED.value, reason, source, utc_now())
            )
        elif (self._state.state, self._state.mode) != (mode.trading_state.value, mode.value):
            self._record(GateRow(mode.trading_state.value, reason, source, utc_now(), mode.value))
        else:
            log.info(
                "gate: already halted (%s); halt from %s: %s", self._state.reason, source, reason
            )
        if not forwarded:
            log.warning("gate: node not running; the halt is recorded and applies when it starts")

    def _resume(
        self, reason: str, source: str, notify: Mailbox | None, strategy_id: str | None = None
    ) -> None:
        if notify is not None:
            self._wait("resume", notify, strategy_id)
        self._unconfirmed["resume", strategy_id] = (reason, source)
        self._unconfirmed.pop(("halt", strategy_id), None)
        row = GateRow(TradingState.ACTIVE.value, reason, source, utc_now())
        if strategy_id is None:
            self._record(row)
        else:
            self._record_strategy(strategy_id, row)
        if not self.peers.tell("node", Resume(reason, source, strategy_id=strategy_id)):
            log.warning("gate: node not running; it starts ACTIVE (resume recorded)")

    def _halt_confirmed(self, cancelled: OrdersCanceled) -> None:
        strategy_id = cancelled.strategy_id
        self._answer("halt", cancelled, strategy_id)
        requested = self._unconfirmed.pop(("halt", strategy_id), None)
        if requested is None:
            return  # a node restart re-applying a halt already announced
        reason, source = requested
        if strategy_id is not None:
            scope = "its new orders are denied; the other strategies trade on"
        elif cancelled.mode is HaltMode.REDUCE:
            scope = "no order that adds exposure passes"
        else:
            scope = "no new orders pass"
        self.peers.tell(
            "alerter",
            Alert(
                Severity.CRITICAL,
                f"{_what(strategy_id)} halted",
                f"{reason} (from {source}). {cancelled.summary()}; {scope}; data and "
                "checkpoints continue; the halt holds across restarts until a resume.",
                key=ALERT_KEY,
            ),
        )

    # ------------------------------------------------------------ waiters

    def _wait(self, command: str, notify: Mailbox, strategy_id: str | None = None) -> None:
        deadline = self._clock() + self._confirm_timeout_s
        self._waiters.append(_Waiter(command, notify, deadline, strategy_id))

    def _answer(self, command: str, confirmation: object, strategy_id: str | None = None) -> bool:
        """Tell every waiter of ``command`` (for ``strategy_id``) its confirmation; were
        there any?"""

        def waits(w: _Waiter) -> bool:
            return w.command == command and w.strategy_id == strategy_id

        ready = [w for w in self._waiters if waits(w)]
        self._waiters = [w for w in self._waiters if not waits(w)]
        for waiter in ready:
            waiter.notify.tell(confirmation)
        return bool(ready)

    def _expire(self) -> None:
        now = self._clock()
        late = [w for w in self._waiters if w.deadline <= now]
        if not late:
            return
        self._waiters = [w for w in self._waiters if w.deadline > now]
        for waiter in late:
            waiter.notify.tell(
                NotConfirmed(
                    waiter.command,
                    f"the node did not confirm the {waiter.command} within "
                    f"{self._confirm_timeout_s:g} s (it is recorded and applies when the "
                    "node runs)",
                )
            )

    # ------------------------------------------------------------ the record

    def _record(self, row: GateRow) -> None:
        self._state = row
        self._unsaved = row
        self._write()

    def _record_strategy(self, strategy_id: str, row: GateRow) -> None:
        self._strategies[strategy_id] = row
        self._unsaved_strategies[strategy_id] = row
        self._write()

    def _write(self) -> None:
        row, store = self._unsaved, self._store
        if row is None and not self._unsaved_strategies:
            return
        try:
            if store is None:
                store = self._store = Store(self._db_path, timeout_s=self._busy_timeout_s)
            if row is not None:
                store.set_gate(self._trader_id, row)
                self._unsaved = None
            for sid, strategy_row in list(self._unsaved_strategies.items()):
                store.set_strategy_gate(self._trader_id, sid, strategy_row)
                del self._unsaved_strategies[sid]
        except StorageError as exc:
            state = row.state if row is not None else "a strategy's"
            log.error("gate: %s trading state held in memory: %s", state, exc)
            self._report(exc)
            return
        if self._failed:
            self._failed = False
            self.peers.tell("classifier", OperationSucceeded(OPERATION))

    def _report(self, exc: StorageError) -> None:
        self._failed = True
        self.peers.tell(
            "classifier", ErrorRaised(ROLE, type(exc).__name__, str(exc), operation=OPERATION)
        )
