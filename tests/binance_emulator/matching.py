"""Orders, fills, the position and the wallet of the emulated account, as plain state changes.

This is the part whose numbers a client checks against its own (fill prices, fees, realized
PnL, margin, available balance), so it does no I/O and reads no clock it is not given: the
server calls it under its lock, unit tests call it directly with figures worked out by hand
(``tests/test_emulator_matching.py``). What it changes is reported to ``emit`` as typed events
(:mod:`.events`) in the order Binance pushes them.

The rules: MARKET orders fill at once at the best ask (buy) or bid (sell), as taker; LIMIT
orders that cross fill at once at the touch as taker, the others rest and fill at their own
price as maker once the market moves through them. The book is infinitely deep; with
``fill_chunk_qty`` a taker order fills in chunks and a resting order takes one chunk per market
tick. One-way position mode (``BOTH``), cross margin, fees charged on notional in USDT,
realized PnL paid into the wallet at once. Reduce-only orders never fill past flat.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Final

from .clock import Clock
from .errors import MSG_POST_ONLY, ApiError
from .events import AccountUpdate, EmitUser, LeverageUpdate, OrderUpdate, TradeLite, UserEvent
from .fmt import EIGHT, ZERO, JsonDict, round8
from .market import Market
from .snapshots import BalanceSnapshot, FillSnapshot, OrderSnapshot, PositionSnapshot
from .spec import QUOTE_ASSET, SymbolSpec

OPEN_STATUSES: Final = frozenset({"NEW", "PARTIALLY_FILLED"})


@dataclass(slots=True)
class Order:
    order_id: int
    client_order_id: str
    side: str
    type: str
    time_in_force: str
    quantity: Decimal
    price: Decimal
    reduce_only: bool
    price_match: str
    good_till_date: int
    time_ms: int
    update_time_ms: int
    status: str = "NEW"
    executed_qty: Decimal = ZERO
    cum_quote: Decimal = ZERO

    @property
    def remaining(self) -> Decimal:
        return self.quantity - self.executed_qty

    @property
    def avg_price(self) -> Decimal:
        return self.cum_quote / self.executed_qty if self.executed_qty else ZERO

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def snapshot(self, symbol: str) -> OrderSnapshot:
        return OrderSnapshot(
            order_id=self.order_id,
            client_order_id=self.client_order_id,
            symbol=symbol,
            side=self.side,
            type=self.type,
            time_in_force=self.time_in_force,
            quantity=self.quantity,
            price=self.price,
            executed_qty=self.executed_qty,
            avg_price=self.avg_price,
            status=self.status,
            reduce_only=self.reduce_only,
            time_ms=self.time_ms,
            update_time_ms=self.update_time_ms,
            cum_quote=self.cum_quote,
            price_match=self.price_match,
            good_till_date=self.good_till_date,
        )


@dataclass(frozen=True, slots=True)
class NewOrder:
    """An order request that passed the symbol's filters; the engine applies the account's
    rules (reduce-only, notional floor, margin) and matches it."""

    side: str
    type: str
    quantity: Decimal
    price: Decimal = ZERO
    """Zero for MARKET orders."""
    time_in_force: str = "GTC"
    reduce_only: bool = False
    client_order_id: str = ""
    """Empty: the engine makes one up, as Binance does."""
    price_match: str = "NONE"
    good_till_date: int = 0


@dataclass(slots=True)
class Position:
    amount: Decimal = ZERO
    """Signed: positive long, negative short."""
    entry_price: Decimal = ZERO
    realized: Decimal = ZERO
    update_time_ms: int = 0


@dataclass(frozen=True, slots=True)
class Figures:
    """The account's margin figures at the current mark, unrounded."""

    upnl: Decimal
    margin_balance: Decimal
    position_initial_margin: Decimal
    open_order_initial_margin: Decimal
    initial_margin: Decimal
    maint_margin: Decimal
    available: Decimal
    notional: Decimal
    bid_notional: Decimal
    ask_notional: Decimal


def _discard(event: UserEvent) -> None:
    pass


class MatchingEngine:
    """One USDT account trading one symbol. Not thread-safe: the server holds its lock."""

    def __init__(
        self,
        spec: SymbolSpec,
        market: Market,
        *,
        clock: Clock,
        wallet: Decimal = Decimal("10000"),
        leverage: int = 20,
        maker_fee: Decimal = Decimal("0.00016"),
        taker_fee: Decimal = Decimal("0.0004"),
        fill_chunk_qty: Decimal | None = None,
        emit: EmitUser = _discard,
    ) -> None:
        self.spec = spec
        self.market = market
        self.maker_fee = maker_fee
        self.taker_fee = taker_fee
        self.wallet = wallet
        self.position = Position()
        self.leverage = leverage
        self.margin_type = "CROSSED"
        self.dual_side = False
        self.orders: dict[int, Order] = {}
        self.fills: list[FillSnapshot] = []
        self.incomes: list[JsonDict] = []  # /fapi/v1/income rows (funding fees)
        self.account_update_ms = clock()
        self._order_seq = 4_000_000_000
        self._fill_chunk_qty = fill_chunk_qty
        self._clock = clock
        self._emit = emit
        # Told when an order is done (filled, cancelled, expired): the Algo Service finishes
        # the conditional order that placed it.
        self.on_done: Callable[[Order], None] | None = None

    @contextlib.contextmanager
    def held_events(self) -> Iterator[list[UserEvent]]:
        """What happens inside reports its events into the list instead of the stream: the
        caller (the Algo Service, placing a triggered order) pushes them in its own order."""
        held: list[UserEvent] = []
        emit, self._emit = self._emit, held.append
        try:
            yield held
        finally:
            self._emit = emit

    # Reading the books

    def open_orders(self) -> list[Order]:
        return [o for o in self.orders.values() if o.is_open]

    def find(self, order_id: int | None, client_order_id: str | None) -> Order | None:
        """The order by id (and, if both are given, only if the client id matches too), else
        the latest one with the client id."""
        if order_id is not None:
            order = self.orders.get(order_id)
            if order is not None and client_order_id and order.client_order_id != client_order_id:
                return None
            return order
        matches = [o for o in self.orders.values() if o.client_order_id == client_order_id]
        return matches[-1] if matches else None

    def upnl(self, mark: Decimal) -> Decimal:
        pos = self.position
        return pos.amount * (mark - pos.entry_price) if pos.amount else ZERO

    def figures(self) -> Figures:
        """Cross-margin figures: initial margin is notional / leverage for the position and for
        the larger side of the open orders; maintenance at the first bracket's rate."""
        mark = self.market.mark
        upnl = self.upnl(mark)
        notional = self.position.amount * mark
        leverage = Decimal(self.leverage)
        bid_notional = self._open_notional("BUY")
        ask_notional = self._open_notional("SELL")
        position_im = abs(notional) / leverage
        open_order_im = max(bid_notional, ask_notional) / leverage
        maint = abs(notional) * self.spec.maint_margin_rate
        margin_balance = self.wallet + upnl
        available = max(ZERO, margin_balance - position_im - open_order_im)
        return Figures(
            upnl=upnl,
            margin_balance=margin_balance,
            position_initial_margin=position_im,
            open_order_initial_margin=open_order_im,
            initial_margin=position_im + open_order_im,
            maint_margin=maint,
            available=available,
            notional=notional,
            bid_notional=bid_notional,
            ask_notional=ask_notional,
        )

    def position_snapshot(self) -> PositionSnapshot:
        pos = self.position
        mark = self.market.mark
        return PositionSnapshot(
            symbol=self.spec.symbol,
            position_side="BOTH",
            amount=pos.amount,
            entry_price=pos.entry_price,
            realized_pnl=pos.realized,
            unrealized_pnl=round8(self.upnl(mark)),
            mark_price=mark,
            leverage=self.leverage,
            margin_type=self.margin_type,
        )

    def balance_snapshot(self) -> BalanceSnapshot:
        f = self.figures()
        return BalanceSnapshot(
            asset=QUOTE_ASSET,
            wallet_balance=self.wallet,
            unrealized_pnl=round8(f.upnl),
            margin_balance=round8(f.margin_balance),
            initial_margin=round8(f.initial_margin),
            maint_margin=round8(f.maint_margin),
            available_balance=round8(f.available),
        )

    # Account settings

    def set_leverage(self, leverage: int) -> None:
        if not 1 <= leverage <= self.spec.max_leverage:
            raise ApiError(400, -4028, f"Leverage {leverage} is not valid")
        self.leverage = leverage
        self._emit(LeverageUpdate(self.spec.symbol, leverage, self._clock()))

    def set_margin_type(self, margin_type: str) -> None:
        """``margin_type`` is ISOLATED or CROSSED."""
        if margin_type == self.margin_type:
            raise ApiError(400, -4046, "No need to change margin type.")
        if self.open_orders():
            raise ApiError(400, -4047, "Margin type cannot be changed if there exists open orders.")
        if self.position.amount:
            raise ApiError(400, -4048, "Margin type cannot be changed if there exists position.")
        self.margin_type = margin_type

    def settle_funding(self, rate: Decimal, mark: Decimal, at_ms: int) -> Decimal:
        """Binance's funding at ``at_ms``: the position pays ``amount x mark x rate`` (a long,
        when positive) from the wallet; an ``ACCOUNT_UPDATE`` (FUNDING_FEE) and an income
        row record it. Returns the wallet's change (0: no position)."""
        amount = self.position.amount
        if not amount:
            return ZERO
        fee = -(amount * mark * rate).quantize(Decimal("1e-8"))
        self.wallet += fee
        self.incomes.append(
            {
                "symbol": self.spec.symbol,
                "incomeType": "FUNDING_FEE",
                "income": f"{fee:.8f}",
                "asset": "USDT",
                "info": "",
                "time": at_ms,
                "tranId": 9_000_000 + len(self.incomes),
                "tradeId": "",
            }
        )
        self._emit(self._account_update("FUNDING_FEE", at_ms, balance_change=fee))
        return fee

    def deposit(self, amount: Decimal) -> None:
        """Move ``amount`` into (or, negative, out of) the wallet."""
        self.wallet += amount
        reason = "DEPOSIT" if amount >= 0 else "WITHDRAW"
        self._emit(self._account_update(reason, self._clock(), balance_change=amount))

    # Orders

    def place(self, request: NewOrder) -> OrderSnapshot:
        """Accept and match an order; returns it as accepted (before any fill), as Binance's
        ACK reply shows it. Raises -2022 (reduce-only would not reduce), -4164 (notional below
        the floor) or -2019 (margin)."""
        self._check_risk(request)
        now = self._clock()
        self._order_seq += 1
        order = Order(
            order_id=self._order_seq,
            client_order_id=request.client_order_id or f"emu_{secrets.token_hex(8)}",
            side=request.side,
            type=request.type,
            time_in_force=request.time_in_force,
            quantity=request.quantity,
            price=request.price,
            reduce_only=request.reduce_only,
            price_match=request.price_match,
            good_till_date=request.good_till_date,
            time_ms=now,
            update_time_ms=now,
        )
        self.orders[order.order_id] = order
        self._emit(self._order_update(order, "NEW", now))
        ack = order.snapshot(self.spec.symbol)
        if order.type == "MARKET" or self.market.marketable(order.side, order.price):
            self._fill_taker(order)
        elif order.time_in_force in ("IOC", "FOK"):
            self._expire(order)
        return ack

    def amend(self, order: Order, quantity: Decimal, price: Decimal) -> None:
        """Change an open LIMIT order's quantity and price (Binance's modify order); it trades
        at once if the new price crosses."""
        spec = self.spec
        if quantity % spec.step_size or quantity < order.executed_qty or quantity <= 0:
            raise ApiError(400, -4003, "Quantity less than or equal to zero.")
        if price % spec.tick_size or price <= 0:
            raise ApiError(400, -4014, "Price not increased by tick size.")
        if quantity == order.quantity and price == order.price:
            raise ApiError(400, -5027, "No need to modify the order.")
        if order.time_in_force == "GTX" and self.market.marketable(order.side, price):
            raise ApiError(400, -5022, MSG_POST_ONLY)
        now = self._clock()
        order.quantity = quantity
        order.price = price
        order.update_time_ms = now
        if order.executed_qty >= order.quantity:
            order.status = "FILLED"
        self._emit(self._order_update(order, "AMENDMENT", now))
        if order.is_open and self.market.marketable(order.side, order.price):
            self._fill_taker(order)

    def cancel(self, order: Order) -> None:
        now = self._clock()
        order.status = "CANCELED"
        order.update_time_ms = now
        self._emit(self._order_update(order, "CANCELED", now))
        self._done(order)

    def cancel_all(self) -> None:
        for order in self.open_orders():
            self.cancel(order)

    def match_resting(self, now: int) -> None:
        """After the market moved: expire GTD orders that are due, fill resting LIMIT orders the
        touch crossed (one chunk each), as maker at their own price."""
        for order in [o for o in self.open_orders() if o.type == "LIMIT"]:
            if (
                order.time_in_force == "GTD"
                and order.good_till_date
                and now >= order.good_till_date
            ):
                self._expire(order)
                continue
            market = self.market
            crossed = (
                market.ask <= order.price if order.side == "BUY" else market.bid >= order.price
            )
            if not crossed:
                continue
            qty = self._reducible(order)
            if qty <= 0:
                self._expire(order)
                continue
            if self._fill_chunk_qty is not None:
                qty = min(qty, self._fill_chunk_qty)
            self._fill(order, qty, order.price, maker=True)

    # Internals

    def _open_notional(self, side: str) -> Decimal:
        return sum((o.remaining * o.price for o in self.open_orders() if o.side == side), ZERO)

    def _reduces(self, side: str) -> bool:
        pos = self.position.amount
        return (side == "BUY" and pos < 0) or (side == "SELL" and pos > 0)

    def _check_risk(self, request: NewOrder) -> None:
        market = self.market
        side, quantity = request.side, request.quantity
        if request.type == "LIMIT":
            reference = request.price
        else:
            reference = market.ask if side == "BUY" else market.bid
        reduces = self._reduces(side)
        if request.reduce_only and not reduces:
            raise ApiError(400, -2022, "ReduceOnly Order is rejected.")
        if not request.reduce_only and quantity * reference < self.spec.min_notional:
            raise ApiError(
                400,
                -4164,
                f"Order's notional must be no smaller than {self.spec.min_notional} "
                "(unless you choose reduce only).",
            )
        pos = self.position.amount
        opening = quantity - min(quantity, abs(pos)) if reduces else quantity
        if not request.reduce_only and opening:
            required = opening * reference / Decimal(self.leverage)
            required += opening * reference * self.taker_fee
            if required > self.figures().available:
                raise ApiError(400, -2019, "Margin is insufficient.")

    def _reducible(self, order: Order) -> Decimal:
        """How much of ``order`` may still fill (reduce-only orders stop at flat)."""
        if not order.reduce_only:
            return order.remaining
        return (
            min(order.remaining, abs(self.position.amount)) if self._reduces(order.side) else ZERO
        )

    def _fill_taker(self, order: Order) -> None:
        """Fill against the touch at once (the book is infinitely deep)."""
        while order.is_open:
            qty = self._reducible(order)
            if qty <= 0:
                self._expire(order)
                return
            if self._fill_chunk_qty is not None:
                qty = min(qty, self._fill_chunk_qty)
            price = self.market.ask if order.side == "BUY" else self.market.bid
            self._fill(order, qty, price, maker=False)
            self.market.print_trade(price, qty, buyer_maker=order.side == "SELL")

    def _expire(self, order: Order) -> None:
        now = self._clock()
        order.status = "EXPIRED"
        order.update_time_ms = now
        self._emit(self._order_update(order, "EXPIRED", now))
        self._done(order)

    def _done(self, order: Order) -> None:
        if self.on_done is not None:
            self.on_done(order)

    def _apply_position(self, signed_qty: Decimal, price: Decimal, now: int) -> Decimal:
        """Move the one-way position; returns the realized PnL of the fill.

        Adding to the position (or opening it) averages the entry price; reducing it realizes
        ``closed qty * (price - entry)`` (sign flipped for a short) and keeps the entry; a fill
        that goes through flat opens the rest at the fill price."""
        pos = self.position
        amount, entry = pos.amount, pos.entry_price
        realized = ZERO
        if amount == 0 or (amount > 0) == (signed_qty > 0):
            new_amount = amount + signed_qty
            entry = (abs(amount) * entry + abs(signed_qty) * price) / abs(new_amount)
        else:
            closing = min(abs(signed_qty), abs(amount))
            realized = round8(closing * (price - entry) * (1 if amount > 0 else -1))
            new_amount = amount + signed_qty
            if new_amount == 0:
                entry = ZERO
            elif (new_amount > 0) != (amount > 0):
                entry = price
        pos.amount = new_amount
        pos.entry_price = entry.quantize(EIGHT, rounding=ROUND_HALF_UP)
        pos.realized += realized
        pos.update_time_ms = now
        return realized

    def _fill(self, order: Order, qty: Decimal, price: Decimal, *, maker: bool) -> None:
        now = self._clock()
        trade_id = self.market.next_trade_id()
        signed = qty if order.side == "BUY" else -qty
        realized = self._apply_position(signed, price, now)
        rate = self.maker_fee if maker else self.taker_fee
        commission = round8(qty * price * rate)
        self.wallet += realized - commission
        self.account_update_ms = now
        order.executed_qty += qty
        order.cum_quote += qty * price
        order.status = "FILLED" if order.executed_qty >= order.quantity else "PARTIALLY_FILLED"
        order.update_time_ms = now
        fill = FillSnapshot(
            trade_id=trade_id,
            order_id=order.order_id,
            client_order_id=order.client_order_id,
            symbol=self.spec.symbol,
            side=order.side,
            price=price,
            qty=qty,
            quote_qty=qty * price,
            commission=commission,
            commission_asset=QUOTE_ASSET,
            realized_pnl=realized,
            maker=maker,
            time_ms=now,
        )
        self.fills.append(fill)
        # Binance's order on the stream: TRADE_LITE, ACCOUNT_UPDATE, then ORDER_TRADE_UPDATE.
        self._emit(TradeLite(order.snapshot(self.spec.symbol), fill))
        self._emit(self._account_update("ORDER", now))
        self._emit(self._order_update(order, "TRADE", now, fill))
        if not order.is_open:
            self._done(order)

    def _order_update(
        self, order: Order, exec_type: str, now: int, fill: FillSnapshot | None = None
    ) -> OrderUpdate:
        f = self.figures()
        return OrderUpdate(
            order=order.snapshot(self.spec.symbol),
            exec_type=exec_type,
            time_ms=now,
            bid_notional=f.bid_notional,
            ask_notional=f.ask_notional,
            fill=fill,
        )

    def _account_update(
        self, reason: str, now: int, balance_change: Decimal = ZERO
    ) -> AccountUpdate:
        return AccountUpdate(
            reason=reason,
            time_ms=now,
            wallet=self.wallet,
            balance_change=balance_change,
            position=self.position_snapshot(),
        )
