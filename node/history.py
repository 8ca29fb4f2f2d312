"""The venue's public market history, as a restarted live-data node needs it.

A binance-sandbox node that was down missed the market's trades, bars and funding
settlements; Binance serves them on its public REST API: aggregate trades (the same ids
the live ``@aggTrade`` stream carries, so the seam between history and the live feed is
found by id), klines (the bars the strategies trade on, parsed by the adapter exactly as
its kline stream's), and the funding rate history (each settlement's time, rate and
mark). This reads them through the Binance data client's own HTTP clients (its base URL,
its rate limiter), paged, within a request-weight budget of its own, and retried a few
times before the venue is called unable to serve its past (``HistoryUnavailable``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from typing import Protocol

import tenacity
from nautilus_trader.adapters.binance.common.enums import BinanceKlineInterval
from nautilus_trader.adapters.binance.common.schemas.market import BinanceAggTrade, BinanceKline
from nautilus_trader.adapters.binance.common.types import BinanceBar
from nautilus_trader.adapters.binance.http.error import BinanceError
from nautilus_trader.core.nautilus_pyo3 import HttpMethod
from nautilus_trader.model.data import BarType, TradeTick
from nautilus_trader.model.enums import bar_aggregation_to_str
from nautilus_trader.model.identifiers import InstrumentId

TRADES_PAGE = 1000  # aggTrades' largest page
KLINES_PAGE = 1000  # klines' page (weight 5; 1,500 costs 10)
FUNDING_PAGE = 1000
WEIGHTS = {"aggTrades": 20, "klines": 5, "fundingRate": 1}
# Binance gives an IP 2,400 request weight a minute; the catch-up takes at most 2,000 of
# it (100 pages of trades: an hour of BTCUSDT's perpetual in about a minute), so the live
# clients keep theirs.
WEIGHT_PER_MINUTE = 2000
ATTEMPTS = 4  # per request: fewer than the classifier's transient budget (5 in 600 s)
FUNDING_PATH = "/fapi/v1/fundingRate"
NS_PER_MS = 1_000_000
MS_PER_S = 1000


class HistoryUnavailable(RuntimeError):
    """The venue did not serve its history (after retries): the gap stays a gap."""


class MarketApi(Protocol):
    """What this reads of the adapter's ``BinanceMarketHttpAPI``."""

    async def query_agg_trades(
        self,
        symbol: str,
        limit: int | None = None,
        start_time: int | None = None,
        end_time: int | None = None,
        from_id: int | None = None,
    ) -> list[BinanceAggTrade]: ...

    async def query_klines(
        self,
        symbol: str,
        interval: BinanceKlineInterval,
        limit: int | None = None,
        start_time: int | None = None,
        end_time: int | None = None,
    ) -> list[BinanceKline]: ...


class HttpApi(Protocol):
    """What this reads of the adapter's ``BinanceHttpClient``."""

    async def send_request(
        self,
        http_method: HttpMethod,
        url_path: str,
        payload: dict[str, str] | None = None,
        ratelimiter_keys: list[str] | None = None,
    ) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Settlement:
    """A funding settlement as the venue records it."""

    instrument_id: str
    at_ns: int
    rate: Decimal
    mark: Decimal


def kline_interval(bar_minutes: int) -> BinanceKlineInterval:
    """The kline interval of a bar of ``bar_minutes`` (one Binance serves, or an error
    naming the bar)."""
    if bar_minutes % 1440 == 0:
        text = f"{bar_minutes // 1440}d"
    elif bar_minutes % 60 == 0:
        text = f"{bar_minutes // 60}h"
    else:
        text = f"{bar_minutes}m"
    try:
        return BinanceKlineInterval(text)
    except ValueError:
        raise HistoryUnavailable(f"Binance serves no {text} klines") from None


class WeightBudget:
    """At most ``per_minute`` request weight in any 60 s: a request that would exceed it
    waits until enough of the last minute's requests have aged out."""

    def __init__(self, per_minute: int = WEIGHT_PER_MINUTE) -> None:
        self._per_minute = per_minute
        self._spent: deque[tuple[float, int]] = deque()
        self.waited_s = 0.0

    async def spend(self, weight: int) -> None:
        while True:
            now = time.monotonic()
            while self._spent and self._spent[0][0] <= now - 60.0:
                self._spent.popleft()
            used = sum(w for _, w in self._spent)
            if used + weight <= self._per_minute or not self._spent:
                self._spent.append((now, weight))
                return
            wait = self._spent[0][0] + 60.0 - now
            self.waited_s += wait
            await asyncio.sleep(wait)


class VenueHistory:
    """The venue's trades, bars and settlements, oldest first."""

    def __init__(
        self,
        market: MarketApi,
        http: HttpApi,
        budget: WeightBudget | None = None,
        retry_wait_s: float = 0.5,
    ) -> None:
        self._market = market
        self._http = http
        self.budget = budget or WeightBudget()
        self._retry_wait_s = retry_wait_s
        self.requests = 0

    async def _call[T](self, what: str, fetch: Callable[[], Awaitable[T]]) -> T:
        """One request within the budget, retried with backoff; the last failure named."""
        try:
            async for attempt in tenacity.AsyncRetrying(
                stop=tenacity.stop_after_attempt(ATTEMPTS),
                wait=tenacity.wait_exponential(multiplier=self._retry_wait_s, max=8.0),
                retry=tenacity.retry_if_exception_type((BinanceError, OSError, ValueError)),
                reraise=True,
            ):
                with attempt:
                    await self.budget.spend(WEIGHTS[what])
                    self.requests += 1
                    return await fetch()
        except BinanceError as exc:
            raise HistoryUnavailable(
                f"{what}: HTTP {exc.status} {exc.message} ({ATTEMPTS} tries)"
            ) from exc
        except (OSError, ValueError) as exc:
            raise HistoryUnavailable(
                f"{what}: {type(exc).__name__}: {exc} ({ATTEMPTS} tries)"
            ) from exc
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    async def trades(
        self, instrument_id: InstrumentId, after_id: int | None, start_ms: int | None
    ) -> AsyncIterator[list[TradeTick]]:
        """Pages of trades: those after ``after_id`` (the last one played), or, with no id
        (a bounded gap, an old checkpoint), from ``start_ms`` on; until a page comes back
        short (the venue's tape ends: what comes next, the live feed carries). Each trade
        at its market time (``ts_init`` = ``ts_event``)."""
        symbol = instrument_id.symbol.value.removesuffix("-PERP")
        from_id = None if after_id is None else after_id + 1
        start = None if from_id is not None else start_ms
        while True:
            rows = await self._call(
                "aggTrades",
                partial(
                    self._market.query_agg_trades,
                    symbol,
                    limit=TRADES_PAGE,
                    start_time=start,
                    from_id=from_id,
                ),
            )
            ticks = [row.parse_to_trade_tick(instrument_id) for row in rows]
            if ticks:
                yield ticks
            if len(rows) < TRADES_PAGE:
                return
            from_id, start = rows[-1].a + 1, None

    async def bars(self, bar_type: BarType, start_ms: int, end_ms: int) -> list[BinanceBar]:
        """The bars that closed in [start_ms, end_ms], as the kline stream gives them."""
        symbol = bar_type.instrument_id.symbol.value.removesuffix("-PERP")
        minutes = _minutes(bar_type)
        interval = kline_interval(minutes)
        bars: list[BinanceBar] = []
        # ``startTime`` selects by a kline's open: one that opened before ``start_ms`` and
        # closes after it is asked for too (a 5-minute bar straddling the last 1-minute one).
        start = start_ms - minutes * 60_000
        while start <= end_ms:
            rows = await self._call(
                "klines",
                partial(
                    self._market.query_klines,
                    symbol,
                    interval,
                    limit=KLINES_PAGE,
                    start_time=start,
                    end_time=end_ms,
                ),
            )
            bars.extend(
                row.parse_to_binance_bar(bar_type)
                for row in rows
                if start_ms <= row.close_time <= end_ms
            )
            if len(rows) < KLINES_PAGE:
                break
            start = rows[-1].open_time + 1
        return bars

    async def recent_bars(self, bar_type: BarType, end_ms: int, count: int) -> list[BinanceBar]:
        """The last ``count`` bars that closed by ``end_ms`` (a strategy's warm-up)."""
        if count <= 0:
            return []
        symbol = bar_type.instrument_id.symbol.value.removesuffix("-PERP")
        interval = kline_interval(_minutes(bar_type))
        rows = await self._call(
            "klines",
            partial(
                self._market.query_klines,
                symbol,
                interval,
                limit=min(count + 1, KLINES_PAGE),
                end_time=end_ms,
            ),
        )
        bars = [row.parse_to_binance_bar(bar_type) for row in rows if row.close_time <= end_ms]
        return bars[-count:]

    async def settlements(
        self, instrument_id: InstrumentId, start_ms: int, end_ms: int
    ) -> list[Settlement]:
        """The funding settlements in [start_ms, end_ms], with the venue's rate and mark."""
        symbol = instrument_id.symbol.value.removesuffix("-PERP")
        found: list[Settlement] = []
        start = start_ms
        while start <= end_ms:
            payload = {
                "symbol": symbol,
                "startTime": str(start),
                "endTime": str(end_ms),
                "limit": str(FUNDING_PAGE),
            }
            raw = await self._call(
                "fundingRate",
                partial(self._http.send_request, HttpMethod.GET, FUNDING_PATH, payload),
            )
            rows = _funding_rows(raw)
            for at_ms, rate, mark in rows:
                # The venue settles on the second its mark stream announced; a row's
                # fundingTime may carry a few milliseconds past it. The settlement's time
                # is the second: the same settlement as the live side charged (never
                # twice), ordered before the bar of the period it ends.
                at_ns = (at_ms - at_ms % MS_PER_S) * NS_PER_MS
                found.append(Settlement(instrument_id.value, at_ns, rate, mark))
            if len(rows) < FUNDING_PAGE:
                break
            start = rows[-1][0] + 1
        return found


def _minutes(bar_type: BarType) -> int:
    unit = bar_aggregation_to_str(bar_type.spec.aggregation)
    minutes = int(bar_type.spec.step) * {"MINUTE": 1, "HOUR": 60, "DAY": 1440}.get(unit, 0)
    if minutes <= 0:
        raise HistoryUnavailable(f"{bar_type}: only minute, hour and day bars are served")
    return minutes


def _funding_rows(raw: bytes) -> list[tuple[int, Decimal, Decimal]]:
    """``fundingTime``, ``fundingRate`` and ``markPrice`` of each row, or an error that
    says which field the venue did not give."""
    rows = json.loads(raw)
    if not isinstance(rows, list):
        raise ValueError(f"fundingRate answered {str(rows)[:200]}")
    parsed = []
    for row in rows:
        if not isinstance(row, dict) or "fundingTime" not in row or "fundingRate" not in row:
            raise ValueError(f"fundingRate row without fundingTime/fundingRate: {row!r}"[:300])
        mark = row.get("markPrice") or "0"
        parsed.append((int(row["fundingTime"]), Decimal(str(row["fundingRate"])), Decimal(mark)))
    return parsed
