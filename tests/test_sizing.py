"""Each sizing method against hand-computed numbers, and the leverage cap."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from node.sizing import kelly_fraction, position_size
from protocol import RiskLimits, SizingMethod, SizingSettings

D = Decimal
RISK = RiskLimits(risk_per_trade=D("0.01"), max_leverage=D("3"))


def test_fixed_fractional_risks_the_fraction_over_the_stop_distance():
    sizing = SizingSettings(method=SizingMethod.FIXED_FRACTIONAL, stop_loss_pct=D("0.02"))
    # 100k * 1% = 1000 at risk; stop 2% of 50k = 1000 per unit -> 1 unit
    assert position_size(sizing, RISK, D(100_000), D(50_000)) == D(1)


def test_kelly_bets_the_scaled_kelly_fraction_of_equity():
    sizing = SizingSettings(
        method=SizingMethod.KELLY, win_rate=D("0.6"), payoff_ratio=D("2"), kelly_fraction=D("0.5")
    )
    assert kelly_fraction(D("0.6"), D("2")) == D("0.4")
    # 100k * 0.4 * 0.5 = 20k notional at 50k -> 0.4 units
    assert position_size(sizing, RISK, D(100_000), D(50_000)) == D("0.4")


def test_atr_sizes_by_the_volatility_stop():
    sizing = SizingSettings(method=SizingMethod.ATR, atr_multiplier=D(2))
    # 1000 at risk; stop = 2 * 250 = 500 per unit -> 2 units
    assert position_size(sizing, RISK, D(100_000), D(50_000), atr=D(250)) == D(2)
    assert position_size(sizing, RISK, D(100_000), D(50_000), atr=None) == 0


def test_no_edge_or_no_equity_means_no_trade():
    # The config refuses a Kelly setting without an edge; the sizing is safe without it too.
    kelly = SizingSettings.model_construct(
        method=SizingMethod.KELLY, win_rate=D("0.3"), payoff_ratio=D(1)
    )
    assert position_size(kelly, RISK, D(100_000), D(50_000)) == 0
    assert position_size(SizingSettings(), RISK, D(0), D(50_000)) == 0


@given(
    method=st.sampled_from(list(SizingMethod)),
    equity=st.decimals(min_value=1, max_value=10**9, places=2),
    price=st.decimals(min_value="0.01", max_value=10**6, places=2),
    atr=st.decimals(min_value="0.0001", max_value=10**5, places=4),
    stop=st.decimals(min_value="0.0001", max_value="0.5", places=4),
)
def test_no_method_exceeds_max_leverage(method, equity, price, atr, stop):
    sizing = SizingSettings(method=method, stop_loss_pct=stop)
    qty = position_size(sizing, RISK, equity, price, atr)
    assert 0 <= qty * price <= equity * RISK.max_leverage * D("1.000001")
