"""MetricsActor: the service's numbers for Prometheus, and its health and readiness.

It only listens. The node actor routes it the node's events (fills, rejects, reports,
trading states), the checkpointer tells it each write and its duration, the alerter
its outbox, the classifier its decisions and breaker trips, the supervisor every exit
and restart, the runtime's watchdog each liveness round. From these it keeps a
prometheus-client registry, which the HTTP thread exposes, and the facts ``/readyz``
and ``/healthz`` judge. It never asks a peer: a slow scrape cannot slow trading, and
with metrics off the actor does not exist (nobody is told, nothing is counted).

Labels stay bounded: the trader (one per service), the strategies of the config, the
roles of the tree, the classifier's three decision kinds, the breakers' names, the
readiness report's criteria (a fixed list).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from decimal import Decimal

import pykka
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)

from actors.base import ChildContext, SupervisedActor
from actors.breakers import DataWatch
from actors.probes import ProbeServer, probe_app
from protocol import (
    AlerterStats,
    BreakerSettings,
    CheckpointWritten,
    ChildExited,
    ChildStarted,
    CircuitBreakerTripped,
    Decision,
    Health,
    Liveness,
    MetricsSettings,
    NodeReport,
    NodeStarted,
    OrderFilled,
    OrderRejected,
    QueryHealth,
    ReadinessFigures,
    Snapshot,
    TradingState,
    TradingStateChanged,
)

log = logging.getLogger(__name__)

ROLE = "metrics"
# "telegram /halt from user 123456789 in chat -100123": /readyz answers whoever reaches
# its port, so the reason it shows names neither the person nor the chat.
TELEGRAM_ID = re.compile(r"\b(user|chat) -?\d+")
RECOVERY_S = 60.0  # a crashed role's restart: the longest backoff (10 s) and a slow start
REPORT_STALE_S = 5.0  # the node reports every second: five missed is a node not trading
PROBE_ASK_S = 2.0
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
WRITE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class ServiceMetrics:
    """The registry and its metrics; names follow Prometheus conventions (base units in
    the name, ``_total`` counters)."""

    def __init__(self, trader_id: str) -> None:
        # ``_created`` series are noise for a service's own counters (the call is unannotated)
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        r, t = self.registry, ("trader",)
        ts = ("trader", "strategy")
        self.trader = trader_id
        self.account_return = Gauge(
            "paper_return_ratio",
            "The account's equity's gain on its starting balance (a fraction)",
            t,
            registry=r,
        )
        self.equity = Gauge(
            "paper_equity", "Account equity (balance + unrealized PnL)", t, registry=r
        )
        self.balance = Gauge("paper_balance", "Account balance", t, registry=r)
        self.realized = Gauge("paper_realized_pnl", "Realized PnL of the account", t, registry=r)
        self.unrealized = Gauge("paper_unrealized_pnl", "Unrealized PnL", t, registry=r)
        self.drawdown = Gauge(
            "paper_drawdown_ratio", "Equity below its peak, as a fraction (<= 0)", t, registry=r
        )
        self.open_orders = Gauge("paper_open_orders", "Open orders", t, registry=r)
        self.positions = Gauge("paper_positions", "Open positions", t, registry=r)
        self.halted = Gauge("paper_trading_halted", "1 while the account is halted", t, registry=r)
        self.s_equity = Gauge(
            "paper_strategy_equity",
            "The strategy's own capital plus its PnL and funding",
            ts,
            registry=r,
        )
        self.s_capital = Gauge(
            "paper_strategy_capital", "The strategy's own capital", ts, registry=r
        )
        self.s_return = Gauge(
            "paper_strategy_return_ratio",
            "The strategy's equity's gain on its own capital (a fraction)",
            ts,
            registry=r,
        )
        self.s_realized = Gauge(
            "paper_strategy_realized_pnl", "Strategy realized PnL", ts, registry=r
        )
        self.s_unrealized = Gauge(
            "paper_strategy_unrealized_pnl", "Strategy unrealized PnL", ts, registry=r
        )
        self.s_drawdown = Gauge(
            "paper_strategy_drawdown_ratio", "Strategy equity below its peak (<= 0)", ts, registry=r
        )
        self.s_orders = Gauge("paper_strategy_open_orders", "Strategy open orders", ts, registry=r)
        self.s_positions = Gauge(
            "paper_strategy_positions", "Strategy open positions", ts, registry=r
        )
        self.s_halted = Gauge(
            "paper_strategy_halted", "1 while the strategy is halted on its own", ts, registry=r
        )
        self.readiness = Gauge(
            "paper_readiness",
            "The readiness report: criterion verdict 2 READY, 1 NOT YET, 0 NO; the others 2 "
            "pass, 1 wait, 0 fail, -1 not applicable",
            ("trader", "strategy", "criterion"),
            registry=r,
        )
        self.fills = Counter("paper_fills", "Fills", ts, registry=r)
        self.rejects = Counter("paper_rejects", "Orders the venue rejected", ts, registry=r)
        self.denials = Counter(
            "paper_denials", "Orders denied before the venue (risk, halt)", ts, registry=r
        )
        self.errors = Counter(
            "paper_errors", "Errors by the classifier's decision", ("trader", "class"), registry=r
        )
        self.breaker_trips = Counter(
            "paper_breaker_trips", "Circuit breaker trips", ("trader", "breaker"), registry=r
        )
        self.restarts = Counter(
            "paper_actor_restarts", "Actor restarts by role", ("trader", "role"), registry=r
        )
        self.checkpoint_age = Gauge(
            "paper_checkpoint_age_seconds", "Time since the last checkpoint write", t, registry=r
        )
        self.checkpoint_write = Histogram(
            "paper_checkpoint_write_seconds",
            "Checkpoint write duration",
            t,
            buckets=WRITE_BUCKETS,
            registry=r,
        )
        self.fill_latency = Histogram(
            "paper_fill_to_parent_seconds",
            "From the venue's fill event to the supervisor process",
            t,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.data_age = Gauge(
            "paper_market_data_age_seconds", "Time since the last bar arrived", t, registry=r
        )
        self.loop_lag = Gauge(
            "paper_node_loop_lag_seconds",
            "How late the node loop ran its report timer",
            t,
            registry=r,
        )
        self.outbox = Gauge("paper_alert_outbox_pending", "Alerts not yet delivered", t, registry=r)
        self.telegram_failures = Counter(
            "paper_telegram_failures", "Failed Telegram deliveries", t, registry=r
        )
        self.heartbeat_age = Gauge(
            "paper_heartbeat_age_seconds", "Time since every actor last answered", t, registry=r
        )
        self.ready = Gauge("paper_ready", "1 while /readyz says ready", t, registry=r)
        self.healthy = Gauge("paper_healthy", "1 while /healthz says healthy", t, registry=r)


def without_ids(reason: str) -> str:
    """``reason`` with every Telegram user and chat id replaced by ``<id>``."""
    return TELEGRAM_ID.sub(r"\1 <id>", reason)


class MetricsActor(SupervisedActor):
    def __init__(
        self,
        ctx: ChildContext,
        trader_id: str,
        settings: MetricsSettings,
        breakers: BreakerSettings,
        checkpoint_interval_s: float,
        heartbeat_interval_s: float,
        clock: Callable[[], float] = time.time,
        starting_balance: Decimal | None = None,
    ) -> None:
        """``starting_balance``: what the account's return is of (None: a venue's own
        account, binance-testnet)."""
        super().__init__(ctx)
        self.settings = settings
        self._starting_balance = starting_balance
        self.trader_id = trader_id
        self.m = ServiceMetrics(trader_id)
        self._clock = clock
        self._checkpoint_stale_s = settings.checkpoint_stale_s or 2 * checkpoint_interval_s + 30
        self._liveness_stale_s = 3 * heartbeat_interval_s + 5
        self._data = DataWatch(breakers)
        self._server: ProbeServer | None = None
        started = clock()
        self._started_at = started
        self._node_started = False
        self._last_report_at: float | None = None
        self._last_checkpoint_at: float | None = None
        self._liveness: Liveness | None = None
        self._last_healthy_at = started
        self._halt_reason: str | None = None
        self._recovering: dict[str, float] = {}  # role -> since (a crash, until it runs)
        self._state_known = False  # a trading state heard from the node (not a checkpoint's)
        self._known: set[str] = set()  # strategies with series, so none goes stale

    @property
    def port(self) -> int | None:
        return None if self._server is None else self._server.port

    def started(self) -> None:
        self._bind_ages()
        if not self.settings.enabled:
            return
        host, port = str(self.settings.host), self.settings.port
        app = probe_app(self.m.registry, self._ask_health, self.trader_id)
        try:
            self._server = ProbeServer(host, port, app)
        except OSError as exc:
            # No endpoint is no reason to stop trading: say so loudly and carry on.
            log.error("metrics: cannot listen on %s:%d: %s", host, port, exc.strerror or exc)
            return
        log.info("metrics on http://%s:%d/metrics (/healthz, /readyz)", host, self._server.port)

    def stopped(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    def _bind_ages(self) -> None:
        """Ages are computed when scraped, from the times this actor last heard of each."""
        t, clock = self.trader_id, self._clock
        self.m.checkpoint_age.labels(t).set_function(
            lambda: clock() - (self._last_checkpoint_at or self._started_at)
        )
        self.m.heartbeat_age.labels(t).set_function(lambda: clock() - self._last_healthy_at)

    def _ask_health(self) -> Health | None:
        try:
            answer = self.actor_ref.ask(QueryHealth(), timeout=PROBE_ASK_S)
        except (pykka.Timeout, pykka.ActorDeadError):
            return None
        return answer if isinstance(answer, Health) else None

    # ------------------------------------------------------------ messages

    def receive(self, message: object) -> object:
        if isinstance(message, QueryHealth):
            return self.health()
        handled = self._handle(message)
        if not isinstance(message, OrderFilled):
            self.health()  # paper_ready / paper_healthy follow every change, unprobed
        return handled

    def _handle(self, message: object) -> object:
        t = self.trader_id
        match message:
            case NodeReport():
                self._report(message)
            case OrderFilled():
                self.m.fills.labels(t, message.strategy_id).inc()
                latency = self._clock() - message.ts_event / 1e9
                self.m.fill_latency.labels(t).observe(max(0.0, latency))
            case OrderRejected(denied=True):
                self.m.denials.labels(t, message.strategy_id).inc()
            case OrderRejected():
                self.m.rejects.labels(t, message.strategy_id).inc()
            case NodeStarted():
                self._node_started = True
                self._last_report_at = self._clock()
                self._recovering.pop("node", None)
                self._set_state(message.trading_state, "as recorded before the restart")
                for sid in message.strategy_ids:
                    self._strategy_series(sid)
            case TradingStateChanged(strategy_id=None):
                self._set_state(message.state, message.reason)
            case TradingStateChanged(strategy_id=str(sid)):
                halted = message.state is not TradingState.ACTIVE
                self.m.s_halted.labels(t, sid).set(1 if halted else 0)
            case CheckpointWritten():
                self._checkpoint(message)
            case Decision(kind=kind):
                self.m.errors.labels(t, kind.value).inc()
            case CircuitBreakerTripped(breaker=breaker):
                self.m.breaker_trips.labels(t, breaker).inc()
            case ReadinessFigures(values=values):
                for strategy, criterion, value in values:
                    self.m.readiness.labels(t, strategy, criterion).set(value)
            case AlerterStats(pending=pending, telegram_failures=new):
                self.m.outbox.labels(t).set(pending)
                self.m.telegram_failures.labels(t).inc(new)
            case ChildExited() | ChildStarted() | Liveness():
                self._tree(message)
            case _:
                return super().receive(message)
        return None

    def _tree(self, message: ChildExited | ChildStarted | Liveness) -> None:
        """The supervisor's exits and restarts, the watchdog's rounds."""
        t = self.trader_id
        match message:
            case ChildExited(role=role, abnormal=True):
                self._recovering[role] = self._clock()
                if role == "node":
                    self._node_started = False
            case ChildStarted(role=role, restart=restart):
                if role != "node":
                    self._recovering.pop(role, None)
                else:
                    self._node_started = False  # until it trades again (NodeStarted)
                if restart:
                    self.m.restarts.labels(t, role).inc()
            case Liveness():
                self._liveness = message
                if not message.silent:
                    self._last_healthy_at = message.at

    def _set_state(self, state: TradingState, reason: str) -> None:
        self._state_known = True
        halted = state is not TradingState.ACTIVE
        self._halt_reason = f"{state.value}: {without_ids(reason)}" if halted else None
        self.m.halted.labels(self.trader_id).set(1 if halted else 0)

    def _strategy_series(self, sid: str) -> None:
        """Every strategy's counters exist from the start (at 0), as Prometheus wants."""
        if sid in self._known:
            return
        self._known.add(sid)
        t = self.trader_id
        for counter in (self.m.fills, self.m.rejects, self.m.denials):
            counter.labels(t, sid)
        self.m.s_halted.labels(t, sid).set(0)

    def _report(self, report: NodeReport) -> None:
        t, m = self.trader_id, self.m
        self._last_report_at = self._clock()
        if "node" not in self._recovering:  # a restarted metrics actor missed NodeStarted
            self._node_started = True
        m.equity.labels(t).set(float(report.equity))
        self._return(report.equity)
        m.balance.labels(t).set(float(report.balance))
        peak = report.equity_peak
        m.drawdown.labels(t).set(float(report.equity / peak - 1) if peak else 0.0)
        m.loop_lag.labels(t).set(report.loop_lag_s)
        if report.last_data_ns > 0:
            age = max(0.0, (report.ts_ns - report.last_data_ns) / 1e9)
            m.data_age.labels(t).set(age)
            interval = 0.0 if report.replay_finished else report.data_interval_s
            self._data.age(age, interval)  # it keeps ``stale``; acting on it is the classifier's
        for mark in report.strategies:
            self._strategy_series(mark.strategy_id)
            m.s_equity.labels(t, mark.strategy_id).set(float(mark.equity))
            if mark.capital is not None and mark.capital > 0:
                m.s_capital.labels(t, mark.strategy_id).set(float(mark.capital))
                gain = (mark.equity - mark.capital) / mark.capital
                m.s_return.labels(t, mark.strategy_id).set(float(gain))
            own_peak = mark.equity_peak
            m.s_drawdown.labels(t, mark.strategy_id).set(
                float(mark.equity / own_peak - 1) if own_peak else 0.0
            )

    def _checkpoint(self, written: CheckpointWritten) -> None:
        t, m = self.trader_id, self.m
        self._last_checkpoint_at = written.at
        m.checkpoint_write.labels(t).observe(written.duration_s)
        snapshot = written.snapshot
        if snapshot is None:
            return
        self._account(snapshot)

    def _return(self, equity: Decimal) -> None:
        start = self._starting_balance
        if start is not None and start > 0:
            self.m.account_return.labels(self.trader_id).set(float((equity - start) / start))

    def _account(self, s: Snapshot) -> None:
        t, m = self.trader_id, self.m
        if not self._state_known:  # a restarted metrics actor: the checkpoint's state
            self._set_state(s.trading_state, s.halt_reason or "as checkpointed")
        m.realized.labels(t).set(float(s.realized_pnl))
        m.unrealized.labels(t).set(float(s.unrealized_pnl))
        m.equity.labels(t).set(float(s.equity))
        self._return(s.equity)
        m.balance.labels(t).set(float(s.balance))
        m.open_orders.labels(t).set(len(s.open_orders))
        m.positions.labels(t).set(len(s.positions))
        for view in s.strategies:
            sid = view.strategy_id
            self._strategy_series(sid)
            m.s_realized.labels(t, sid).set(float(view.realized_pnl))
            m.s_unrealized.labels(t, sid).set(float(view.unrealized_pnl))
            m.s_orders.labels(t, sid).set(sum(1 for o in s.open_orders if o.strategy_id == sid))
            m.s_positions.labels(t, sid).set(sum(1 for p in s.positions if p.strategy_id == sid))
            m.s_halted.labels(t, sid).set(0 if view.trading_state is TradingState.ACTIVE else 1)
            gain = view.return_on_capital
            if gain is not None and view.capital is not None:
                m.s_capital.labels(t, sid).set(float(view.capital))
                m.s_return.labels(t, sid).set(float(gain))

    # ------------------------------------------------------------ health

    def health(self) -> Health:
        now = self._clock()
        # A crashed role is recovering while a restart can still come (the longest
        # backoff and a start); after that it is down, and unhealthy.
        down = sorted(r for r, since in self._recovering.items() if now - since > RECOVERY_S)
        recovering = tuple(sorted(r for r in self._recovering if r not in down))
        health_reasons: list[str] = []
        if down:
            health_reasons.append(f"not restarted for over {RECOVERY_S:g} s: {', '.join(down)}")
        live = self._liveness
        silent = [] if live is None else [r for r in live.silent if r not in recovering]
        if silent:
            health_reasons.append(f"not answering a ping: {', '.join(silent)}")
        # While a role restarts, the watchdog's rounds are not healthy: that is its doing.
        if now - self._last_healthy_at > self._liveness_stale_s and not recovering:
            health_reasons.append(
                f"no healthy watchdog round for {now - self._last_healthy_at:.0f} s"
            )
        ready_reasons: list[str] = []
        if not self._node_started:
            ready_reasons.append(
                "the node is restarting"
                if "node" in self._recovering
                else "the node is not trading yet"
            )
        elif self._last_report_at is not None and now - self._last_report_at > REPORT_STALE_S:
            ready_reasons.append(
                f"the node has not reported for {now - self._last_report_at:.0f} s"
            )
        if self._data.stale:
            ready_reasons.append("market data stalled")
        age = now - (self._last_checkpoint_at or self._started_at)
        if age > self._checkpoint_stale_s:
            ready_reasons.append(f"no checkpoint for {age:.0f} s")
        if self._halt_reason is not None:
            ready_reasons.append(f"trading halted ({self._halt_reason})")
        if recovering or down:
            ready_reasons.append(f"recovering: {', '.join((*recovering, *down))}")
        healthy, ready = not health_reasons, not ready_reasons
        self.m.healthy.labels(self.trader_id).set(1 if healthy else 0)
        self.m.ready.labels(self.trader_id).set(1 if ready else 0)
        return Health(
            healthy, ready, tuple(health_reasons), tuple(dict.fromkeys(ready_reasons)), recovering
        )
