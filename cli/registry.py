"""``paper-node strategies add|list``: the promotion record.

A research pipeline registers each strategy it validated, with its backtest's metrics,
before it is paper-traded; the entry is checked the way a config's ``[[strategies]]`` is
(the classes import, the config parses), so what is registered can run.
"""

from __future__ import annotations

import argparse
import csv
import json
from decimal import Decimal, InvalidOperation
from pathlib import Path

from pydantic import ValidationError

from protocol import RegisteredStrategy
from storage import AlreadyRegistered, read_registry, register
from storage.store import connect
from supervisor.config import check_strategy_entries, validation_problems

type JsonObject = dict[str, object]


class RegistryError(Exception):
    """Bad input for the registry: every problem, each naming its field."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def _json_argument(flag: str, value: str | None) -> JsonObject:
    """A JSON object given inline or as ``@file.json``."""
    if value is None:
        return {}
    text = value
    if value.startswith("@"):
        try:
            text = Path(value[1:]).read_text()
        except OSError as exc:
            raise RegistryError([f"{flag}: cannot read {value[1:]}: {exc.strerror}"]) from None
    try:
        data = json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise RegistryError([f"{flag}: not valid JSON: {exc}"]) from None
    if not isinstance(data, dict):
        raise RegistryError([f"{flag}: must be a JSON object"])
    return {str(k): v for k, v in data.items()}


RETURN_COLUMN = "return"


def _returns_csv(flag: str, value: str | None) -> list[Decimal]:
    """A return series from a CSV file with a ``return`` column (fractions, 0.01 = 1 %,
    oldest first; other columns such as a date are ignored)."""
    if value is None:
        return []
    path = Path(value.removeprefix("@"))
    try:
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            if RETURN_COLUMN not in (reader.fieldnames or []):
                raise RegistryError([f"{flag}: {path} has no {RETURN_COLUMN!r} column"])
            out: list[Decimal] = []
            for line, row in enumerate(reader, start=2):
                text = (row.get(RETURN_COLUMN) or "").strip()
                try:
                    number = Decimal(text)
                except InvalidOperation:
                    raise RegistryError(
                        [f"{flag}: {path}:{line}: {text!r} is not a number"]
                    ) from None
                if not number.is_finite() or number <= -1:
                    raise RegistryError(
                        [f"{flag}: {path}:{line}: {text} is not a return (a fraction > -1)"]
                    )
                out.append(number)
    except OSError as exc:
        raise RegistryError([f"{flag}: cannot read {path}: {exc.strerror}"]) from None
    return out


def _evidence(args: argparse.Namespace) -> JsonObject:
    fills = {
        "slippage_bps": args.slippage_bps,
        "fee_bps": args.fee_bps,
        "funding_bps_per_day": args.funding_bps_per_day,
    }
    return {
        "daily_returns": _returns_csv("--returns", args.returns),
        "trade_returns": _returns_csv("--trade-returns", args.trade_returns),
        "trials": args.trials,
        "trials_sharpe_variance": args.trials_sharpe_variance,
        "fills": {k: v for k, v in fills.items() if v is not None},
    }


def add(args: argparse.Namespace, db_path: Path) -> RegisteredStrategy:
    config = _json_argument("--strategy-config", args.strategy_config)
    metrics = _json_argument("--metrics", args.metrics)
    evidence = _evidence(args)
    try:
        strategy = RegisteredStrategy.model_validate(
            {
                "name": args.name,
                "entry": {
                    "strategy_path": args.strategy_path,
                    "config_path": args.config_path,
                    "config": config,
                },
                "metrics": metrics,
                "evidence": evidence,
            }
        )
    except ValidationError as exc:
        raise RegistryError(validation_problems("strategy", RegisteredStrategy, exc)) from None
    problems = check_strategy_entries((strategy.entry,), instrument_id=None)
    if problems:
        raise RegistryError([p.replace("strategies[0]", "strategy.entry") for p in problems])
    db = connect(db_path)
    try:
        return register(db, strategy, replace=args.replace)
    except AlreadyRegistered as exc:
        raise RegistryError([str(exc)]) from None
    finally:
        db.close()


def listing(db_path: Path) -> list[RegisteredStrategy]:
    if not db_path.exists():
        return []
    return read_registry(db_path)


def as_json(entries: list[RegisteredStrategy]) -> str:
    return json.dumps([json.loads(e.model_dump_json()) for e in entries], indent=2)


def table(entries: list[RegisteredStrategy]) -> str:
    if not entries:
        return "no strategy registered"
    rows = [("name", "strategy", "sharpe", "max dd %", "trades", "days", "trials", "registered")]
    for e in entries:
        m = e.metrics
        rows.append(
            (
                e.name,
                e.entry.strategy_path,
                "-" if m.sharpe is None else f"{m.sharpe:.2f}",
                "-" if m.max_drawdown_pct is None else f"{m.max_drawdown_pct:.1f}",
                "-" if m.trade_count is None else str(m.trade_count),
                str(len(e.evidence.daily_returns)) if e.evidence.daily_returns else "-",
                "-" if e.evidence.trials is None else str(e.evidence.trials),
                e.registered_at,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)


__all__ = ["RegistryError", "add", "as_json", "listing", "table"]
