"""Halt and resume inside a running node: the account's, and one strategy's.

A halt does not shut anything down. The account's sets NautilusTrader's RiskEngine to
HALTED (or REDUCING) so no new order passes, cancels the strategies' open orders - all of
them, or, in ``reduce`` mode, all but the reduce-only ones (the protective stops) - and in
``flatten`` mode closes every position with a reduce-only market order, ending HALTED once
the fills confirm it. One strategy's own halt denies its new orders in front of the
RiskEngine (``node.order_limits.HaltedStrategies``) and cancels its open orders; the
others trade on. Each halt is confirmed by an ``OrdersCanceled`` once every cancel (and
close) it waits for is confirmed by NautilusTrader's own events.

The bridge drives it from the parent's commands; the market-time breakers
(``node.guard``) from inside a replay's step; the parity backtest the same way, so a
halted replay and its backtest halt alike. Runs on the node's loop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from nautilus_trader.cache.cache import Cache
from nautilus_trader.model.enums import TradingState as NautilusTradingState
from nautilus_trader.model.orders import Order
from nautilus_trader.risk.engine import RiskEngine
from nautilus_trader.trading.strategy import Strategy

from node.order_limits import FLATTEN_TAG, HaltedStrategies
from protocol import HaltMode, OrdersCanceled, TradingState, TradingStateChanged

_NT_STATE = {
    TradingState.ACTIVE: NautilusTradingState.ACTIVE,
    TradingState.HALTED: NautilusTradingState.HALTED,
    TradingState.REDUCING: NautilusTradingState.REDUCING,
}


class UnknownStrategy(ValueError):
    """A strategy's own halt or resume named a strategy this node does not run."""


class Halting:
    """The node's trading state and the halts in progress."""

    def __init__(
        self,
        risk_engine: RiskEngine,
        cache: Cache,
        strategies: Mapping[str, Strategy],
        halts: HaltedStrategies | None,
        changed: Callable[[TradingStateChanged], None],
        confirmed: Callable[[OrdersCanceled], None],
    ) -> None:
        """``changed``: every change of the account's or a strategy's trading state;
        ``confirmed``: a halt done, its cancels (and closes) confirmed."""
        self._risk_engine = risk_engine
        self._cache = cache
        self._strategies = strategies
        self._halts = halts
        self._changed = changed
        self._confirmed = confirmed
        self.state = TradingState.ACTIVE
        self.reason = ""
        # The account's halt in progress: its mode, the orders it waits to see cancelled,
        # those cancelled so far, the reduce-only ones it keeps, and the positions a
        # flatten is closing (confirmed by their PositionClosed).
        self._halting: HaltMode | None = None
        self._source = ""
        self._cancelling: set[str] = set()
        self._cancelled: list[str] = []
        self._kept: tuple[str, ...] = ()
        self._flattening: set[str] = set()
        self._flattened = 0
        # A strategy's own halt in progress: the orders it waits for, those cancelled.
        self._strategy_cancels: dict[str, tuple[set[str], list[str]]] = {}

    @property
    def halted_strategies(self) -> Mapping[str, str]:
        """The strategies halted on their own, with their reasons."""
        return self._halts.halted if self._halts is not None else {}

    # ------------------------------------------------------------ the account

    def set_state(self, state: TradingState, reason: str, source: str = "") -> None:
        self._risk_engine.set_trading_state(_NT_STATE[state])
        self.state = state
        self.reason = reason if state is not TradingState.ACTIVE else ""
        self._changed(TradingStateChanged(state, reason, source=source))

    def halt(self, reason: str, mode: HaltMode = HaltMode.CANCEL, source: str = "") -> None:
        """The account's halt in ``mode``; ``OrdersCanceled`` once it is done. A flatten
        runs REDUCING (its closing orders pass, nothing else) and ends HALTED."""
        state = TradingState.REDUCING if mode is not HaltMode.CANCEL else TradingState.HALTED
        self.set_state(state, reason, source)
        open_orders = self.open_orders()
        kept = [o for o in open_orders if mode is HaltMode.REDUCE and o.is_reduce_only]
        self._kept = tuple(o.client_order_id.value for o in kept)
        cancel = [o for o in open_orders if o.client_order_id.value not in self._kept]
        self._cancelling = {o.client_order_id.value for o in cancel}
        self._cancelled = []
        self._halting = mode
        self._source = source
        closing = [
            p
            for p in self._cache.positions_open()
            if mode is HaltMode.FLATTEN and p.strategy_id.value in self._strategies
        ]
        # Counted before anything is sent: a replay's venue answers at once, inline.
        self._flattening = {p.id.value for p in closing}
        self._flattened = len(closing)
        for order in cancel:
            self._strategies[order.strategy_id.value].cancel_order(order)
        for position in closing:
            self._strategies[position.strategy_id.value].close_position(
                position, tags=[FLATTEN_TAG]
            )
        self._progress(reason)

    def resume(self, reason: str, source: str = "") -> None:
        self.set_state(TradingState.ACTIVE, reason, source)

    def _progress(self, reason: str | None = None) -> None:
        """Confirm the account's halt once nothing it waits for is outstanding."""
        mode = self._halting
        if mode is None or self._cancelling or self._flattening:
            return
        self._halting = None
        if mode is HaltMode.FLATTEN:
            self.set_state(TradingState.HALTED, reason or self.reason, self._source)
        self._confirmed(
            OrdersCanceled(
                tuple(self._cancelled), mode=mode, kept=self._kept, positions_closed=self._flattened
            )
        )

    # ------------------------------------------------------------ one strategy

    def halt_strategy(self, strategy_id: str, reason: str, source: str = "") -> None:
        """One strategy halted: its new orders denied, its open orders cancelled (the
        cancels confirmed by ``OrdersCanceled`` naming it), the others untouched."""
        strategy = self._strategies.get(strategy_id)
        if strategy is None or self._halts is None:
            known = ", ".join(self._strategies)
            raise UnknownStrategy(f"halt: no strategy {strategy_id} in this node (it runs {known})")
        self._halts.halted[strategy_id] = reason
        self._changed(TradingStateChanged(TradingState.HALTED, reason, strategy_id, source))
        open_orders = [o for o in self.open_orders() if o.strategy_id.value == strategy_id]
        if not open_orders:
            self._confirmed(OrdersCanceled((), strategy_id))
            return
        self._strategy_cancels[strategy_id] = ({o.client_order_id.value for o in open_orders}, [])
        for order in open_orders:
            strategy.cancel_order(order)

    def resume_strategy(self, strategy_id: str, reason: str, source: str = "") -> bool:
        """Whether it was halted."""
        if strategy_id not in self._strategies or self._halts is None:
            known = ", ".join(self._strategies)
            raise UnknownStrategy(
                f"resume: no strategy {strategy_id} in this node (it runs {known})"
            )
        was = self._halts.halted.pop(strategy_id, None) is not None
        self._strategy_cancels.pop(strategy_id, None)
        self._changed(TradingStateChanged(TradingState.ACTIVE, reason, strategy_id, source))
        return was

    # ------------------------------------------------------------ confirmations

    def canceled(self, strategy_id: str, order_id: str) -> None:
        """An ``OrderCanceled``: one a halt may be waiting for."""
        waiting = self._strategy_cancels.get(strategy_id)
        if waiting is not None and order_id in waiting[0]:
            waiting[0].discard(order_id)
            waiting[1].append(order_id)
            if not waiting[0]:
                del self._strategy_cancels[strategy_id]
                self._confirmed(OrdersCanceled(tuple(waiting[1]), strategy_id))
        if order_id in self._cancelling:
            self._cancelling.discard(order_id)
            self._cancelled.append(order_id)
            self._progress()

    def closed(self, position_id: str) -> None:
        """A ``PositionClosed``: one a flatten may be waiting for."""
        if position_id in self._flattening:
            self._flattening.discard(position_id)
            self._progress()

    def open_orders(self) -> list[Order]:
        """The open orders of this node's strategies (not a reconciled stranger's)."""
        return [o for o in self._cache.orders_open() if o.strategy_id.value in self._strategies]
