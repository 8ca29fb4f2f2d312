"""The metrics actor, driven by injected messages under a real supervisor: what it counts
and how it judges health and readiness, with its HTTP endpoint off (the service test
scrapes it for real)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from actors.metrics import MetricsActor
from protocol import (
    AlerterStats,
    BreakerSettings,
    CheckpointWritten,
    ChildExited,
    ChildStarted,
    Decision,
    DecisionKind,
    Health,
    Liveness,
    MetricsSettings,
    NodeReport,
    NodeStarted,
    OrderFilled,
    OrderRejected,
    Ping,
    QueryHealth,
    TradingState,
    TradingStateChanged,
    WhereIs,
)
from supervisor import ChildSpec, Supervisor, SupervisorSpec
from tests.helpers import snapshot


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def metrics() -> Iterator[tuple[object, Clock]]:
    clock = Clock()
    spec = SupervisorSpec(
        children=(
            ChildSpec(
                "metrics",
                lambda ctx: MetricsActor.start(
                    ctx, "M-1", MetricsSettings(), BreakerSettings(), 1.0, 0.5, clock=clock
                ),
            ),
        )
    )
    ref = Supervisor.start(spec)
    actor = ref.ask(WhereIs("metrics"), timeout=5)
    yield actor, clock
    ref.stop(timeout=10)


def health(actor: object) -> Health:
    answer = actor.ask(QueryHealth(), timeout=5)  # type: ignore[attr-defined]
    assert isinstance(answer, Health)
    return answer


def sample(actor: object, name: str, **labels: str) -> float | None:
    proxy = actor.proxy()  # type: ignore[attr-defined]
    registry = proxy.m.get().registry
    return registry.get_sample_value(name, {"trader": "M-1", **labels})


def fill(sid: str = "S-1") -> OrderFilled:
    return OrderFilled(
        "O-1",
        "T-1",
        "BTCUSDT-PERP.BINANCE",
        "BUY",
        Decimal(1),
        Decimal(100),
        Decimal("0.04"),
        0,
        strategy_id=sid,
    )


def test_ready_only_once_the_node_trades_and_not_while_halted(metrics):
    actor, clock = metrics
    first = health(actor)
    assert first.healthy and not first.ready
    assert "the node is not trading yet" in first.ready_reasons
    actor.tell(NodeStarted(1, "M-1", "BTCUSDT-PERP.BINANCE", 0, strategy_ids=("S-1",)))
    actor.tell(CheckpointWritten(clock.now, 0.002, snapshot()))
    assert health(actor).ready
    actor.tell(TradingStateChanged(TradingState.HALTED, "max drawdown"))
    now = health(actor)
    assert not now.ready and now.ready_reasons == ("trading halted (HALTED: max drawdown)",)
    assert sample(actor, "paper_trading_halted") == 1
    actor.tell(TradingStateChanged(TradingState.ACTIVE, "operator"))
    assert health(actor).ready
    clock.now += 100  # no checkpoint for 100 s (stale after 2 x 1 s + 30 s)
    actor.tell(Liveness((), clock.now))
    stale = health(actor)
    assert not stale.ready and "no checkpoint for 100 s" in stale.ready_reasons
    assert "the node has not reported for 100 s" in stale.ready_reasons


def test_a_restarting_node_is_recovering_not_unhealthy_and_its_restart_is_counted(metrics):
    actor, clock = metrics
    actor.tell(NodeStarted(1, "M-1", "BTCUSDT-PERP.BINANCE", 0))
    actor.tell(CheckpointWritten(clock.now, 0.002, snapshot()))
    actor.tell(ChildExited("node", "urn:1", abnormal=True, reason="child killed"))
    actor.tell(Liveness(("node",), clock.now))  # the watchdog could not ping it
    during = health(actor)
    assert during.healthy and during.recovering == ("node",)
    assert not during.ready and "the node is restarting" in during.ready_reasons
    actor.tell(ChildStarted("node", "urn:2", restart=True))
    assert not health(actor).ready  # started, not trading yet
    actor.tell(NodeStarted(2, "M-1", "BTCUSDT-PERP.BINANCE", 10))
    actor.tell(Liveness((), clock.now))
    after = health(actor)
    assert after.healthy and after.ready and after.recovering == ()
    assert sample(actor, "paper_actor_restarts_total", role="node") == 1
    # A role that does not answer and is not being restarted: unhealthy.
    actor.tell(Liveness(("checkpointer",), clock.now))
    hung = health(actor)
    assert not hung.healthy and hung.health_reasons == ("not answering a ping: checkpointer",)


def test_counts_fills_rejects_denials_errors_and_reads_a_report(metrics):
    actor, clock = metrics
    actor.tell(NodeStarted(1, "M-1", "BTCUSDT-PERP.BINANCE", 0, strategy_ids=("S-1", "S-2")))
    for _ in range(3):
        actor.tell(fill("S-1"))
    actor.tell(OrderRejected("O-2", "margin", denied=False, strategy_id="S-2"))
    actor.tell(OrderRejected("O-3", "halted", denied=True, strategy_id="S-2"))
    actor.tell(Decision(DecisionKind.TRANSIENT, "timeout"))
    actor.tell(
        NodeReport(
            equity=Decimal(900),
            balance=Decimal(950),
            ts_ns=int(clock.now * 1e9),
            equity_peak=Decimal(1000),
            last_data_ns=int((clock.now - 4) * 1e9),
            data_interval_s=60,
            loop_lag_s=0.25,
        )
    )
    health(actor)  # every message before this one is handled
    assert sample(actor, "paper_fills_total", strategy="S-1") == 3
    assert sample(actor, "paper_fills_total", strategy="S-2") == 0  # there from the start
    assert sample(actor, "paper_rejects_total", strategy="S-2") == 1
    assert sample(actor, "paper_denials_total", strategy="S-2") == 1
    assert sample(actor, "paper_errors_total", **{"class": "transient"}) == 1
    assert sample(actor, "paper_equity") == 900
    assert sample(actor, "paper_drawdown_ratio") == pytest.approx(-0.1)
    assert sample(actor, "paper_market_data_age_seconds") == pytest.approx(4.0)
    assert sample(actor, "paper_node_loop_lag_seconds") == 0.25


def test_outbox_backlog_and_telegram_failures_add_up(metrics):
    actor, _ = metrics
    actor.tell(AlerterStats(pending=4, telegram_failures=3))  # failures since the last report
    actor.tell(AlerterStats(pending=6, telegram_failures=2))
    actor.tell(AlerterStats(pending=6, telegram_failures=0))
    health(actor)
    assert sample(actor, "paper_alert_outbox_pending") == 6
    assert sample(actor, "paper_telegram_failures_total") == 5


def synced(actor: object) -> None:
    """Every message told before this one is handled (a ping computes nothing)."""
    actor.ask(Ping(), timeout=5)  # type: ignore[attr-defined]


def test_the_ready_gauge_follows_each_change_without_a_probe(metrics):
    """Review finding: the gauges were computed only on a probe or a node report, so a
    halt (after which reports may stop) left paper_ready at 1 for an alert rule."""
    actor, clock = metrics
    actor.tell(NodeStarted(1, "M-1", "BTCUSDT-PERP.BINANCE", 0))
    actor.tell(CheckpointWritten(clock.now, 0.002, snapshot()))
    synced(actor)
    assert sample(actor, "paper_ready") == 1
    actor.tell(TradingStateChanged(TradingState.HALTED, "max drawdown"))
    synced(actor)
    assert sample(actor, "paper_ready") == 0


def test_a_role_never_restarted_turns_unhealthy_after_the_recovery_window(metrics):
    actor, clock = metrics
    actor.tell(ChildExited("gate", "urn:g", abnormal=True, reason="crash"))
    actor.tell(Liveness(("gate",), clock.now))
    assert health(actor).healthy
    clock.now += 61
    actor.tell(Liveness(("gate",), clock.now))
    late = health(actor)
    assert not late.healthy
    assert "not restarted for over 60 s: gate" in late.health_reasons


def test_a_restarted_metrics_actor_takes_the_halt_from_the_checkpoint(metrics):
    actor, clock = metrics
    halted = snapshot(trading_state=TradingState.HALTED, halt_reason="operator: night")
    actor.tell(CheckpointWritten(clock.now, 0.002, halted))
    actor.tell(NodeReport(equity=Decimal(1), balance=Decimal(1), ts_ns=int(clock.now * 1e9)))
    now = health(actor)
    assert not now.ready and "trading halted (HALTED: operator: night)" in now.ready_reasons
