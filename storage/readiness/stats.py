"""The statistics behind the go-live verdict, each from its published source.

- Probabilistic Sharpe Ratio and Minimum Track Record Length: Bailey & López de Prado,
  "The Sharpe Ratio Efficient Frontier", Journal of Risk 15(2), 2012. A Sharpe ratio
  estimated from ``n`` returns with skewness ``g3`` and (Pearson, non-excess) kurtosis
  ``g4`` has the standard error ``sqrt((1 - g3 SR + (g4 - 1)/4 SR^2) / (n - 1))``; PSR is
  the probability that the true ratio exceeds a benchmark, MinTRL the ``n`` at which PSR
  reaches a confidence level.
- Deflated Sharpe Ratio: Bailey & López de Prado, "The Deflated Sharpe Ratio", Journal of
  Portfolio Management 40(5), 2014: PSR against the Sharpe ratio the best of ``N``
  skill-less trials is expected to reach (the expected maximum of N normals, their
  equation with the Euler-Mascheroni constant).
- The bootstrap cone: pyfolio's ``forecast_cone_bootstrap`` (returns drawn with
  replacement into paths of the paper session's length; at each step the paths' mean
  plus or minus ``k`` standard deviations), and the same paths' maximum drawdowns.
- Two samples of returns: the Mann-Whitney U test (no normality asked of fat-tailed
  returns) with its effect size, the rank-biserial correlation (Kerby 2014): the share of
  (paper, backtest) pairs where paper is higher minus the share where it is lower.

- Reconciliation of paper against the backtest of the same window: QuantConnect's two
  scores (docs/readiness.md cites the definition): the Pearson correlation of the two
  daily-return series, and their DTW distance (tslearn's ``dtw``: the square root of the
  least sum of squared differences along a warping path, a Sakoe-Chiba band of radius 3)
  annualized as ``|(1 + DTW / n) ** 252 - 1|``. DTW is dtaidistance's (``window`` 4 is
  that band: it allows ``|i - j| < 4``).

Every Sharpe ratio here is per observation (not annualized): the papers' formulas are.
Returns are ratios, not money, so they are floats (numpy); the normal distribution is
scipy's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from dtaidistance import dtw
from numpy.typing import NDArray
from scipy import stats

type Floats = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Moments:
    """What the papers' formulas read of a return series."""

    n: int
    mean: float
    std: float  # sample (n - 1)
    sharpe: float  # per observation; 0 when the series does not vary
    skew: float
    kurtosis: float  # Pearson's: 3 for a normal distribution


def moments(returns: Sequence[float] | Floats) -> Moments:
    r = np.asarray(returns, dtype=np.float64)
    n = len(r)
    if n < 2:
        return Moments(n, float(r.mean()) if n else 0.0, 0.0, 0.0, 0.0, 3.0)
    std = float(r.std(ddof=1))
    if std == 0:
        return Moments(n, float(r.mean()), 0.0, 0.0, 0.0, 3.0)
    return Moments(
        n=n,
        mean=float(r.mean()),
        std=std,
        sharpe=float(r.mean()) / std,
        skew=float(stats.skew(r)),
        kurtosis=float(stats.kurtosis(r, fisher=False)),
    )


def _sharpe_variance_term(sharpe: float, skew: float, kurtosis: float) -> float:
    """``1 - g3 SR + (g4 - 1)/4 SR^2``: n - 1 times the Sharpe estimator's variance."""
    return 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe**2


def psr(sharpe: float, n: int, skew: float, kurtosis: float, benchmark: float = 0.0) -> float:
    """P(true Sharpe > ``benchmark``) given an estimate from ``n`` observations (2012)."""
    if n < 2:
        return 0.5 if sharpe == benchmark else float(sharpe > benchmark)
    term = _sharpe_variance_term(sharpe, skew, kurtosis)
    if term <= 0:
        return float(sharpe > benchmark)
    z = (sharpe - benchmark) * math.sqrt(n - 1) / math.sqrt(term)
    return float(stats.norm.cdf(z))


def min_trl(
    sharpe: float, skew: float, kurtosis: float, benchmark: float = 0.0, confidence: float = 0.95
) -> float:
    """The observations needed for PSR(``benchmark``) to reach ``confidence`` if the
    estimate holds (2012); infinite when the Sharpe ratio does not exceed the benchmark."""
    if sharpe <= benchmark:
        return math.inf
    z = float(stats.norm.ppf(confidence))
    term = max(_sharpe_variance_term(sharpe, skew, kurtosis), 0.0)
    return 1.0 + term * (z / (sharpe - benchmark)) ** 2


def expected_max_sharpe(trials: int, variance: float) -> float:
    """The Sharpe ratio the best of ``trials`` skill-less ones is expected to show, their
    estimates spread with ``variance`` (2014, the expected maximum of N normals)."""
    if trials <= 1:
        return 0.0
    gamma = float(np.euler_gamma)
    z1 = float(stats.norm.ppf(1.0 - 1.0 / trials))
    z2 = float(stats.norm.ppf(1.0 - 1.0 / (trials * math.e)))
    return math.sqrt(variance) * ((1.0 - gamma) * z1 + gamma * z2)


def dsr(
    sharpe: float,
    n: int,
    skew: float,
    kurtosis: float,
    trials: int,
    variance: float | None = None,
) -> tuple[float, float]:
    """(DSR, the deflated benchmark SR0): PSR against what ``trials`` chances give
    (2014). ``variance``: the trials' Sharpe ratios' variance; unset, the estimator's own
    (what skill-less trials would scatter by)."""
    if variance is None:
        variance = _sharpe_variance_term(sharpe, skew, kurtosis) / max(n - 1, 1)
    benchmark = expected_max_sharpe(trials, variance)
    return psr(sharpe, n, skew, kurtosis, benchmark), benchmark


def bootstrap_paths(
    returns: Sequence[float] | Floats, length: int, samples: int, seed: int
) -> Floats:
    """``samples`` cumulative-return paths of ``length`` steps, each step a return drawn
    with replacement (pyfolio's ``simulate_paths``); shape (samples, length)."""
    r = np.asarray(returns, dtype=np.float64)
    rng = np.random.default_rng(seed)
    draws = r[rng.integers(0, len(r), size=(samples, length))]
    paths: Floats = np.cumprod(1.0 + draws, axis=1) - 1.0
    return paths


@dataclass(frozen=True, slots=True)
class Cone:
    """The bootstrap cone: at each step, the paths' mean and mean -/+ k std."""

    mean: tuple[float, ...]
    lower: tuple[float, ...]
    upper: tuple[float, ...]


def cone(paths: Floats, sigmas: float) -> Cone:
    """pyfolio's ``summarize_paths``: mean and mean -/+ ``sigmas`` std at each step."""
    mean = paths.mean(axis=0)
    std = paths.std(axis=0)
    return Cone(
        mean=tuple(float(x) for x in mean),
        lower=tuple(float(x) for x in mean - sigmas * std),
        upper=tuple(float(x) for x in mean + sigmas * std),
    )


def max_drawdown(cumulative: Sequence[float] | Floats) -> float:
    """The deepest fall of ``1 + cumulative`` from its running peak (starting at 1), as
    a positive fraction (0.1: 10 % below the peak)."""
    wealth = np.concatenate(([1.0], 1.0 + np.asarray(cumulative, dtype=np.float64)))
    peaks = np.maximum.accumulate(wealth)
    return float(np.max(1.0 - wealth / peaks))


def max_drawdowns(paths: Floats) -> Floats:
    """Each path's maximum drawdown (positive fractions)."""
    wealth = np.concatenate((np.ones((paths.shape[0], 1)), 1.0 + paths), axis=1)
    peaks = np.maximum.accumulate(wealth, axis=1)
    drawdowns: Floats = np.max(1.0 - wealth / peaks, axis=1)
    return drawdowns


@dataclass(frozen=True, slots=True)
class TwoSample:
    """Mann-Whitney U of paper against backtest returns, with its effect size."""

    u: float
    p_value: float
    effect: float  # rank-biserial: > 0 paper higher, < 0 paper lower, in [-1, 1]


def two_sample(paper: Sequence[float] | Floats, backtest: Sequence[float] | Floats) -> TwoSample:
    a = np.asarray(paper, dtype=np.float64)
    b = np.asarray(backtest, dtype=np.float64)
    result = stats.mannwhitneyu(a, b, alternative="two-sided")
    u = float(result.statistic)
    return TwoSample(u=u, p_value=float(result.pvalue), effect=2.0 * u / (len(a) * len(b)) - 1.0)


DTW_RADIUS = 3  # QuantConnect's Sakoe-Chiba band
DTW_PERIODS = 252  # QuantConnect compounds the mean daily distance over 252 days


def returns_correlation(a: Sequence[float] | Floats, b: Sequence[float] | Floats) -> float | None:
    """Pearson's correlation; None when either series does not vary (or is shorter
    than 2)."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(x) < 2 or float(x.std()) == 0 or float(y.std()) == 0:
        return None
    return float(stats.pearsonr(x, y).statistic)


def dtw_distance(a: Sequence[float] | Floats, b: Sequence[float] | Floats) -> float:
    """sqrt(min over warping paths in the band of the sum of squared differences)."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(dtw.distance(x, y, window=DTW_RADIUS + 1, use_c=True))


def annualized_dtw(a: Sequence[float] | Floats, b: Sequence[float] | Floats) -> float:
    """QuantConnect's annualized returns DTW of two daily-return series of one length."""
    raw = dtw_distance(a, b)
    return abs((1.0 + raw / len(a)) ** DTW_PERIODS - 1.0)
