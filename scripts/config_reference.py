"""The configuration reference page, generated from the declarations in
``protocol/settings.py``: every section and key with its type, default, bounds and
description, so the documentation cannot drift from what the loader checks.

    python -m scripts.config_reference [--out PATH]   (default: print the page)

The docs site builds it through ``scripts/mkdocs_hooks.py`` (``docs/reference/config.md``
is never written by hand, nor kept in the repository).
"""

from __future__ import annotations

import argparse
import enum
import html
import sys
import types
from decimal import Decimal
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from typing import Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from protocol.settings import Config
from supervisor.config import FROM_ENVIRONMENT, TABLE_ARRAYS

PAGE = "reference/config.md"
SIMPLE = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    Decimal: "decimal",
    Path: "path",
    IPv4Address: "IP address",
    IPv6Address: "IP address",
}


def type_name(annotation: object) -> str:
    """A field's type as a config file's author reads it."""
    origin = get_origin(annotation)
    if origin is Literal:
        return " &#124; ".join(
            f'"{v}"' if isinstance(v, str) else str(v) for v in get_args(annotation)
        )
    if origin in (Union, types.UnionType):
        names = [type_name(a) for a in get_args(annotation) if a is not type(None)]
        optional = type(None) in get_args(annotation)
        return " or ".join(dict.fromkeys(names)) + (" (optional)" if optional else "")
    if origin in (tuple, list):
        inner = [a for a in get_args(annotation) if a is not Ellipsis]
        return f"list of {type_name(inner[0])}" if inner else "list"
    if origin is dict:
        return "table"
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return " &#124; ".join(f'"{m.value}"' for m in annotation)
    if isinstance(annotation, type) and annotation in SIMPLE:
        return SIMPLE[annotation]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "table"
    return html.escape(getattr(annotation, "__name__", str(annotation)))


def bounds(field: FieldInfo) -> str:
    """The field's constraints: numeric bounds, lengths, a pattern."""
    parts: list[str] = []
    for meta in field.metadata:
        match meta:
            case annotated_types.Gt(gt=v):
                parts.append(f"&gt; {v}")
            case annotated_types.Ge(ge=v):
                parts.append(f"&ge; {v}")
            case annotated_types.Lt(lt=v):
                parts.append(f"&lt; {v}")
            case annotated_types.Le(le=v):
                parts.append(f"&le; {v}")
            case annotated_types.MinLen(min_length=v):
                parts.append(f"at least {v} long")
            case annotated_types.MaxLen(max_length=v):
                parts.append(f"at most {v} long")
            case _:
                pattern = getattr(meta, "pattern", None)
                if pattern:
                    parts.append(f"matches <code>{cell(str(pattern))}</code>")
    return ", ".join(parts) or "-"


def default(section: str, key: str, field: FieldInfo) -> str:
    if (section, key) in FROM_ENVIRONMENT:
        return f"from `{FROM_ENVIRONMENT[section, key]}`"
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "none"
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, tuple | list):
        return "`[]`" if not value else f"`{list(value)}`"
    if isinstance(value, str | Path | Decimal | IPv4Address | IPv6Address):
        return f'`"{value}"`'
    return f"`{value}`"


def cell(text: str) -> str:
    """Table-safe: no pipe splits a cell, no newline ends a row."""
    return html.escape(text, quote=False).replace("|", "&#124;").replace("\n", " ")


def table(section: str, model: type[BaseModel]) -> list[str]:
    lines = ["| key | type | default | bounds | description |", "|---|---|---|---|---|"]
    for key, field in model.model_fields.items():
        lines.append(
            f"| `{key}` | {type_name(field.annotation)} | {default(section, key, field)} "
            f"| {bounds(field)} | {cell(field.description or '')} |"
        )
    return lines


def section_model(name: str) -> type[BaseModel]:
    if name in TABLE_ARRAYS:
        return TABLE_ARRAYS[name]
    annotation = Config.model_fields[name].annotation
    assert isinstance(annotation, type) and issubclass(annotation, BaseModel), name
    return annotation


def markdown() -> str:
    """The whole page."""
    lines = [
        "# Configuration reference",
        "",
        "Every setting of the TOML config file, generated from the declarations in",
        "`protocol/settings.py` by `scripts/config_reference.py` each time the site is built:",
        "the loader checks exactly these types and bounds (rules across sections, such as",
        "`risk.max_leverage` not above `account.leverage`, are the loader's and listed by",
        "`paper-node config check`). `paper-node config example` prints the same settings as a",
        "file, `paper-node config schema` as a JSON Schema. Secrets are never settings: the",
        "keys marked *from* come from the environment.",
        "",
    ]
    for name in Config.model_fields:
        model = section_model(name)
        heading = f"[[{name}]]" if name in TABLE_ARRAYS else f"[{name}]"
        lines += [f"## `{heading}`", ""]
        doc = (model.__doc__ or "").strip()
        if doc and not doc.startswith(model.__name__ + "("):
            lines += [" ".join(doc.replace("``", "`").split()), ""]
        lines += [*table(name, model), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the config reference page, from the settings")
    parser.add_argument("--out", type=Path, help="write the page here (default: print it)")
    args = parser.parse_args(argv)
    page = markdown()
    if args.out is None:
        sys.stdout.write(page)
    else:
        args.out.write_text(page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
