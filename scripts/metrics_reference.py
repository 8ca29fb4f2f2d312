"""The metrics reference page, generated from ``actors/metrics.py``'s declarations: every
metric the service exports with its type, labels and help text, as a scrape shows them.

    python -m scripts.metrics_reference   (prints the page; the docs build uses the hook)
"""

from __future__ import annotations

import sys

from prometheus_client.metrics import MetricWrapperBase

from actors.metrics import ServiceMetrics

PAGE = "reference/metrics.md"
SUFFIX = {"counter": "_total", "histogram": "_bucket, _sum, _count"}


def rows() -> list[tuple[str, str, str, str]]:
    """(name as scraped, type, labels, help) of every declared metric, in declaration order."""
    declared = ServiceMetrics("REFERENCE-001")
    found = []
    for value in vars(declared).values():
        if isinstance(value, MetricWrapperBase):
            kind = str(value._type)
            name = str(value._name)
            scraped = f"{name}_total" if kind == "counter" else name
            labels = ", ".join(f"`{label}`" for label in value._labelnames)
            found.append((scraped, kind, labels, str(value._documentation)))
    return found


def markdown() -> str:
    lines = [
        "# Metrics reference",
        "",
        "Every metric `/metrics` serves, generated from the declarations in",
        "`actors/metrics.py` each time the site is built. A histogram is scraped as",
        "`<name>_bucket{le=...}`, `<name>_sum` and `<name>_count`. Labels stay bounded:",
        "`trader` (one per service), `strategy` (the config's strategies), `role` (the",
        "supervision tree's roles), `class` (`fatal`, `transient`, `unknown`), `breaker` (the",
        "breakers' names). The shipped alert and recording rules and the Grafana board use",
        "only these (`tests/test_fleet.py` checks them against a live scrape).",
        "",
        "| metric | type | labels | meaning |",
        "|---|---|---|---|",
    ]
    lines += [f"| `{n}` | {k} | {ls or '-'} | {h} |" for n, k, ls, h in rows()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(markdown())
