"""The promotion record: a backtested strategy registered for paper trading.

A research pipeline registers a strategy it validated (its import path, its config and
the backtest's metrics); the paper session's results are later set beside those
metrics. Every metric is optional, since pipelines differ in what they compute, but
each is declared, so a misspelt one is an error rather than a silently ignored key.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from protocol.settings import StrategyEntry

REGISTERED_NAME = r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$"


class BacktestMetrics(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    sharpe: Annotated[Decimal | None, Field(description="annualized Sharpe ratio")] = None
    sortino: Annotated[Decimal | None, Field(description="annualized Sortino ratio")] = None
    max_drawdown_pct: Annotated[
        Decimal | None, Field(ge=0, le=100, description="largest peak-to-trough loss, %")
    ] = None
    total_return_pct: Annotated[Decimal | None, Field(description="over the backtest, %")] = None
    trade_count: Annotated[int | None, Field(ge=0, description="round trips")] = None
    win_rate: Annotated[Decimal | None, Field(ge=0, le=1, description="a fraction")] = None
    profit_factor: Annotated[
        Decimal | None, Field(ge=0, description="gross profit / gross loss")
    ] = None
    deflated_sharpe: Annotated[
        Decimal | None, Field(ge=0, le=1, description="overfitting: deflated Sharpe ratio")
    ] = None
    pbo: Annotated[
        Decimal | None,
        Field(ge=0, le=1, description="overfitting: probability of backtest overfitting"),
    ] = None
    period: Annotated[
        str | None, Field(max_length=100, description="the backtest's data period")
    ] = None


class FillAssumptions(BaseModel):
    """What the backtest assumed of its fills: the readiness report sets the paper
    session's slippage and fees beside these (None: the backtest did not say)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    slippage_bps: Annotated[
        Decimal | None,
        Field(ge=0, description="a market fill's slippage against its decision price, bps"),
    ] = None
    fee_bps: Annotated[
        Decimal | None, Field(ge=0, description="fees a fill pays, bps of its notional")
    ] = None
    funding_bps_per_day: Annotated[
        Decimal | None,
        Field(description="funding paid a day, bps of the notional held (< 0: received)"),
    ] = None


class BacktestEvidence(BaseModel):
    """The backtest's own return series and how it was chosen: what the readiness
    report's statistics need (the metrics above are single figures and cannot give a
    distribution). Returns are fractions of the strategy's capital (0.01 = 1 %)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    daily_returns: Annotated[
        tuple[Decimal, ...], Field(description="one a UTC day, oldest first")
    ] = ()
    trade_returns: Annotated[
        tuple[Decimal, ...], Field(description="one a round trip (its PnL over the capital)")
    ] = ()
    trials: Annotated[
        int | None,
        Field(ge=1, description="configurations tried before this one was chosen (DSR)"),
    ] = None
    trials_sharpe_variance: Annotated[
        Decimal | None,
        Field(
            gt=0,
            description="variance of the trials' daily (not annualized) Sharpe ratios; "
            "unset: the Sharpe estimator's own variance",
        ),
    ] = None
    fills: FillAssumptions = FillAssumptions()


class RegisteredStrategy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Annotated[str, Field(pattern=REGISTERED_NAME, description="the registry's key")]
    entry: StrategyEntry
    metrics: BacktestMetrics = BacktestMetrics()
    # An entry registered before the readiness report has none: it reads with the
    # defaults (no series, no trials), and the report says what is missing.
    evidence: BacktestEvidence = BacktestEvidence()
    registered_at: str = ""
