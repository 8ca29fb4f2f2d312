"""The go-live verdict: each criterion with its figure, threshold and source, then
READY, NOT YET (what is still missing) or NO (which test failed, by how much).

A criterion passes, fails, waits (not enough evidence yet, or the registry entry lacks
what it needs) or does not apply. One failure makes the verdict NO; else one wait makes
it NOT YET; else READY. A test that needs a track record long enough to mean something
(PSR) waits until MinTRL is reached rather than failing on a few noisy days; the tests
that already mean something on a short record (the cone, the drawdown, the two-sample
test, execution, operations) fail at once.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

import numpy as np

from protocol import BacktestEvidence, ReadinessSettings
from storage.readiness import stats
from storage.readiness.evidence import PaperEvidence, SessionOps
from storage.readiness.market import MarketParity


class Status(StrEnum):
    PASS = "pass"  # noqa: S105 (a status, not a password)
    FAIL = "fail"
    WAIT = "wait"
    NA = "n/a"


class Verdict(StrEnum):
    READY = "READY"
    NOT_YET = "NOT YET"
    NO = "NO"


# What a metric reports for each verdict (paper_readiness{criterion="verdict"}).
VERDICT_VALUE = {Verdict.NO: 0.0, Verdict.NOT_YET: 1.0, Verdict.READY: 2.0}
STATUS_VALUE = {Status.FAIL: 0.0, Status.WAIT: 1.0, Status.PASS: 2.0, Status.NA: -1.0}

PSR_2012 = "Bailey & López de Prado 2012, The Sharpe Ratio Efficient Frontier"
DSR_2014 = "Bailey & López de Prado 2014, The Deflated Sharpe Ratio"
PYFOLIO = "pyfolio forecast_cone_bootstrap (returns resampled with replacement)"
MIN_TEST_SAMPLE = 10  # returns a side before the two-sample test is asked
MIN_MARKET_DAYS = 5  # daily returns a side before their correlation and DTW are judged
QUANTCONNECT = "QuantConnect reconciliation (live vs out-of-sample backtest)"


@dataclass(frozen=True, slots=True)
class Criterion:
    key: str
    group: str  # evidence | skill | consistency | market | execution | operations
    title: str
    figure: float | None
    threshold: str
    source: str
    status: Status
    detail: str


@dataclass(frozen=True, slots=True)
class ConeView:
    """The backtest's bootstrap cone over the paper session's days, and the paper curve
    (cumulative returns, fractions) inside it."""

    days: tuple[str, ...]
    mean: tuple[float, ...]
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    paper: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class StrategyReadiness:
    strategy_id: str
    registered: str | None  # the registry entry's name
    verdict: Verdict
    reasons: tuple[str, ...]
    criteria: tuple[Criterion, ...]
    cone: ConeView | None


# key: (group, title, source)
META: dict[str, tuple[str, str, str]] = {
    "min_trl": ("evidence", "Minimum track record length", PSR_2012),
    "round_trips": ("evidence", "Round trips", "readiness.min_round_trips"),
    "psr": ("skill", "PSR(0) of the paper returns", PSR_2012),
    "dsr": ("skill", "Deflated Sharpe ratio of the backtest", DSR_2014),
    "cone": ("consistency", "Cumulative return in the bootstrap cone", PYFOLIO),
    "drawdown": ("consistency", "Max drawdown within the bootstrap's", PYFOLIO),
    "returns_test": (
        "consistency",
        "Returns: Mann-Whitney U with its rank-biserial effect",
        "Mann-Whitney U; rank-biserial correlation (Kerby 2014)",
    ),
    "parity": ("market", "Parity with the backtest of the same data", QUANTCONNECT),
    "correlation": ("market", "Returns correlation with the backtest", QUANTCONNECT),
    "dtw": ("market", "Annualized returns DTW distance", QUANTCONNECT),
    "trade_match": ("market", "Fills matched in the backtest", "report parity's fills"),
    "fill_price": ("market", "Matched fills' price difference", "report parity's fills"),
    "slippage": ("execution", "Slippage against the decision price", "the ledger's fills"),
    "rejects": ("execution", "Rejected and denied orders", "the event log"),
    "costs": ("execution", "Fees and funding against the assumption", "the ledger"),
    "restarts": ("operations", "Node restarts", "the ledger"),
    "gaps": ("operations", "Market-data gaps", "the event log (gap, catch_up)"),
    "halts": ("operations", "Halts not asked for", "the ledger's trading states"),
    "reconcile": ("operations", "Reconciliation differences", "the event log"),
    "stops": ("operations", "Open positions protected by a stop", "the checkpoints"),
}
NO_SERIES = "the registry entry has no daily returns (strategies add --returns)"
NO_ENTRY = "no registry entry for this strategy (report readiness --strategy NAME)"


def _c(key: str, figure: float | None, threshold: str, status: Status, detail: str) -> Criterion:
    group, title, source = META[key]
    value = None if figure is None else float(figure)
    return Criterion(key, group, title, value, threshold, source, status, detail)


def _judged(
    key: str, figure: float, threshold: str, ok: bool, detail: str, shortfall: str = ""
) -> Criterion:
    """PASS or FAIL by ``ok``; a failure's detail ends with by how much (``shortfall``)."""
    status = Status.PASS if ok else Status.FAIL
    return _c(key, figure, threshold, status, detail if ok else detail + shortfall)


def _pct(x: float) -> str:
    return f"{x * 100:.2f} %"


@dataclass(frozen=True, slots=True)
class _Case:
    """One strategy's inputs, with the backtest's moments worked out once."""

    paper: PaperEvidence
    evidence: BacktestEvidence
    settings: ReadinessSettings
    daily: list[float]  # the backtest's
    bt: stats.Moments
    needed_days: float | None  # MinTRL (None: no backtest series)
    missing: str  # why there is no backtest series

    @property
    def days(self) -> int:
        return len(self.paper.daily_returns)


def judge(
    paper: PaperEvidence,
    ops: SessionOps,
    backtest: BacktestEvidence | None,
    registered: str | None,
    settings: ReadinessSettings,
    decision_slippage_bps: Sequence[float] | None = None,
    market: MarketParity | str | None = None,
) -> StrategyReadiness:
    """The verdict on one strategy. ``decision_slippage_bps``: each market fill's price
    against its decision price (bps, > 0 worse), where the caller can tell. ``market``:
    a live-feed session beside the backtest of its recording, or why it was not run."""
    evidence = backtest or BacktestEvidence()
    daily = [float(v) for v in evidence.daily_returns]
    bt = stats.moments(daily)
    needed = (
        None
        if len(daily) < 2
        else stats.min_trl(bt.sharpe, bt.skew, bt.kurtosis, 0.0, settings.confidence)
    )
    missing = NO_SERIES if registered is not None else NO_ENTRY
    case = _Case(paper, evidence, settings, daily, bt, needed, missing)
    consistency, cone_view = _consistency(case)
    criteria = [
        *_evidence(case),
        *_skill(case),
        *consistency,
        _returns_test(case),
        *_market(ops, market, settings),
        *_execution(case, decision_slippage_bps),
        *_operations(paper, ops, settings),
    ]
    failed = [c for c in criteria if c.status is Status.FAIL]
    waiting = [c for c in criteria if c.status is Status.WAIT]
    if failed:
        verdict, reasons = Verdict.NO, tuple(f"{c.title}: {c.detail}" for c in failed)
    elif waiting:
        verdict, reasons = Verdict.NOT_YET, tuple(dict.fromkeys(c.detail for c in waiting))
    else:
        verdict, reasons = Verdict.READY, ()
    return StrategyReadiness(
        paper.strategy_id, registered, verdict, reasons, tuple(criteria), cone_view
    )


def _evidence(case: _Case) -> list[Criterion]:
    days, need = case.days, case.needed_days
    if need is None:
        trl = _c("min_trl", days, "-", Status.WAIT, case.missing)
    elif math.isinf(need):
        trl = _c(
            "min_trl",
            days,
            "backtest Sharpe > 0",
            Status.FAIL,
            f"the backtest's own Sharpe ratio is {case.bt.sharpe:.3f} a day: no track "
            "record can confirm it",
        )
    else:
        short = math.ceil(need) - days
        trl = _c(
            "min_trl",
            days,
            f">= {math.ceil(need)} days",
            Status.PASS if short <= 0 else Status.WAIT,
            f"{days} of {math.ceil(need)} days"
            if short <= 0
            else f"needs {short} more days by MinTRL",
        )
    trips, wanted = len(case.paper.trade_returns), case.settings.min_round_trips
    rt = _c(
        "round_trips",
        trips,
        f">= {wanted}",
        Status.PASS if trips >= wanted else Status.WAIT,
        f"{trips} round trips" if trips >= wanted else f"needs {wanted - trips} more round trips",
    )
    return [trl, rt]


def _skill(case: _Case) -> list[Criterion]:
    conf, days = case.settings.confidence, case.days
    if days < 2:
        psr = _c("psr", None, f">= {conf}", Status.WAIT, "needs 2 days of paper returns")
    else:
        pm = stats.moments(case.paper.daily_returns)
        value = stats.psr(pm.sharpe, days, pm.skew, pm.kurtosis, 0.0)
        if value >= conf:
            status, detail = Status.PASS, f"PSR(0) {value:.3f}"
        elif case.needed_days is not None and days >= case.needed_days:
            status = Status.FAIL
            detail = (
                f"PSR(0) {value:.3f} < {conf} (by {conf - value:.3f}) after {days} days, "
                "MinTRL reached"
            )
        else:
            status, detail = Status.WAIT, f"PSR(0) {value:.3f} < {conf}, judged once MinTRL is met"
        psr = _c("psr", value, f">= {conf}", status, detail)
    floor, trials = case.settings.min_dsr, case.evidence.trials
    if case.needed_days is None:
        dsr = _c("dsr", None, f">= {floor}", Status.WAIT, case.missing)
    elif trials is None:
        dsr = _c(
            "dsr",
            None,
            f">= {floor}",
            Status.WAIT,
            "the registry entry has no number of trials (strategies add --trials)",
        )
    else:
        spread = case.evidence.trials_sharpe_variance
        bt = case.bt
        value, sr0 = stats.dsr(
            bt.sharpe, bt.n, bt.skew, bt.kurtosis, trials, None if spread is None else float(spread)
        )
        dsr = _judged(
            "dsr",
            value,
            f">= {floor}",
            value >= floor,
            f"DSR {value:.3f} after {trials} trials (SR0 {sr0:.4f} a day)",
            f", short by {floor - value:.3f}",
        )
    return [psr, dsr]


def _consistency(case: _Case) -> tuple[list[Criterion], ConeView | None]:
    settings, days = case.settings, case.days
    if case.needed_days is None or days < 1:
        why = case.missing if case.needed_days is None else "no paper day yet"
        return [_c(k, None, "-", Status.WAIT, why) for k in ("cone", "drawdown")], None
    paths = stats.bootstrap_paths(
        case.daily, days, settings.bootstrap_samples, settings.bootstrap_seed
    )
    band = stats.cone(paths, settings.cone_sigmas)
    curve = tuple(_cumulative(case.paper.daily_returns))
    view = ConeView(case.paper.days, band.mean, band.lower, band.upper, curve)
    end, low, high = curve[-1], band.lower[-1], band.upper[-1]
    if end < low:
        status = Status.FAIL
        detail = (
            f"paper {_pct(end)} below the cone's {settings.cone_sigmas:g}-sigma lower edge "
            f"{_pct(low)} after {days} days (by {(low - end) * 100:.2f} points)"
        )
    elif end > high:
        status = Status.PASS
        detail = f"paper {_pct(end)} above the cone ({_pct(high)}): better than backtested"
    else:
        status = Status.PASS
        detail = f"paper {_pct(end)} within [{_pct(low)}, {_pct(high)}] after {days} days"
    cone = _c("cone", end, f">= {_pct(low)}", status, detail)
    limit = float(np.percentile(stats.max_drawdowns(paths), settings.drawdown_percentile))
    dd = stats.max_drawdown(curve)
    drawdown = _judged(
        "drawdown",
        dd,
        f"<= {_pct(limit)} (p{settings.drawdown_percentile:g})",
        dd <= limit,
        f"paper max drawdown {_pct(dd)}",
        f", deeper by {(dd - limit) * 100:.2f} points",
    )
    return [cone, drawdown], view


def _returns_test(case: _Case) -> Criterion:
    """Per-trade returns when the entry has them, else daily ones."""
    settings = case.settings
    per_trade = bool(case.evidence.trade_returns)
    backtest = [float(v) for v in case.evidence.trade_returns] if per_trade else case.daily
    paper = list(case.paper.trade_returns if per_trade else case.paper.daily_returns)
    unit = "round trip" if per_trade else "day"
    threshold = f"effect >= -{settings.max_effect:g} or p >= {settings.test_alpha:g}"
    if len(backtest) < MIN_TEST_SAMPLE:
        return _c(
            "returns_test",
            None,
            threshold,
            Status.WAIT,
            f"the registry entry has fewer than {MIN_TEST_SAMPLE} returns",
        )
    if len(paper) < MIN_TEST_SAMPLE:
        return _c(
            "returns_test",
            None,
            threshold,
            Status.WAIT,
            f"needs {MIN_TEST_SAMPLE - len(paper)} more paper returns a {unit} "
            "for the two-sample test",
        )
    test = stats.two_sample(paper, backtest)
    worse = test.p_value < settings.test_alpha and test.effect < -settings.max_effect
    detail = (
        f"returns a {unit}: effect {test.effect:+.3f}, p = {test.p_value:.4f} "
        f"({len(paper)} paper vs {len(backtest)} backtest)"
    )
    if worse:
        detail += f": paper worse, beyond -{settings.max_effect:g} by "
        detail += f"{-settings.max_effect - test.effect:.3f}"
    return _c("returns_test", test.effect, threshold, Status.FAIL if worse else Status.PASS, detail)


def _cumulative(returns: Sequence[float]) -> list[float]:
    out, wealth = [], 1.0
    for r in returns:
        wealth *= 1.0 + r
        out.append(wealth - 1.0)
    return out


def _market(
    ops: SessionOps, market: MarketParity | str | None, settings: ReadinessSettings
) -> list[Criterion]:
    """QuantConnect's reconciliation figures need the session's recording replayed in a
    backtest, which only ``paper-node report readiness`` runs (it imports NautilusTrader;
    the supervisor's Telegram and alerter do not)."""
    if ops.mode == "replay":
        detail = "a replay has no venue to differ from: its parity is exact by construction"
        return [_c("parity", None, "-", Status.NA, detail)]
    if not isinstance(market, MarketParity):
        detail = market or (
            "not computed here: `paper-node report readiness` runs the backtest of the "
            "session's recording and shows these figures"
        )
        return [_c("parity", None, "-", Status.NA, detail)]
    return [*_returns_parity(market, settings), *_fills_parity(market, settings)]


def _returns_parity(m: MarketParity, settings: ReadinessSettings) -> list[Criterion]:
    floor, ceiling = settings.min_returns_correlation, settings.max_annual_dtw
    corr_t, dtw_t = f">= {floor:g}", f"<= {ceiling:g}"
    if m.days < MIN_MARKET_DAYS:
        why = f"needs {MIN_MARKET_DAYS - m.days} more days of returns beside the backtest"
        return [
            _c("correlation", m.correlation, corr_t, Status.WAIT, why),
            _c("dtw", m.dtw, dtw_t, Status.WAIT, why),
        ]
    if m.correlation is None:
        corr = _c("correlation", None, corr_t, Status.NA, "a side's returns do not vary")
    else:
        corr = _judged(
            "correlation",
            m.correlation,
            corr_t,
            m.correlation >= floor,
            f"{m.correlation:.3f} over {m.days} days",
            f", below by {floor - m.correlation:.3f}",
        )
    value = m.dtw or 0.0
    dtw = _judged(
        "dtw",
        value,
        dtw_t,
        value <= ceiling,
        f"{_pct(value)} a year over {m.days} days",
        f", above by {(value - ceiling) * 100:.2f} points",
    )
    return [corr, dtw]


def _fills_parity(m: MarketParity, settings: ReadinessSettings) -> list[Criterion]:
    rate, floor = m.match_rate, settings.min_match_rate
    counts = f"{m.matched} of {m.session_fills} paper and {m.backtest_fills} backtest fills"
    if rate is None:
        match = _c("trade_match", None, f">= {floor:g}", Status.WAIT, "no fill on either side")
    else:
        match = _judged(
            "trade_match",
            rate,
            f">= {floor:g}",
            rate >= floor,
            counts,
            f": below by {floor - rate:.3f}",
        )
    limit, bps = settings.max_fill_price_bps, m.median_price_bps
    if bps is None:
        price = _c("fill_price", None, f"<= {limit:g} bps", Status.NA, "no fill matched")
    else:
        price = _judged(
            "fill_price",
            bps,
            f"<= {limit:g} bps",
            bps <= limit,
            f"median {bps:+.2f} bps (> 0: paper worse) over {m.matched} matched fills",
            f", above by {bps - limit:.2f} bps",
        )
    return [match, price]


def _execution(case: _Case, slippage: Sequence[float] | None) -> list[Criterion]:
    paper, fills, settings = case.paper, case.evidence.fills, case.settings
    out: list[Criterion] = []
    if not slippage:
        out.append(_c("slippage", None, "-", Status.NA, "no decision prices for these fills"))
    else:
        median = statistics.median(slippage)
        limit = float(fills.slippage_bps or 0) + settings.slippage_tolerance_bps
        out.append(
            _judged(
                "slippage",
                median,
                f"<= {limit:g} bps (assumed {fills.slippage_bps or 0} + "
                f"{settings.slippage_tolerance_bps:g})",
                median <= limit,
                f"median {median:.2f} bps over {len(slippage)} market fills",
                f", above by {median - limit:.2f} bps",
            )
        )
    refused = paper.rejected + paper.denied
    rate = refused / paper.orders if paper.orders else 0.0
    out.append(
        _judged(
            "rejects",
            rate,
            f"<= {settings.max_reject_rate:g}",
            rate <= settings.max_reject_rate,
            f"{paper.rejected} rejected, {paper.denied} denied of {paper.orders} orders",
        )
    )
    notional = sum((f.quantity * f.price for f in paper.fills), Decimal(0))
    if fills.fee_bps is None or not notional:
        why = "nothing filled yet" if not notional else "the registry entry assumes no fee_bps"
        out.append(_c("costs", None, "-", Status.NA, why))
        return out
    assumed = notional * fills.fee_bps / Decimal(10_000)
    # Funding counts only where the backtest assumed some (else it is not comparable).
    actual = paper.fees - (paper.funding if fills.funding_bps_per_day is not None else 0)
    ratio = float(actual / assumed) if assumed else math.inf
    out.append(
        _judged(
            "costs",
            ratio,
            f"<= {settings.max_cost_ratio:g} x assumed",
            ratio <= settings.max_cost_ratio,
            f"paid {actual:.2f} against {assumed:.2f} assumed ({fills.fee_bps} bps of "
            f"{notional:.2f} traded)",
            f", {ratio:.2f} x",
        )
    )
    return out


def _operations(
    paper: PaperEvidence, ops: SessionOps, settings: ReadinessSettings
) -> list[Criterion]:
    def at_most(key: str, figure: int, limit: int, detail: str) -> Criterion:
        return _judged(key, figure, f"<= {limit}", figure <= limit, detail)

    return [
        at_most("restarts", ops.restarts, settings.max_restarts, f"{ops.restarts} restart(s)"),
        at_most(
            "gaps", ops.gaps, settings.max_gaps, f"{ops.gaps} gap(s), {ops.catch_ups} caught up"
        ),
        at_most(
            "halts",
            len(paper.halts),
            settings.max_halts,
            "; ".join(paper.halts) if paper.halts else "none",
        ),
        at_most(
            "reconcile",
            ops.reconcile_differences,
            0,
            f"{ops.reconcile_differences} difference(s) after restarts",
        ),
        _stops(paper, settings),
    ]


def _stops(paper: PaperEvidence, settings: ReadinessSettings) -> Criterion:
    """Judged on the longest span a position was seen without its stop (the share of
    checkpoints protected is the figure): a checkpoint can fall between an entry's fill
    and its stop's acknowledgement, so one bare checkpoint is not a failure by itself."""
    cover, limit = paper.stops, settings.max_unprotected_s
    threshold = f"unprotected <= {limit:g} s"
    if not cover.placed_stops:
        return _c("stops", None, "-", Status.NA, "the strategy placed no stop")
    share = cover.share
    if share is None:
        return _c("stops", None, threshold, Status.NA, "no checkpoint saw an open position")
    longest = cover.longest_unprotected_s
    return _judged(
        "stops",
        share,
        threshold,
        longest <= limit,
        f"{cover.protected} of {cover.open_checkpoints} checkpoints with an open position "
        f"protected; longest unprotected {longest:.1f} s",
        f", longer by {longest - limit:.1f} s",
    )
