"""Conditional orders as Binance's Algo Service keeps them, as plain state changes.

Since 2025-12-09 USD-M futures takes STOP_MARKET, TAKE_PROFIT_MARKET, STOP, TAKE_PROFIT and
TRAILING_STOP_MARKET only as algo orders (``POST /fapi/v1/algoOrder``, ``algoType=CONDITIONAL``):
they wait in the Algo Service, not in the order book, and a trigger places an ordinary order
in the matching engine. A client must follow both: the algo order's status on ``ALGO_UPDATE``
and the order it placed on ``ORDER_TRADE_UPDATE``. Like :mod:`.matching`, this does no I/O
and reads no clock it is not given; unit tests drive it directly
(``tests/test_emulator_matching.py``).

The rules, from Binance's documentation of the Algo Service and its ``ALGO_UPDATE`` event:

- ``NEW``: accepted, waiting. At most :data:`MAX_OPEN_ALGO_ORDERS` open (-4045); one that
  would trigger at once is refused (-2021), as Binance refuses such a stop.
- The trigger price is compared with the contract's last price (``workingType``
  CONTRACT_PRICE) or the mark price (MARK_PRICE; here the mark is the last trade, so both
  trigger alike). STOP and STOP_MARKET trigger when the price reaches the trigger from
  below for a BUY (``price >= trigger``), from above for a SELL; TAKE_PROFIT and
  TAKE_PROFIT_MARKET the other way round. A TRAILING_STOP_MARKET activates at its
  ``activatePrice`` (or at once without one), then follows the best price since and triggers
  ``callbackRate`` percent back from it. ``priceProtect`` is accepted and echoed; with the
  mark equal to the last price it never holds a trigger back.
- On a trigger: ``TRIGGERING``, then the order goes to the matching engine - MARKET for the
  ``*_MARKET`` types and the trailing stop, LIMIT at ``price`` for STOP and TAKE_PROFIT, the
  whole position reduce-only for ``closePosition`` - under the algo order's ``clientAlgoId``.
  Refused by the account's rules (margin, reduce-only with nothing to reduce, notional) it is
  ``REJECTED`` with the reason; placed, ``TRIGGERED`` with its order id (``ai``). Once that
  order is done (filled, cancelled or expired) the algo order is ``FINISHED`` with what it
  executed (``aq``, ``ap``). When the order fills at once, its fill reaches the stream
  sometimes before ``FINISHED`` and sometimes after it (a seeded draw,
  ``fill_before_finished``): clients must cope with both.
- ``CANCELED`` by a cancel while ``NEW`` (a triggered one is cancelled as the order it
  placed, at the ordinary endpoint); ``EXPIRED`` when its ``goodTillDate`` passes (GTD) or,
  for ``GTE_GTC``, when the position is flat.
"""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from .clock import Clock
from .errors import ApiError
from .events import AlgoUpdate, EmitUser, UserEvent
from .fmt import ZERO
from .matching import MatchingEngine, NewOrder, Order
from .snapshots import AlgoSnapshot

ALGO_ORDER_TYPES: Final = frozenset(
    {"STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"}
)
"""What the Algo Service takes, and ``/fapi/v1/order`` refuses (-4120)."""
LIMIT_TYPES: Final = frozenset({"STOP", "TAKE_PROFIT"})
"""Those that place a LIMIT order at ``price`` when they trigger."""
OPEN_ALGO_STATUSES: Final = frozenset({"NEW", "TRIGGERING", "TRIGGERED"})
MAX_OPEN_ALGO_ORDERS: Final = 200
FIRST_ALGO_ID: Final = 1_000_000_030_000_000
"""Binance's algo ids are of this size (a different sequence from order ids)."""


@dataclass(slots=True)
class AlgoOrder:
    algo_id: int
    client_algo_id: str
    side: str
    type: str
    time_in_force: str
    quantity: Decimal
    price: Decimal
    trigger_price: Decimal
    working_type: str
    close_position: bool
    price_protect: bool
    reduce_only: bool
    good_till_date: int
    activate_price: Decimal
    callback_rate: Decimal
    create_time_ms: int
    update_time_ms: int
    status: str = "NEW"
    trigger_time_ms: int = 0
    actual_order_id: int | None = None
    reason: str = ""
    activated: bool = False
    """A trailing stop: its activation price has been reached."""
    extreme: Decimal = ZERO
    """A trailing stop: the best price since it activated (highest for a SELL)."""

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_ALGO_STATUSES


@dataclass(frozen=True, slots=True)
class NewAlgo:
    """A conditional order that passed the symbol's filters."""

    side: str
    type: str
    quantity: Decimal
    """Zero with ``close_position``."""
    trigger_price: Decimal = ZERO
    """Zero for a trailing stop."""
    price: Decimal = ZERO
    time_in_force: str = "GTC"
    working_type: str = "CONTRACT_PRICE"
    close_position: bool = False
    price_protect: bool = False
    reduce_only: bool = False
    client_algo_id: str = ""
    """Empty: the service makes one up, as Binance does."""
    activate_price: Decimal = ZERO
    """A trailing stop's activation price; zero: active at once, from the current price."""
    callback_rate: Decimal = ZERO
    """A trailing stop's callback, in percent (0.1 to 10)."""
    good_till_date: int = 0


def _discard(event: UserEvent) -> None:
    pass


class AlgoService:
    """The account's conditional orders. Not thread-safe: the server holds its lock.

    ``fill_before_finished`` is the chance that an order filled at its trigger reports its
    fill before the algo order's ``FINISHED`` (drawn from ``seed``)."""

    def __init__(
        self,
        engine: MatchingEngine,
        *,
        clock: Clock,
        seed: int = 7,
        fill_before_finished: float = 0.5,
        emit: EmitUser = _discard,
    ) -> None:
        self.engine = engine
        self.market = engine.market
        self.orders: dict[int, AlgoOrder] = {}
        self.fill_before_finished = fill_before_finished
        self._clock = clock
        self._emit = emit
        self._rng = random.Random(seed)
        self._seq = FIRST_ALGO_ID
        self._triggering = False
        engine.on_done = self._order_done

    # Reading the books

    def open_orders(self) -> list[AlgoOrder]:
        return [a for a in self.orders.values() if a.is_open]

    def find(self, algo_id: int | None, client_algo_id: str | None) -> AlgoOrder | None:
        """By id (and, if both are given, only if the client id matches too), else the
        latest with the client id."""
        if algo_id is not None:
            algo = self.orders.get(algo_id)
            if algo is not None and client_algo_id and algo.client_algo_id != client_algo_id:
                return None
            return algo
        matches = [a for a in self.orders.values() if a.client_algo_id == client_algo_id]
        return matches[-1] if matches else None

    def snapshot(self, algo: AlgoOrder) -> AlgoSnapshot:
        child = (
            self.engine.orders.get(algo.actual_order_id)
            if algo.actual_order_id is not None
            else None
        )
        return AlgoSnapshot(
            algo_id=algo.algo_id,
            client_algo_id=algo.client_algo_id,
            symbol=self.engine.spec.symbol,
            side=algo.side,
            type=algo.type,
            time_in_force=algo.time_in_force,
            quantity=algo.quantity,
            price=algo.price,
            trigger_price=algo.trigger_price,
            working_type=algo.working_type,
            close_position=algo.close_position,
            price_protect=algo.price_protect,
            reduce_only=algo.reduce_only,
            good_till_date=algo.good_till_date,
            activate_price=algo.activate_price,
            callback_rate=algo.callback_rate,
            status=algo.status,
            create_time_ms=algo.create_time_ms,
            update_time_ms=algo.update_time_ms,
            trigger_time_ms=algo.trigger_time_ms,
            actual_order_id=algo.actual_order_id,
            actual_type=child.type if child is not None else "",
            executed_qty=child.executed_qty if child is not None else ZERO,
            avg_price=child.avg_price if child is not None else ZERO,
            reason=algo.reason,
        )

    # Orders

    def place(self, request: NewAlgo) -> AlgoSnapshot:
        """Accept a conditional order (``NEW``); returns it as accepted. Raises -4045 (too
        many open), -4116 (client id in use) or -2021 (it would trigger at once)."""
        if len(self.open_orders()) >= MAX_OPEN_ALGO_ORDERS:
            raise ApiError(400, -4045, "Reach max stop order limit.")
        client_id = request.client_algo_id or secrets.token_hex(11)
        if any(a.client_algo_id == client_id for a in self.open_orders()):
            raise ApiError(400, -4116, "ClientOrderId is duplicated.")
        now = self._clock()
        algo = AlgoOrder(
            algo_id=self._seq + 1,
            client_algo_id=client_id,
            side=request.side,
            type=request.type,
            time_in_force=request.time_in_force,
            quantity=request.quantity,
            price=request.price,
            trigger_price=request.trigger_price,
            working_type=request.working_type,
            close_position=request.close_position,
            price_protect=request.price_protect,
            reduce_only=request.reduce_only,
            good_till_date=request.good_till_date,
            activate_price=request.activate_price,
            callback_rate=request.callback_rate,
            create_time_ms=now,
            update_time_ms=now,
        )
        price = self._price(algo)
        if algo.type == "TRAILING_STOP_MARKET":
            if algo.activate_price and self._activates(algo, price):
                raise ApiError(400, -2021, "Order would immediately trigger.")
            if not algo.activate_price:
                algo.activated, algo.extreme = True, price
        elif self._reached(algo, price):
            raise ApiError(400, -2021, "Order would immediately trigger.")
        self._seq += 1
        self.orders[algo.algo_id] = algo
        self._update(algo, "NEW", now)
        return self.snapshot(algo)

    def cancel(self, algo: AlgoOrder) -> None:
        """Cancel a ``NEW`` one (the caller checks: a triggered one is cancelled as its order)."""
        self._update(algo, "CANCELED", self._clock())

    def cancel_all(self) -> int:
        """Cancel every waiting (``NEW``) one; returns how many."""
        waiting = [a for a in self.orders.values() if a.status == "NEW"]
        for algo in waiting:
            self.cancel(algo)
        return len(waiting)

    def check(self, now: int) -> None:
        """After the market moved: expire what is due, move the trailing stops, trigger
        what the price reached. The orders a trigger fills print trades that may trigger
        others: it goes round until nothing more triggers."""
        for _ in range(len(self.orders) + 1):
            if not self._check_once(now):
                return

    # Internals

    def _check_once(self, now: int) -> bool:
        triggered = False
        for algo in [a for a in self.orders.values() if a.status == "NEW"]:
            if self._expires(algo, now):
                self._update(algo, "EXPIRED", now)
                continue
            price = self._price(algo)
            if algo.type == "TRAILING_STOP_MARKET":
                if not self._trail(algo, price):
                    continue
            elif not self._reached(algo, price):
                continue
            self._trigger(algo, now)
            triggered = True
        return triggered

    def _expires(self, algo: AlgoOrder, now: int) -> bool:
        if algo.time_in_force == "GTD":
            return bool(algo.good_till_date) and now >= algo.good_till_date
        return algo.time_in_force == "GTE_GTC" and self.engine.position.amount == 0

    def _price(self, algo: AlgoOrder) -> Decimal:
        return self.market.mark if algo.working_type == "MARK_PRICE" else self.market.last

    def _reached(self, algo: AlgoOrder, price: Decimal) -> bool:
        stop = algo.type in ("STOP", "STOP_MARKET")
        rising = (algo.side == "BUY") == stop  # a buy stop and a sell take-profit: from below
        return price >= algo.trigger_price if rising else price <= algo.trigger_price

    def _activates(self, algo: AlgoOrder, price: Decimal) -> bool:
        """A trailing sell stop activates once the price rises to its activation price."""
        if algo.side == "SELL":
            return price >= algo.activate_price
        return price <= algo.activate_price

    def _trail(self, algo: AlgoOrder, price: Decimal) -> bool:
        """Follow the best price since activation; whether the callback is reached."""
        if not algo.activated:
            if not self._activates(algo, price):
                return False
            algo.activated, algo.extreme = True, price
        rate = algo.callback_rate / 100
        if algo.side == "SELL":
            algo.extreme = max(algo.extreme, price)
            return price <= algo.extreme * (1 - rate)
        algo.extreme = min(algo.extreme, price)
        return price >= algo.extreme * (1 + rate)

    def _trigger(self, algo: AlgoOrder, now: int) -> None:
        algo.trigger_time_ms = now
        if algo.type == "TRAILING_STOP_MARKET":  # where it triggered
            algo.trigger_price = self._price(algo)
        self._update(algo, "TRIGGERING", now)
        quantity = algo.quantity
        if algo.close_position:
            quantity = abs(self.engine.position.amount)
        limit = algo.type in LIMIT_TYPES
        tif = algo.time_in_force
        request = NewOrder(
            side=algo.side,
            type="LIMIT" if limit else "MARKET",
            quantity=quantity,
            price=algo.price if limit else ZERO,
            time_in_force=tif if limit and tif != "GTE_GTC" else "GTC",
            reduce_only=algo.reduce_only or algo.close_position,
            client_order_id=algo.client_algo_id,
            good_till_date=algo.good_till_date if tif == "GTD" else 0,
        )
        self._triggering = True
        try:
            with self.engine.held_events() as held:
                ack = self.engine.place(request)
        except ApiError as refused:
            algo.reason = refused.msg
            self._update(algo, "REJECTED", now)
            return
        finally:
            self._triggering = False
        algo.actual_order_id = ack.order_id
        self._update(algo, "TRIGGERED", now)
        accepted, rest = held[0], held[1:]
        self._emit(accepted)
        order = self.engine.orders[ack.order_id]
        if order.is_open:  # a limit order resting, or partly filled: FINISHED comes later
            for event in rest:
                self._emit(event)
            return
        if self._rng.random() < self.fill_before_finished:
            for event in rest:
                self._emit(event)
            self._update(algo, "FINISHED", now)
        else:
            self._update(algo, "FINISHED", now)
            for event in rest:
                self._emit(event)

    def _order_done(self, order: Order) -> None:
        """The engine finished an order: if a triggered algo order placed it, that one is
        ``FINISHED`` (unless the trigger itself is still reporting, in its own order)."""
        if self._triggering:
            return
        for algo in self.orders.values():
            if algo.status == "TRIGGERED" and algo.actual_order_id == order.order_id:
                self._update(algo, "FINISHED", self._clock())
                return

    def _update(self, algo: AlgoOrder, status: str, now: int) -> None:
        algo.status = status
        algo.update_time_ms = now
        self._emit(AlgoUpdate(self.snapshot(algo), now))
