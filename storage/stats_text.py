"""A ``TradeReport`` as the operator reads it: the one rendering the CLI and Telegram share.

``paper-node report trades|stats`` prints these sections and the alerter's ``/profit``,
``/daily``, ``/trades``, ``/balance`` and ``/performance`` reply with them, so both show
the same numbers by construction. The report's money stays exact; it is rounded here
only, for display (money to cents, half to even, as ``Decimal`` formats). Each section
is plain text without blank lines (the CLI joins sections with one), with "label:
value" lines rather than padded columns: a terminal shows them as they are, and
Telegram's proportional font does not misalign them. Rows are capped, so a section
stays well inside Telegram's 4096 characters (``test_stats_text`` measures the worst
case).
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

from storage.stats import DayRow, Stats, TradeReport, TripRow

DEFAULT_ROWS = 10  # /trades and /daily, and the CLI's defaults, when no n is given
MAX_TRADES = 15  # two lines each, with MAX_OPEN open positions: under 4096 characters
MAX_OPEN = 5
MAX_DAYS = 30  # one line each
MAX_STRATEGIES = 12  # per-strategy lines beyond this are summed (balance) or counted
MONEY = Decimal("0.01")
EXACT_PLACES = 8  # prices and quantities with more decimals (averages) are rounded to this


def money(value: Decimal, sign: bool = False) -> str:
    """Cents, half to even; ``sign`` puts a + on a gain (PnL); zero is 0.00, never -0.00."""
    rounded = value.quantize(MONEY, ROUND_HALF_EVEN)
    if rounded == 0:
        return f"{abs(rounded):f}"
    return f"{rounded:+f}" if sign else f"{rounded:f}"


def optional_money(value: Decimal | None, sign: bool = False) -> str:
    return "n/a" if value is None else money(value, sign)


def ratio(value: Decimal | None) -> str:
    return "n/a" if value is None else f"{value.quantize(MONEY, ROUND_HALF_EVEN):f}"


def percent(value: Decimal | None, sign: bool = False) -> str:
    """``value`` is already in percent."""
    return "n/a" if value is None else f"{money(value, sign)}%"


def exact(value: Decimal) -> str:
    """A price or a quantity as stored (an average's long tail rounded), no exponent."""
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -EXACT_PLACES:
        value = value.quantize(Decimal(1).scaleb(-EXACT_PLACES), ROUND_HALF_EVEN)
    text = f"{value.normalize():f}"
    return "0" if text in ("-0", "0") else text


def duration(seconds: float | None) -> str:
    """Compact: 25ms, 4.2s, 3m 20s, 5h 2m, 2d 3h."""
    if seconds is None:
        return "n/a"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}m {whole % 60}s"
    if whole < 86_400:
        return f"{whole // 3600}h {whole % 3600 // 60}m"
    return f"{whole // 86_400}d {whole % 86_400 // 3600}h"


def when(iso_time: str) -> str:
    """``2026-11-27T18:34:06+00:00`` as ``2026-11-27 18:34:06`` (the report's times are UTC)."""
    return iso_time.replace("T", " ").removesuffix("+00:00")


def plural(count: int, word: str, many: str = "") -> str:
    return f"{count} {word}" if count == 1 else f"{count} {many or word + 's'}"


def capital_return(capital: str | None, return_on_capital: str | None) -> str:
    """A strategy's return on its own capital, for a status line ("" for a checkpoint
    from before capitals)."""
    if capital is None or return_on_capital is None:
        return ""
    gain = Decimal(return_on_capital) * 100
    return f"return {percent(gain, sign=True)} of its capital {money(Decimal(capital))}"


def header(title: str, report: TradeReport, extra: str = "") -> str:
    return f"{title} - {report['trader_id']}{extra} ({report['currency']})"


# ---------------------------------------------------------------- sections


def profit_text(report: TradeReport) -> str:
    """The session's closed round trips summed up (``/profit``)."""
    s = report["overall"]
    lines = [header("Profit", report), *_stats_lines(s)]
    if report["open_positions"]:
        lines.append(f"Open: {plural(len(report['open_positions']), 'position')} (not counted)")
    return "\n".join(lines)


def _stats_lines(s: Stats) -> list[str]:
    win_rate = None if s["win_rate"] is None else s["win_rate"] * 100
    return [
        f"Round trips: {s['trades']} ({s['wins']} won, {s['losses']} lost)",
        f"Win rate: {percent(win_rate)}",
        f"Net PnL: {money(s['net_pnl'], sign=True)} (gross profit {money(s['gross_profit'])}, "
        f"gross loss {money(s['gross_loss'])})",
        f"Fees: {money(s['fees'])}, funding: {money(s['funding'], sign=True)}",
        f"Profit factor: {ratio(s['profit_factor'])}, "
        f"expectancy: {optional_money(s['expectancy'], sign=True)}",
        f"Avg win: {optional_money(s['avg_win'], sign=True)}, "
        f"avg loss: {optional_money(s['avg_loss'], sign=True)}",
        f"Best: {optional_money(s['best'], sign=True)}, "
        f"worst: {optional_money(s['worst'], sign=True)}",
        f"Avg duration: {duration(s['avg_duration_s'])}",
        f"Sharpe: {ratio(s['sharpe'])}, Sortino: {ratio(s['sortino'])} (daily returns)",
        f"Max drawdown: {money(s['max_drawdown'], sign=True)} "
        f"({percent(s['max_drawdown_pct'], sign=True)}), {duration(s['max_drawdown_s'])}",
        f"Exposure: {percent(s['exposure_pct'])}",
        f"Return: {percent(s['return_pct'], sign=True)} of {money(s['capital'])}",
    ]


def daily_text(report: TradeReport, n: int = DEFAULT_ROWS) -> str:
    """The last ``n`` UTC days, oldest first (``/daily [n]``)."""
    days = report["days"][-n:]
    shown = f", last {len(days)} of {plural(len(report['days']), 'day')}"
    lines = [header("Daily", report, shown)]
    lines += [_day_line(d) for d in days] or ["No fills yet."]
    return "\n".join(lines)


def _day_line(d: DayRow) -> str:
    return (
        f"{d['day']}: {money(d['pnl'], sign=True)} ({percent(d['return_pct'], sign=True)}), "
        f"{plural(d['trades'], 'round trip')}, {d['wins']} won, fees {money(d['fees'])}, "
        f"funding {money(d['funding'], sign=True)}, balance {money(d['balance'])}"
    )


def trades_text(report: TradeReport, n: int = DEFAULT_ROWS) -> str:
    """The last ``n`` round trips, oldest first, numbered in the session, and the
    positions still open (``/trades [n]``, ``report trades``)."""
    trips = report["round_trips"]
    first = max(len(trips) - n, 0)
    shown = f", last {len(trips) - first} of {len(trips)}"
    lines = [header("Round trips", report, shown)]
    for number, trip in enumerate(trips[first:], start=first + 1):
        lines += _trip_lines(number, trip)
    if not trips:
        lines.append("No closed round trips yet.")
    opened = report["open_positions"]
    for trip in opened[:MAX_OPEN]:
        lines.append(
            f"Open: {trip['direction']} {exact(trip['quantity'])} {trip['instrument_id']} "
            f"[{trip['strategy_id']}] @ {exact(trip['entry_price'])} "
            f"since {when(trip['opened_at'])}, fees {money(trip['fees'])}"
            + (f", funding {money(trip['funding'], sign=True)}" if trip["funding"] else "")
        )
    if len(opened) > MAX_OPEN:
        lines.append(f"... and {len(opened) - MAX_OPEN} more open")
    return "\n".join(lines)


def _trip_lines(number: int, t: TripRow) -> list[str]:
    funding = f", funding {money(t['funding'], sign=True)}" if t["funding"] else ""
    return [
        f"#{number} {t['direction']} {exact(t['quantity'])} {t['instrument_id']} "
        f"[{t['strategy_id']}]: {money(t['pnl'], sign=True)}",
        f"  {exact(t['entry_price'])} -> {exact(t['exit_price'])}, "
        f"closed {when(t['closed_at'])}, held {duration(t['duration_s'])}, "
        f"fees {money(t['fees'])}{funding}",
    ]


def balance_text(report: TradeReport) -> str:
    """Where the balance came from: the start, each strategy's closed round trips, and
    what is not in one yet (``/balance``). The parts add up to the balance exactly
    before rounding."""
    start, balance = report["starting_balance"], report["balance"]
    moved = balance - start
    change = f"{money(moved, sign=True)}, {percent(moved / start * 100 if start else None, True)}"
    lines = [
        header("Balance", report),
        f"Starting balance: {money(start)}",
        f"Balance: {money(balance)} ({change}; realized: fills, fees, funding)",
    ]
    ranked = _ranked(report["strategies"])
    for name, s in ranked[:MAX_STRATEGIES]:
        lines.append(
            f"{name}: {money(s['net_pnl'], sign=True)} over {plural(s['trades'], 'round trip')}"
        )
    rest = ranked[MAX_STRATEGIES:]
    if rest:
        total = sum((s["net_pnl"] for _, s in rest), Decimal(0))
        lines.append(
            f"{plural(len(rest), 'other strategy', 'other strategies')}: {money(total, sign=True)}"
        )
    in_trips = sum((s["net_pnl"] for _, s in ranked), Decimal(0))
    if moved != in_trips:
        lines.append(f"Not in a closed round trip yet: {money(moved - in_trips, sign=True)}")
    return "\n".join(lines)


def performance_text(report: TradeReport) -> str:
    """Each strategy's statistics, the most profitable first (``/performance``)."""
    ranked = _ranked(report["strategies"])
    lines = [header("Performance", report)]
    for name, s in ranked[:MAX_STRATEGIES]:
        win_rate = None if s["win_rate"] is None else s["win_rate"] * 100
        lines.append(
            f"{name}: {money(s['net_pnl'], sign=True)} over "
            f"{plural(s['trades'], 'round trip')}, win rate {percent(win_rate)}, "
            f"profit factor {ratio(s['profit_factor'])}, "
            f"expectancy {optional_money(s['expectancy'], sign=True)}, "
            f"max drawdown {money(s['max_drawdown'], sign=True)} "
            f"({percent(s['max_drawdown_pct'], sign=True)}), fees {money(s['fees'])}, "
            f"funding {money(s['funding'], sign=True)}, exposure {percent(s['exposure_pct'])}, "
            f"return {percent(s['return_pct'], sign=True)} of its capital {money(s['capital'])}"
        )
    if len(ranked) > MAX_STRATEGIES:
        lines.append(
            f"... and {plural(len(ranked) - MAX_STRATEGIES, 'other strategy', 'other strategies')}"
        )
    if not ranked:
        lines.append("No fills yet.")
    return "\n".join(lines)


def _ranked(strategies: dict[str, Stats]) -> list[tuple[str, Stats]]:
    return sorted(strategies.items(), key=lambda item: (-item[1]["net_pnl"], item[0]))


def stats_text(report: TradeReport, days: int = DEFAULT_ROWS) -> str:
    """``report stats``: every section but the round trips, one blank line between."""
    return "\n\n".join(
        (
            profit_text(report),
            balance_text(report),
            performance_text(report),
            daily_text(report, days),
        )
    )
