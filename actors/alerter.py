"""AlerterActor: a durable outbox in SQLite, delivered to Telegram, and chat commands.

Every alert is written to the outbox and the log first, so nothing is lost when
Telegram is down, unconfigured, or the service restarts. A pump delivers pending
alerts oldest first, folding alerts with the same key into one message with a
count; a failed delivery stops the round (order is kept) and the next attempt
waits a tenacity exponential backoff. Per-chat delivery is recorded, so a retry
after a partial delivery sends nothing twice.

Operator commands from allowed users in allowed chats (/status, /positions, /halt,
/resume, /checkpoint, /help) arrive as ``ChatCommand`` messages; the actor turns them
into messages to its peers and replies when they confirm. The two that move money,
``/halt flatten`` (every position closed at market) and ``/resume`` (which lifts a
breaker's halt too), are carried out only when the same user sends ``/confirm`` in the
same chat within ``confirm_s``: a mistyped or forwarded command does nothing alone.
The trade statistics (/profit, /daily, /trades, /balance, /performance) it reads from
the database itself, read-only, and replies with ``storage.stats_text``'s sections: the
text ``paper-node report trades|stats`` prints for the same database. ``/readiness``
replies with ``paper-node report readiness``'s text; every ``[readiness]
check_interval_s`` the actor judges the session itself, tells the metrics actor each
criterion and raises an alert when a strategy's verdict changes (the first judgement
after a start only records the verdicts: a change while the service was down is not seen).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from actors.base import ChildContext, SupervisedActor, halt
from actors.redact import redact
from actors.telegram_types import (
    BadArgument,
    ChatCommand,
    TelegramPort,
    TelegramUnavailable,
    no_argument,
    row_count,
)
from actors.timer import Interval
from protocol import (
    Alert,
    AlerterStats,
    BusyFor,
    CheckpointFailed,
    CheckpointNow,
    CheckpointSaved,
    Halt,
    HaltMode,
    NotConfirmed,
    OrdersCanceled,
    ReadinessFigures,
    ReadinessSettings,
    Resume,
    Severity,
    TelegramSettings,
    TradingState,
    TradingStateChanged,
    exponential_delay,
)
from storage import (
    DEFAULT_ROWS,
    MAX_DAYS,
    MAX_TRADES,
    NoCheckpoint,
    NoRun,
    OutboxRow,
    StorageError,
    Store,
    balance_text,
    capital_return,
    daily_text,
    performance_text,
    profit_text,
    read_status,
    read_trade_report,
    trades_text,
)
from storage.store import utc_now

if TYPE_CHECKING:  # numpy and scipy are imported only when a readiness report is made
    from storage.readiness import SessionReadiness

log = logging.getLogger(__name__)

ROLE = "alerter"
LEASE_MARGIN_S = 2.0  # beyond the request timeout, before a blocked send counts as hung
START_LEASE_S = 30.0  # importing aiogram and building the bot
REPLY_TIMEOUT_S = 30.0  # a chat command's confirmation (the gate's own limit is 20 s)
STATS_LEASE_S = 30.0  # reading a session's trade statistics for a chat command
READINESS_LEASE_S = 60.0  # judging a session's readiness (a bootstrap, the bars of a replay)

_LEVELS = {
    Severity.INFO: logging.INFO,
    Severity.WARNING: logging.WARNING,
    Severity.CRITICAL: logging.CRITICAL,
}
HELP = (
    "/status - state, balance, equity, fills\n"
    "/positions - open positions\n"
    "/halt [reason] - cancel open orders, deny new ones\n"
    "/halt reduce|flatten [reason] - keep the stops, only reducing orders | close every "
    "position at market\n"
    "/halt STRATEGY_ID [reason] - only that strategy; the others trade on\n"
    "/resume - trade again; /resume STRATEGY_ID - that strategy only\n"
    "/checkpoint - take a checkpoint now\n"
    "/confirm, /cancel - carry out or drop a /halt flatten or /resume\n"
    "/profit - round trips, win rate, PnL, fees, Sharpe, drawdown\n"
    f"/daily [n] - the last n days (default {DEFAULT_ROWS}, at most {MAX_DAYS})\n"
    f"/trades [n] - the last n round trips (default {DEFAULT_ROWS}, at most {MAX_TRADES})\n"
    "/balance - starting balance, balance, each strategy's net PnL\n"
    "/performance - each strategy's statistics\n"
    "/readiness - go live? each strategy's verdict, criteria and what is missing\n"
    "/help - this list"
)
STATS_COMMANDS = ("profit", "daily", "trades", "balance", "performance")


@dataclass(frozen=True, slots=True)
class PumpOutbox:
    """Deliver what is pending (the pump's timer tick). ``last``: the stop's last round,
    tried at once whatever the backoff says - no later round will come."""

    last: bool = False


@dataclass(frozen=True, slots=True)
class JudgeReadiness:
    """Judge the session's readiness now (the readiness timer's tick)."""


@dataclass(frozen=True, slots=True)
class Fold:
    """Pending alerts with one key, delivered as one message."""

    rows: tuple[OutboxRow, ...]

    @property
    def ids(self) -> list[int]:
        return [r.id for r in self.rows]

    def text(self, trader_id: str, mode: str) -> str:
        """One message; every distinct alert of the fold keeps its line, in order, with
        how often it repeated (a burst of one error is one line with a count)."""
        first, last = self.rows[0], self.rows[-1]
        runs: list[tuple[OutboxRow, int]] = []
        for row in self.rows:
            if runs and (runs[-1][0].title, runs[-1][0].text) == (row.title, row.text):
                runs[-1] = (runs[-1][0], runs[-1][1] + 1)
            else:
                runs.append((row, 1))
        if len(runs) == 1:
            body = f"{last.severity.upper()}: {last.title}\n[{trader_id} {mode}] {last.text}"
            if len(self.rows) > 1:
                body += f"\n(x{len(self.rows)} between {first.created_at} and {last.created_at})"
            return body
        worst = max(self.rows, key=lambda r: _RANK.get(r.severity, 0))
        lines = [f"{worst.severity.upper()}: {last.title} ({len(self.rows)} alerts, in order)"]
        lines.append(f"[{trader_id} {mode}]")
        for row, count in runs:
            times = f" (x{count})" if count > 1 else ""
            lines.append(
                f"{row.created_at[11:19]} {row.severity.upper()}: {row.title}: {row.text}{times}"
            )
        return _fit("\n".join(lines))


_RANK = {Severity.INFO.value: 0, Severity.WARNING.value: 1, Severity.CRITICAL.value: 2}
TELEGRAM_MAX = 4000


def _fit(text: str) -> str:
    """Telegram takes 4096 characters: keep the first and the latest lines."""
    if len(text) <= TELEGRAM_MAX:
        return text
    head, tail = text[: TELEGRAM_MAX // 2], text[-(TELEGRAM_MAX // 2 - 40) :]
    return f"{head}\n... ({len(text) - len(head) - len(tail)} characters left out) ...\n{tail}"


def fold(rows: list[OutboxRow]) -> list[Fold]:
    """Group by key, each group placed where its oldest alert was."""
    groups: dict[str, list[OutboxRow]] = {}
    for row in rows:
        groups.setdefault(row.key, []).append(row)
    return sorted((Fold(tuple(g)) for g in groups.values()), key=lambda f: f.rows[0].id)


class AlerterActor(SupervisedActor):
    def __init__(
        self,
        ctx: ChildContext,
        db_path: Path,
        trader_id: str,
        mode: str,
        telegram: TelegramSettings | None = None,
        token: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        started_at: float | None = None,
        readiness: ReadinessSettings | None = None,
    ) -> None:
        """``started_at``: the service's start (unix seconds): chat commands sent before
        it are dropped (None: now, this actor's start)."""
        super().__init__(ctx)
        self._readiness = readiness or ReadinessSettings()
        self._readiness_timer: Interval | None = None
        self._verdicts: dict[str, str] = {}  # strategy -> its last verdict line
        self._started_at = time.time() if started_at is None else started_at
        self._db_path = db_path
        self._trader_id = trader_id
        self._mode = mode
        self._telegram = telegram
        self._token = token
        self._clock = clock
        self._store: Store | None = None
        self._client: TelegramPort | None = None
        self._timer: Interval | None = None
        self._failures = 0
        self.failed_deliveries = 0  # every failed delivery round
        self._failures_told = 0  # of them, told to the metrics actor
        self._next_attempt = 0.0
        self._waiting: dict[type, list[tuple[int, float]]] = {}  # chat, deadline
        self._unconfirmed: dict[tuple[int, int], tuple[ChatCommand, float]] = {}  # chat, user
        self._unsaved: list[tuple[Alert, str]] = []  # while the outbox refuses writes
        self._sent_unrecorded: dict[int, set[int]] = {}  # row id -> chats, not yet recorded
        self._held_complete: set[int] = set()
        self.queued = 0
        self.delivered = 0

    def __repr__(self) -> str:
        return f"AlerterActor(trader={self._trader_id!r}, telegram={self._client is not None})"

    # ------------------------------------------------------------ lifecycle

    def started(self) -> None:
        self._store = Store(self._db_path, timeout_s=1.0)
        if self._readiness.check_interval_s > 0:
            self._readiness_timer = Interval(
                self._readiness.check_interval_s, self.actor_ref, JudgeReadiness, "readiness"
            )
        if self._telegram is None or not self._token:
            log.info("telegram not configured: alerts go to the outbox and the log only")
            return
        # aiogram is imported and the bot built here, seconds on a busy machine: the
        # health check is told, so a slow start is busy, not hung (the heartbeat and the
        # operator's commands go on meanwhile).
        self.ctx.directory.tell(BusyFor(self.ctx.role, START_LEASE_S))
        try:
            from actors.telegram import TelegramClient  # aiogram: only when Telegram is on

            self._client = TelegramClient(self._token, self._telegram, self._started_at)
            self._client.start()
        finally:
            self.ctx.directory.tell(BusyFor(self.ctx.role, 0))
        if self._telegram.commands and self._telegram.chat_ids:
            self._client.start_polling(self.actor_ref.tell)
        self._timer = Interval(
            self._telegram.pump_interval_s, self.actor_ref, PumpOutbox, "outbox-pump"
        )

    def stopped(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._readiness_timer is not None:
            self._readiness_timer.cancel()
        if self._client is not None:
            self._client.close()
        if self._store is not None:
            self._store.close()

    # ------------------------------------------------------------ messages

    def receive(self, message: object) -> object:
        match message:
            case Alert():
                self._queue(message)
            case PumpOutbox(last=last):
                return self._pump(now=last)
            case JudgeReadiness():
                self._judge_readiness()
            case ChatCommand():
                self._command(message)
            case OrdersCanceled(strategy_id=None):
                self._reply_waiting(OrdersCanceled, f"Halted: {message.summary()}.")
            case OrdersCanceled(client_order_ids=ids, strategy_id=str(sid)):
                self._reply_waiting(
                    OrdersCanceled,
                    f"Halted {sid}: {len(ids)} of its open order(s) cancelled (confirmed); "
                    "the other strategies trade on.",
                )
            case TradingStateChanged(state=TradingState.ACTIVE, strategy_id=None):
                self._reply_waiting(TradingStateChanged, "Resumed: trading state ACTIVE.")
            case TradingStateChanged(state=TradingState.ACTIVE, strategy_id=str(sid)):
                self._reply_waiting(TradingStateChanged, f"Resumed {sid}: its orders pass again.")
            case CheckpointSaved(checkpoint_id=checkpoint_id):
                self._reply_waiting(CheckpointSaved, f"Checkpoint #{checkpoint_id} saved.")
            case CheckpointFailed(reason=reason):
                self._reply_waiting(CheckpointSaved, f"Checkpoint failed: {redact(reason)}")
            case NotConfirmed(command=command, reason=reason):
                kind = OrdersCanceled if command == "halt" else TradingStateChanged
                self._reply_waiting(kind, f"/{command} not confirmed: {reason}.")
            case _:
                return super().receive(message)
        return None

    def _queue(self, alert: Alert) -> None:
        text = f"[{self._trader_id} {self._mode}] {alert.title}: {alert.text}"
        log.log(_LEVELS[alert.severity], "ALERT %s", text)
        self._unsaved.append((alert, utc_now()))
        self._save()

    def _save(self) -> bool:
        """Move alerts into the outbox in order; kept in memory while it refuses writes."""
        if self._store is None:
            return False
        while self._unsaved:
            alert, created_at = self._unsaved[0]
            try:
                self._store.enqueue_alert(
                    self._trader_id, alert, created_at, deliver=self._client is not None
                )
            except StorageError as exc:
                log.error(
                    "outbox unwritable, %d alert(s) held in memory: %s", len(self._unsaved), exc
                )
                return False
            self._unsaved.pop(0)
            self.queued += 1
        return True

    # ------------------------------------------------------------ delivery

    def _pump(self, now: bool = False) -> int:
        """Deliver pending alerts in order; returns how many rows were delivered.
        ``now``: without waiting for the backoff's next attempt."""
        self._expire_waiting()
        self._save()
        try:
            return self._deliver(now)
        except StorageError as exc:  # the outbox is unreadable or unwritable for now
            log.error("alert delivery paused: %s", exc)
            return 0
        finally:
            self._tell_metrics()

    def _tell_metrics(self) -> None:
        """The outbox's backlog and the failed deliveries, for the metrics actor (if any)."""
        if self._store is None or not self.peers.has("metrics"):
            return
        try:
            pending = self._store.count_pending(self._trader_id)
        except StorageError:
            return  # the pump has said the outbox is unreadable
        new = self.failed_deliveries - self._failures_told
        self._failures_told = self.failed_deliveries
        self.peers.tell("metrics", AlerterStats(pending, new))

    def _deliver(self, now: bool = False) -> int:
        client, store, settings = self._client, self._store, self._telegram
        if client is None or store is None or settings is None:
            return 0
        if not now and self._clock() < self._next_attempt:
            return 0
        self._record_held(store)
        delivered = 0
        for group in fold(store.pending_alerts(self._trader_id)):
            have = group.rows[0].delivered_chats | self._sent_unrecorded.get(group.ids[0], set())
            sent = set(have)
            error: TelegramUnavailable | None = None
            for chat_id in settings.chat_ids:
                if chat_id in have:
                    continue
                try:
                    self._send(client, chat_id, group.text(self._trader_id, self._mode))
                    sent.add(chat_id)
                except TelegramUnavailable as exc:
                    error = exc
                    break
            complete = error is None
            try:
                store.record_delivery(group.ids, frozenset(sent), complete)
            except StorageError:
                # Sent but not recorded: remember it, so it is not sent again.
                for row_id in group.ids:
                    self._sent_unrecorded[row_id] = set(sent)
                self._held_complete.update(group.ids if complete else ())
                raise
            if not complete:
                self._failures += 1
                self.failed_deliveries += 1
                delay = exponential_delay(self._failures, 1.0, settings.backoff_max_s)
                self._next_attempt = self._clock() + delay
                log.warning(
                    "telegram delivery failed (%s); %d alert(s) pending, next try in %.0f s",
                    error,
                    len(group.rows),
                    delay,
                )
                break
            delivered += len(group.rows)
            self._failures = 0
        self.delivered += delivered
        return delivered

    def _record_held(self, store: Store) -> None:
        """Write down deliveries that happened while the outbox was unwritable."""
        by_chats: dict[frozenset[int], list[int]] = {}
        for row_id, sent_to in self._sent_unrecorded.items():
            by_chats.setdefault(frozenset(sent_to), []).append(row_id)
        for chats, ids in by_chats.items():
            complete = [i for i in ids if i in self._held_complete]
            partial = [i for i in ids if i not in self._held_complete]
            if complete:
                store.record_delivery(complete, chats, True)
            if partial:
                store.record_delivery(partial, chats, False)
            for row_id in ids:
                self._sent_unrecorded.pop(row_id, None)
                self._held_complete.discard(row_id)

    # ------------------------------------------------------------ chat commands

    def _command(self, command: ChatCommand, confirmed: bool = False) -> None:
        log.info(
            "telegram command /%s from user %d in chat %d",
            command.command,
            command.user_id,
            command.chat_id,
        )
        match command.command:
            case "confirm":
                self._confirm(command)
            case "cancel":
                dropped = self._unconfirmed.pop((command.chat_id, command.user_id), None)
                self._reply(
                    command.chat_id,
                    "Nothing to cancel."
                    if dropped is None
                    else f"Cancelled: /{dropped[0].command} {dropped[0].args}".rstrip() + ".",
                )
            case "help" | "start":
                self._reply(command.chat_id, HELP)
            case "status":
                self._reply(command.chat_id, self._status_text())
            case "positions":
                self._reply(command.chat_id, self._positions_text())
            case "halt":
                sid, rest = self._strategy_arg(command.args)
                word, _, after = rest.partition(" ")
                mode = HaltMode.CANCEL
                if sid is None and word.lower() in tuple(HaltMode):
                    mode, rest = HaltMode(word.lower()), after.strip()
                if mode is HaltMode.FLATTEN and not confirmed:
                    self._ask_confirmation(
                        command, f"Halt {self._trader_id} and close every position at market?"
                    )
                    return
                reason = f"telegram /halt from user {command.user_id} in chat {command.chat_id}" + (
                    f": {rest}" if rest else ""
                )
                halt_one = Halt(
                    reason, "telegram", notify=self.actor_ref, strategy_id=sid, mode=mode
                )
                self._ask_peer(command, "gate", halt_one)
            case "resume":
                self._resume(command, confirmed)
            case "checkpoint":
                self._ask_peer(
                    command, "checkpointer", CheckpointNow(notify=self.actor_ref), CheckpointSaved
                )
            case name if name in STATS_COMMANDS:
                self._reply(command.chat_id, self._stats_text(command))
            case "readiness":
                self._reply(command.chat_id, self._readiness_reply(command))
            case _:
                self._reply(command.chat_id, f"Unknown command /{command.command}.\n{HELP}")

    def _strategy_arg(self, args: str) -> tuple[str | None, str]:
        """``/halt EmaCross-001 too many losses``: a first word naming one of the
        service's strategies makes it that strategy's command; anything else is the
        account's (and its reason)."""
        first, _, rest = args.strip().partition(" ")
        if not first:
            return None, ""
        return (first, rest.strip()) if first in self._strategies() else (None, args.strip())

    def _strategies(self) -> list[str]:
        """The running strategies' ids, as the last checkpoint lists them."""
        try:
            report = read_status(self._db_path, self._trader_id, stale_after_s=60)
        except StorageError:
            return []
        return [str(s["strategy_id"]) for s in report["strategies"]] if report else []

    def _ask_confirmation(self, command: ChatCommand, question: str) -> None:
        """Hold ``command`` until its sender's ``/confirm`` in the same chat (one per
        sender and chat: a newer command replaces the one held)."""
        wait_s = self._telegram.confirm_s if self._telegram is not None else 60
        key = (command.chat_id, command.user_id)
        self._unconfirmed[key] = (command, self._clock() + wait_s)
        self._reply(
            command.chat_id,
            f"{question} Send /confirm within {wait_s} s to go ahead, /cancel to drop it.",
        )

    def _confirm(self, command: ChatCommand) -> None:
        held = self._unconfirmed.pop((command.chat_id, command.user_id), None)
        if held is None:
            self._reply(command.chat_id, "Nothing to confirm: /confirm follows a /halt "
                        "flatten or a /resume of yours in this chat.")  # fmt: skip
            return
        original, deadline = held
        if self._clock() > deadline:
            self._reply(
                command.chat_id,
                f"Too late: /{original.command} expired unconfirmed; send it again.",
            )
            return
        self._command(original, confirmed=True)

    def _resume(self, command: ChatCommand, confirmed: bool = False) -> None:
        """``/resume`` alone resumes the account, ``/resume ID`` one running strategy. A
        word that is no running strategy's id (a typo) is refused with the ids: resuming
        the account instead would lift a halt nobody asked to lift (a breaker's)."""
        word = command.args.strip().partition(" ")[0]
        known = self._strategies()
        if word and word not in known:
            running = ", ".join(known) if known else "none on record yet"
            self._reply(
                command.chat_id,
                f"Not resumed: {word} is not a running strategy (running: {running}). "
                "/resume alone resumes the account.",
            )
            return
        if not confirmed:
            what = (
                f"Resume {word}: its orders pass again?"
                if word
                else f"Resume {self._trader_id}? This lifts the account's halt, a "
                "breaker's too, and every strategy trades again."
            )
            self._ask_confirmation(command, what)
            return
        reason = f"telegram /resume from user {command.user_id} in chat {command.chat_id}"
        resume = Resume(reason, "telegram", notify=self.actor_ref, strategy_id=word or None)
        self._ask_peer(command, "gate", resume)

    def _ask_peer(
        self,
        command: ChatCommand,
        role: str,
        message: Halt | Resume | CheckpointNow,
        answer: type | None = None,
    ) -> None:
        kind = answer or (OrdersCanceled if isinstance(message, Halt) else TradingStateChanged)
        delivered = (
            halt(self.peers, message)
            if isinstance(message, Halt)
            else self.peers.tell(role, message)
        )
        if not delivered:
            self._reply(command.chat_id, f"Cannot /{command.command}: {role} is not running.")
            return
        deadline = self._clock() + REPLY_TIMEOUT_S
        self._waiting.setdefault(kind, []).append((command.chat_id, deadline))

    def _reply_waiting(self, kind: type, text: str) -> None:
        for chat_id, _ in self._waiting.pop(kind, []):
            self._reply(chat_id, text)

    def _expire_waiting(self) -> None:
        """A chat that asked is told when no confirmation came in time."""
        now = self._clock()
        for kind, waiting in list(self._waiting.items()):
            late = [chat for chat, deadline in waiting if deadline <= now]
            self._waiting[kind] = [(c, d) for c, d in waiting if d > now]
            for chat_id in late:
                self._reply(chat_id, f"No confirmation within {REPLY_TIMEOUT_S:g} s; see /status.")

    def _reply(self, chat_id: int, text: str) -> None:
        if self._client is None:
            return
        try:
            self._send(self._client, chat_id, text)
        except TelegramUnavailable as exc:
            log.warning("telegram reply to chat %d failed: %s", chat_id, exc)

    def _send(self, client: TelegramPort, chat_id: int, text: str) -> None:
        """One request, under a lease: while it blocks this thread (up to the request
        timeout) the health check counts the alerter busy, not hung, so a slow Telegram
        does not stop the heartbeat and lock the operator out of halt."""
        settings = self._telegram
        lease = (settings.request_timeout_s if settings else 10.0) + LEASE_MARGIN_S
        self.ctx.directory.tell(BusyFor(self.ctx.role, lease))
        try:
            client.send(chat_id, text)
        finally:
            self.ctx.directory.tell(BusyFor(self.ctx.role, 0))

    def _status_text(self) -> str:
        try:
            report = read_status(self._db_path, self._trader_id, stale_after_s=60)
        except StorageError as exc:
            return f"Status unavailable: {exc}"
        if report is None:
            return "No run recorded."
        return (
            f"{report['trader_id']} ({report['mode']}): {report['state']}, "
            f"trading {report['trading_state']}\n"
            f"balance {report['balance']} {report['currency']}, "
            f"equity {report['equity']}\n"
            f"realized {report['realized_pnl']}, unrealized {report['unrealized_pnl']}\n"
            f"fills {report['fills']}, open orders {report['open_orders']}, "
            f"positions {len(report['positions'])}\n"
            f"last checkpoint {report['last_checkpoint_at']}"
            + "".join(
                f"\n{s['strategy_id']}: {s['fills']} fills, realized {s['realized_pnl']}, "
                f"unrealized {s['unrealized_pnl']}, fees {s['fees']}, "
                + (f"funding {s['funding']}, " if Decimal(s["funding"]) else "")
                + f"{s['positions']} position(s), {s['open_orders']} open order(s)"
                + (
                    f", {part}"
                    if (part := capital_return(s["capital"], s["return_on_capital"]))
                    else ""
                )
                + (f", HALTED ({s['halt_reason']})" if s["trading_state"] == "HALTED" else "")
                for s in report["strategies"]
            )
        )

    def _stats_text(self, command: ChatCommand) -> str:
        """A section of this trader's trade statistics, or why there is none. The
        report is read here, on the alerter's thread, under a lease (as a send is): a
        long session's fold over its fills may take a while, and the health check
        counts the alerter busy meanwhile, not hung."""
        name, args = command.command, command.args
        try:
            n = DEFAULT_ROWS
            if name == "daily":
                n = row_count(name, args, DEFAULT_ROWS, MAX_DAYS)
            elif name == "trades":
                n = row_count(name, args, DEFAULT_ROWS, MAX_TRADES)
            else:
                no_argument(name, args)
        except BadArgument as exc:
            return str(exc)
        self.ctx.directory.tell(BusyFor(self.ctx.role, STATS_LEASE_S))
        try:
            report = read_trade_report(self._db_path, self._trader_id)
        except NoRun:
            return f"No run of {self._trader_id} recorded yet: no trades to report."
        except NoCheckpoint:
            return "No checkpoint yet: no balance to start the statistics from; try again soon."
        except StorageError as exc:
            log.warning("/%s: trade statistics unavailable: %s", name, exc)
            return f"Trade statistics unavailable: {redact(str(exc))}"
        finally:
            self.ctx.directory.tell(BusyFor(self.ctx.role, 0))
        match name:
            case "daily":
                return daily_text(report, n)
            case "trades":
                return trades_text(report, n)
            case "balance":
                return balance_text(report)
            case "performance":
                return performance_text(report)
            case _:
                return profit_text(report)

    def _judged(self) -> SessionReadiness:
        """The session's readiness report, read on this thread under a lease (a long
        session's bootstrap and a replay's bars take a while)."""
        from node.readiness import session_readiness  # numpy/scipy: only when asked

        self.ctx.directory.tell(BusyFor(self.ctx.role, READINESS_LEASE_S))
        try:
            return session_readiness(self._db_path, self._trader_id, self._readiness)
        finally:
            self.ctx.directory.tell(BusyFor(self.ctx.role, 0))

    def _readiness_reply(self, command: ChatCommand) -> str:
        try:
            no_argument(command.command, command.args)
        except BadArgument as exc:
            return str(exc)
        from storage.readiness import readiness_text

        try:
            return readiness_text(self._judged())
        except NoRun:
            return f"No run of {self._trader_id} recorded yet: nothing to judge."
        except StorageError as exc:
            log.warning("/readiness: unavailable: %s", exc)
            return f"Readiness unavailable: {redact(str(exc))}"

    def _judge_readiness(self) -> None:
        """The periodic judgement: figures for the metrics actor, an alert for each
        strategy whose verdict changed since the last one."""
        from storage.readiness import STATUS_VALUE, VERDICT_VALUE, verdict_line

        try:
            report = self._judged()
        except StorageError as exc:  # NoRun included: nothing has traded yet
            log.info("readiness not judged: %s", exc)
            return
        values: list[tuple[str, str, float]] = []
        for s in report.strategies:
            values.append((s.strategy_id, "verdict", VERDICT_VALUE[s.verdict]))
            values.extend((s.strategy_id, c.key, STATUS_VALUE[c.status]) for c in s.criteria)
            before = self._verdicts.get(s.strategy_id)
            self._verdicts[s.strategy_id] = s.verdict.value
            if before is not None and before != s.verdict.value:
                severity = Severity.WARNING if s.verdict.value == "NO" else Severity.INFO
                self._queue(
                    Alert(
                        severity,
                        f"Readiness {before} -> {s.verdict.value}",
                        verdict_line(s),
                        key=f"readiness:{s.strategy_id}",
                    )
                )
        if self.peers.has("metrics"):
            self.peers.tell("metrics", ReadinessFigures(tuple(values)))

    def _positions_text(self) -> str:
        if self._store is None:
            return "Positions unavailable."
        try:
            snap = self._store.last_snapshot(self._trader_id)
        except StorageError as exc:
            return f"Positions unavailable: {exc}"
        if snap is None or not snap.positions:
            return "No open positions."
        return "\n".join(
            f"{p.instrument_id} {p.side} {p.quantity} @ {p.avg_px_open:.2f} "
            f"(unrealized {p.unrealized_pnl:.2f})"
            + (f" [{p.strategy_id}]" if p.strategy_id else "")
            for p in snap.positions
        )
