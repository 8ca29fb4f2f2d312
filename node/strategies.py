"""The node's strategies: the trader's own by import path, or the bundled EMA cross.

A trader's strategy is named the way NautilusTrader names one (``ImportableStrategyConfig``:
the strategy class, its config class, the config's fields) and built by NautilusTrader's
own ``StrategyFactory``, so a strategy that runs in the trader's backtest runs here
unchanged. The node, the parity backtest and the config check all build them here, so a
strategy is the same object in all three.

The config loader checks the entries before anything starts (``python -m
node.strategies``, in a child process: the supervisor never imports NautilusTrader), and
reports every problem at once, each naming its entry and field.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import msgspec
from nautilus_trader.common.config import resolve_path
from nautilus_trader.config import ImportableStrategyConfig, StrategyConfig
from nautilus_trader.model.data import Bar, BarType
from nautilus_trader.trading.config import StrategyFactory
from nautilus_trader.trading.strategy import Strategy
from pydantic import JsonValue

from node.replay import bar_type_for
from node.strategy import EmaCrossConfig
from protocol import Mode, NodeSettings, RiskLimits, StrategyEntry

MAX_STRATEGIES = 50


@runtime_checkable
class TakesRiskLimits(Protocol):
    """A strategy that sizes from the service's risk limits and takes a reload's."""

    def update_risk(self, risk: RiskLimits) -> None: ...


@runtime_checkable
class WarmsUp(Protocol):
    """A strategy whose indicators can be fed the bars before a restore point, so a
    restored strategy does not trade a signal it already traded."""

    def warm_up(self, bars: list[Bar]) -> None: ...


BUNDLED = ("node.strategy:EmaCross", "node.strategy:EmaCrossConfig")


def build_strategies(
    settings: NodeSettings, bar_type: BarType, log_level: str | None = None
) -> list[Strategy]:
    """The strategies of ``settings``: its entries, or the bundled EMA cross built the
    same way, by import path, from ``[strategy]``, ``[sizing]`` and ``[risk]``.

    ``log_level``: the level their node logs at (the node's own by default). Above INFO
    a strategy's per-event and per-command INFO lines are never printed, yet NautilusTrader
    formats each one first (an order's whole repr, for every event of every strategy):
    unless the trader's config asks for them, they are switched off. Warnings (a denied or
    rejected order) are logged either way."""
    entries = settings.strategies or (bundled_entry(settings, bar_type),)
    if not logs_info(settings.log_level if log_level is None else log_level):
        entries = tuple(_unlogged(entry) for entry in entries)
    return [StrategyFactory.create(importable(entry)) for entry in entries]


def logs_info(log_level: str) -> bool:
    """Whether a NautilusTrader logger at ``log_level`` prints its INFO lines."""
    return log_level.upper() in ("TRACE", "DEBUG", "INFO")


def _unlogged(entry: StrategyEntry) -> StrategyEntry:
    quiet: dict[str, JsonValue] = {"log_events": False, "log_commands": False}
    return entry.model_copy(update={"config": quiet | dict(entry.config)})


def instrument_of(strategy: Strategy, default: str) -> str:
    """The instrument ``strategy`` trades: its config's ``instrument_id``
    (NautilusTrader's convention), else the node's own (``default``)."""
    named = getattr(strategy.config, "instrument_id", None)
    return default if named is None else str(named)


def bundled_entry(settings: NodeSettings, bar_type: BarType) -> StrategyEntry:
    config = EmaCrossConfig.for_settings(settings, bar_type)
    return StrategyEntry(
        strategy_path=BUNDLED[0], config_path=BUNDLED[1], config=config.as_entry_config()
    )


def importable(entry: StrategyEntry) -> ImportableStrategyConfig:
    return ImportableStrategyConfig(
        strategy_path=entry.strategy_path, config_path=entry.config_path, config=entry.config
    )


def problems(
    entries: Sequence[StrategyEntry], instrument_id: str | None, bar_minutes: int, mode: Mode
) -> list[str]:
    """Every problem of ``entries``, each naming its entry (``strategies[0].config.x``).
    With no ``instrument_id`` (an entry of the registry, not of a node) the node's
    instrument and bars are not checked. An entry trades the instrument its config
    names (``instrument_id``), else ``instrument_id``; its ``bar_type``, if it has one,
    must be that instrument's bars of ``bar_minutes`` (what the node feeds it).

    Two strategies on one instrument: in replay and binance-sandbox Nautilus keeps a
    position per strategy (NETTING: ``{instrument}-{strategy}``) and the simulated venue
    fills each order on its own, so each strategy's PnL is its own. A Binance account in
    one-way mode nets every order on a symbol into one position, so on the testnet two
    strategies on one instrument would trade each other's position: refused."""
    found: list[str] = []
    if len(entries) > MAX_STRATEGIES:
        found.append(f"strategies: {len(entries)} entries; at most {MAX_STRATEGIES} a node")
    if mode is Mode.BINANCE_TESTNET and instrument_id is not None:
        on: dict[str, list[int]] = {}
        for i, entry in enumerate(entries):
            named = entry.config.get("instrument_id")
            on.setdefault(named if isinstance(named, str) else instrument_id, []).append(i)
        found.extend(
            f"strategies{indexes}: {len(indexes)} strategies on {iid} in binance-testnet: "
            "the venue's one-way mode nets them into one position; one strategy per "
            "instrument there"
            for iid, indexes in on.items()
            if len(indexes) > 1
        )
    ids: dict[str, int] = {}
    for i, entry in enumerate(entries):
        where = f"strategies[{i}]"
        strategy = _check_one(entry, where, instrument_id, bar_minutes, found)
        if strategy is None:
            continue
        if len(entries) > 1 and entry.config.get("order_id_tag") is None:
            found.append(
                f"{where}.config.order_id_tag: required when several strategies share a node "
                "(their orders and positions are keyed by it, across restarts)"
            )
            continue
        sid = strategy.id.value
        if sid in ids:
            found.append(
                f"{where}: strategy id {sid} is also strategies[{ids[sid]}]'s; "
                "give each an order_id_tag"
            )
        ids.setdefault(sid, i)
    return found


def _check_one(
    entry: StrategyEntry,
    where: str,
    instrument_id: str | None,
    bar_minutes: int,
    found: list[str],
) -> Strategy | None:
    strategy_cls = _resolve(entry.strategy_path, f"{where}.strategy_path", Strategy, found)
    config_cls = _resolve(entry.config_path, f"{where}.config_path", StrategyConfig, found)
    if strategy_cls is None or config_cls is None:
        return None
    try:
        config = config_cls.parse(msgspec.json.encode(entry.config))
    except msgspec.ValidationError as exc:
        found.append(_config_problem(where, str(exc)))
        return None
    if instrument_id is not None:
        named = getattr(config, "instrument_id", None)
        trades = instrument_id if named is None else str(named)
        expected = str(bar_type_for(trades, bar_minutes))
        given = getattr(config, "bar_type", None)
        if given is not None and str(given) != expected:
            found.append(
                f"{where}.config.bar_type: {given} is not {expected} "
                f"(the bars the node feeds for {trades}: replay.bar_minutes)"
            )
    try:
        return strategy_cls(config=config)
    except Exception as exc:  # the trader's code: any failure is a problem
        found.append(f"{where}: {entry.strategy_path}(config) failed: {exc!r}")
        return None


def _resolve[T](path: str, where: str, base: type[T], found: list[str]) -> type[T] | None:
    """The class at ``path`` if it imports and is a ``base``; else a problem."""
    try:
        resolved: object = resolve_path(path)
    except Exception as exc:  # ImportError, AttributeError, a module that raises
        found.append(f"{where}: cannot import {path}: {exc}")
        return None
    if not (isinstance(resolved, type) and issubclass(resolved, base)):
        found.append(f"{where}: {path} is not a NautilusTrader {base.__name__}")
        return None
    return resolved


_AT = re.compile(r"^(.*) - at `\$\.?([^`]*)`$")


def _config_problem(where: str, message: str) -> str:
    """msgspec's ``Expected `int`, got `str` - at `$.fast` `` as ``...config.fast: ...``."""
    match = _AT.match(message)
    if match is None:
        return f"{where}.config: {message}"
    text, field = match.groups()
    return f"{where}.config.{field}: {text}" if field else f"{where}.config: {text}"


def main() -> int:
    """Check entries given as JSON on stdin (``entries``, ``instrument_id``,
    ``bar_minutes``, ``mode``); print the problems as a JSON list."""
    request = json.loads(sys.stdin.read())
    entries = [StrategyEntry.model_validate(e) for e in request["entries"]]
    instrument_id = request.get("instrument_id")
    mode = Mode(str(request["mode"]))
    node = None if instrument_id is None else str(instrument_id)
    print(json.dumps(problems(entries, node, int(request["bar_minutes"]), mode)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
