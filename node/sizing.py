"""Order size from the user's sizing method and risk limits, in Decimal.

Pure functions, so every method can be checked against hand-computed numbers
without a node. Every method is capped by ``max_leverage``: no sizing input can
put more than ``equity * max_leverage`` of notional on the book.
"""

from __future__ import annotations

from decimal import Decimal

from protocol import RiskLimits, SizingMethod, SizingSettings

ZERO = Decimal(0)


def kelly_fraction(win_rate: Decimal, payoff_ratio: Decimal) -> Decimal:
    """Full Kelly ``f* = p - (1 - p) / b``; never negative (no edge -> no bet)."""
    return max(ZERO, win_rate - (Decimal(1) - win_rate) / payoff_ratio)


def position_size(
    sizing: SizingSettings,
    risk: RiskLimits,
    equity: Decimal,
    price: Decimal,
    atr: Decimal | None = None,
) -> Decimal:
    """Quantity (in base units) to trade at ``price``; ``ZERO`` means do not trade."""
    if equity <= ZERO or price <= ZERO:
        return ZERO
    match sizing.method:
        case SizingMethod.FIXED_FRACTIONAL:
            stop_distance = price * sizing.stop_loss_pct
            qty = equity * risk.risk_per_trade / stop_distance
        case SizingMethod.KELLY:
            fraction = kelly_fraction(sizing.win_rate, sizing.payoff_ratio) * sizing.kelly_fraction
            qty = equity * fraction / price
        case SizingMethod.ATR:
            if atr is None or atr <= ZERO:
                return ZERO
            qty = equity * risk.risk_per_trade / (atr * sizing.atr_multiplier)
    cap = equity * risk.max_leverage / price
    return min(qty, cap)
