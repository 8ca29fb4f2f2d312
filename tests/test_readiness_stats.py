"""The readiness statistics against the papers' worked examples and hand computations."""

from __future__ import annotations

import math
import random
import statistics

import numpy as np
import pytest

from storage.readiness.stats import (
    bootstrap_paths,
    cone,
    dsr,
    expected_max_sharpe,
    max_drawdown,
    max_drawdowns,
    min_trl,
    moments,
    psr,
    two_sample,
)

Z95 = 1.6448536269514722  # the standard normal's 95 % quantile, from a table


def test_dsr_is_the_2014_papers_numerical_example():
    """Bailey & López de Prado (2014), "A numerical example": 100 trials whose annualized
    Sharpe ratios vary by 1/2, the best at 2.5 over 1,250 days (250 a year) with skewness
    -3 and kurtosis 10: SR0 = 0.1132 a day, DSR = 0.9004 (not significant at 95 %)."""
    sharpe = 2.5 / math.sqrt(250)
    variance = 0.5 / 250
    assert expected_max_sharpe(100, variance) == pytest.approx(0.1132, abs=5e-5)
    value, benchmark = dsr(sharpe, 1250, -3.0, 10.0, trials=100, variance=variance)
    assert benchmark == pytest.approx(0.1132, abs=5e-5)
    assert value == pytest.approx(0.9004, abs=5e-5)
    # One trial is no search: DSR is PSR(0).
    assert dsr(sharpe, 1250, -3.0, 10.0, trials=1)[0] == psr(sharpe, 1250, -3.0, 10.0)


def test_min_trl_is_the_2012_papers_appendix_example():
    """Bailey & López de Prado (2012), "The Sharpe Ratio Efficient Frontier", Appendix
    A.3: monthly Sharpe 2/sqrt(12) against 1/sqrt(12), skewness -0.72, kurtosis 5.78, 95 %:
    "MinTRL = 59.895 months" (about 4.99 years). The paper's text is not in this tree; the
    figures are as an independent implementation's tests quote them, and reproduce here."""
    assert min_trl(2 / math.sqrt(12), -0.72, 5.78, 1 / math.sqrt(12), 0.95) == pytest.approx(
        59.895, abs=5e-4
    )


def test_min_trl_is_the_2012_papers_daily_example():
    """Ibid., section 5 (on its figure 8): with normal daily returns, 2.73 years are needed
    before an annualized Sharpe ratio of 2 can be called above 1 at 95 %."""
    for days in (250, 252):
        needed = min_trl(2 / math.sqrt(days), 0.0, 3.0, 1 / math.sqrt(days), 0.95)
        assert needed / days == pytest.approx(2.73, abs=5e-3)


@pytest.mark.parametrize(
    ("sharpe", "skew", "kurtosis", "std_error", "years_0", "years_half"),
    [
        (0.7079, -0.2250, 2.9570, 0.1028, 0.7152, 1.0804),  # the max-PSR portfolio
        (0.8183, -1.4455, 7.0497, 0.1550, 1.1593, 1.6695),  # the max-Sharpe portfolio
    ],
)
def test_psr_and_min_trl_are_the_2012_papers_portfolio_table(
    sharpe, skew, kurtosis, std_error, years_0, years_half
):
    """Ibid., the table "Stats of Max PSR and Max SR portfolios" (134 monthly returns):
    the Sharpe ratio's standard error, MinTRL in years against 0 and against an annualized
    0.5, and PSR(0.5 annualized) = 0.99999 for the max-Sharpe portfolio - to the printed
    decimals (1e-4: the inputs are printed to four decimals too)."""
    n, half = 134, 0.5 / math.sqrt(12)
    # PSR's z is (SR - SR*) / the standard error: read it back where z is about 1.
    z = statistics.NormalDist().inv_cdf(psr(sharpe, n, skew, kurtosis, sharpe - 0.1))
    assert 0.1 / z == pytest.approx(std_error, abs=5e-5)
    assert min_trl(sharpe, skew, kurtosis, 0.0, 0.95) / 12 == pytest.approx(years_0, abs=1e-4)
    assert min_trl(sharpe, skew, kurtosis, half, 0.95) / 12 == pytest.approx(years_half, abs=1e-4)
    if sharpe == 0.8183:
        assert psr(sharpe, n, skew, kurtosis, half) == pytest.approx(0.99999, abs=5e-6)


def test_psr_by_hand():
    """SR 0.1 a day over 401 normal days: z = 0.1 x sqrt(400) / sqrt(1 + 2/4 x 0.01)
    = 1.99502; the normal table gives 0.97698 between 1.99 (0.97670) and 2.00 (0.97725)."""
    z = 0.1 * 20 / math.sqrt(1.005)
    assert z == pytest.approx(1.99502, abs=1e-5)
    assert psr(0.1, 401, 0.0, 3.0) == pytest.approx(0.97698, abs=2e-5)
    # Negative skewness and fat tails widen the error: the same estimate is less sure.
    term = 1 + 2.448 * 0.1 + (10.164 - 1) / 4 * 0.01
    z_fat = 0.1 * 20 / math.sqrt(term)
    assert psr(0.1, 401, -2.448, 10.164) == pytest.approx(0.5 * math.erfc(-z_fat / 2**0.5))
    assert psr(0.1, 401, -2.448, 10.164) < psr(0.1, 401, 0.0, 3.0)
    assert psr(0.0, 401, 0.0, 3.0) == pytest.approx(0.5)


def test_min_trl_by_hand_and_as_psrs_inverse():
    """MinTRL = 1 + (1 - g3 SR + (g4 - 1)/4 SR^2) (z95 / SR)^2 (2012, SR* = 0)."""
    assert min_trl(0.1, 0.0, 3.0) == pytest.approx(1 + 1.005 * (Z95 / 0.1) ** 2)
    assert min_trl(0.1, 0.0, 3.0) == pytest.approx(272.907, abs=1e-3)
    fat = 1 + (1 + 2.448 * 0.1 + (10.164 - 1) / 4 * 0.01) * (Z95 / 0.1) ** 2
    assert min_trl(0.1, -2.448, 10.164) == pytest.approx(fat)
    # The length at which PSR crosses the confidence level.
    for sr, g3, g4 in ((0.1, 0.0, 3.0), (0.25, -1.0, 6.0), (0.05, 0.5, 4.0)):
        n = min_trl(sr, g3, g4)
        assert psr(sr, math.ceil(n), g3, g4) >= 0.95 > psr(sr, math.floor(n) - 1, g3, g4)
    assert min_trl(0.0, 0.0, 3.0) == math.inf


def test_moments_are_the_sample_ones():
    returns = [0.01, -0.02, 0.03, 0.005, -0.001, 0.012]
    m = moments(returns)
    assert m.n == 6
    assert m.mean == pytest.approx(statistics.fmean(returns))
    assert m.std == pytest.approx(statistics.stdev(returns))
    assert m.sharpe == pytest.approx(statistics.fmean(returns) / statistics.stdev(returns))
    mu = statistics.fmean(returns)
    m2 = sum((r - mu) ** 2 for r in returns) / 6
    m3 = sum((r - mu) ** 3 for r in returns) / 6
    m4 = sum((r - mu) ** 4 for r in returns) / 6
    assert m.skew == pytest.approx(m3 / m2**1.5)
    assert m.kurtosis == pytest.approx(m4 / m2**2)


def test_the_bootstrap_cone_is_a_direct_simulation_with_the_same_seed():
    rng = random.Random(3)
    returns = [rng.gauss(0.001, 0.01) for _ in range(200)]
    paths = bootstrap_paths(returns, 30, 500, seed=11)
    # The same draws, path by path, compounded in plain Python.
    picks = np.random.default_rng(11).integers(0, 200, size=(500, 30))
    direct = []
    for row in picks:
        wealth, path = 1.0, []
        for i in row:
            wealth *= 1 + returns[int(i)]
            path.append(wealth - 1)
        direct.append(path)
    assert np.allclose(paths, np.array(direct))
    band = cone(paths, 2.0)
    for step in (0, 14, 29):
        column = [p[step] for p in direct]
        mean, std = statistics.fmean(column), statistics.pstdev(column)
        assert band.mean[step] == pytest.approx(mean)
        assert band.lower[step] == pytest.approx(mean - 2 * std)
        assert band.upper[step] == pytest.approx(mean + 2 * std)
    # And the cone's centre is the compounded mean return, within the bootstrap's error.
    expected = (1 + statistics.fmean(returns)) ** 30 - 1
    assert band.mean[-1] == pytest.approx(expected, abs=3 * statistics.pstdev(
        [p[-1] for p in direct]) / math.sqrt(500))  # fmt: skip
    drawdowns = max_drawdowns(paths)
    assert drawdowns[7] == pytest.approx(max_drawdown(direct[7]))


def test_max_drawdown_by_hand():
    # Wealth 1 -> 1.1 -> 0.88 -> 0.99 -> 1.2: the deepest fall is 1.1 -> 0.88, 20 %.
    assert max_drawdown([0.1, -0.12, -0.01, 0.2]) == pytest.approx(0.2)
    assert max_drawdown([0.01, 0.02]) == 0.0
    assert max_drawdown([-0.5]) == pytest.approx(0.5)


def test_two_sample_effect_size_is_the_rank_biserial_correlation():
    paper = [1.0, 2.0, 3.0]
    backtest = [2.5, 4.0, 5.0, 6.0]
    # Pairs where paper is higher: 2>... none but (3 > 2.5): 1 of 12; lower: 11.
    result = two_sample(paper, backtest)
    assert result.u == 1.0
    assert result.effect == pytest.approx(1 / 12 - 11 / 12)
    same = two_sample(backtest, backtest)
    assert same.effect == 0.0 and same.p_value == pytest.approx(1.0)
