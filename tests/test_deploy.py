"""What ships under deploy/: the Prometheus rules (promtool checks them and runs their unit
tests: each alert firing and not firing) and what the rules and the Grafana board query.

``used`` reads every PromQL expression of the board and the rules and lists the metric names
and label names they rely on; ``missing`` compares that with a scrape. The live scrape is
tests/test_fleet.py's (one running service serves it); here the comparison is shown to
catch a renamed metric or label."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from actors.metrics import ServiceMetrics
from tests.service import ROOT

DEPLOY = ROOT / "deploy"
ALERTS = DEPLOY / "prometheus" / "paper-node.rules.yml"
RECORDING = DEPLOY / "prometheus" / "paper-node.recording.yml"
RULE_TESTS = DEPLOY / "prometheus" / "tests" / "paper-node.test.yml"
BOARD = DEPLOY / "grafana" / "paper-node.json"

# Labels Prometheus adds (the scrape config and the file_sd targets of `metrics targets`),
# and those of histograms and alerts: not the service's to export.
TARGET_LABELS = {"job", "instance", "le", "alertname", "paper_instance", "paper_host", "paper_mode"}
METRIC = re.compile(r"\b(paper(?:_[a-z0-9]+)+|paper(?::[a-z0-9_]+)+)\b")
SELECTOR = re.compile(r"\b(paper[a-z0-9_:]*)\{([^}]*)\}")
MATCHER = re.compile(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)")
GROUPING = re.compile(r"\b(?:by|on|ignoring|without)\s*\(([^)]*)\)")
LEGEND = re.compile(r"\{\{\s*(\w+)\s*\}\}")
TEMPLATE_LABEL = re.compile(r"\$labels\.(\w+)")
VARIABLE = re.compile(r"label_values\((paper\w*)(?:\{[^}]*\})?,\s*(\w+)\)")
HISTOGRAM_PARTS = ("_bucket", "_sum", "_count")


@dataclass
class Uses:
    """What a set of expressions needs: metric names, and label names each must carry
    (``None``: the label must be on one of the expression's metrics)."""

    metrics: set[str] = field(default_factory=set)
    labels: set[tuple[str | None, str]] = field(default_factory=set)
    records: dict[str, set[str]] = field(default_factory=dict)  # recorded name -> its labels

    def expression(self, expr: str, extra_labels: Iterable[str] = ()) -> None:
        names = set(METRIC.findall(expr))
        self.metrics |= names
        for name, matchers in SELECTOR.findall(expr):
            self.labels |= {(name, label) for label in MATCHER.findall(matchers)}
        grouped = {label.strip() for group in GROUPING.findall(expr) for label in group.split(",")}
        for label in {*grouped, *extra_labels} - {""}:
            self.labels.add((None if len(names) != 1 else next(iter(names)), label))
            self.labels.add((f"<any of> {','.join(sorted(names))}", label))


def rules_of(path: Path) -> list[dict[str, object]]:
    return [rule for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]]


def used(
    board: dict[str, object], alerts: list[dict[str, object]], records: list[dict[str, object]]
) -> Uses:
    uses = Uses()
    for rule in records:
        expr = str(rule["expr"])
        grouped = {label.strip() for group in GROUPING.findall(expr) for label in group.split(",")}
        uses.records[str(rule["record"])] = grouped - {""}
        uses.expression(expr)
    for rule in alerts:
        annotations = rule.get("annotations") or {}
        assert isinstance(annotations, dict)
        templated = (m for text in annotations.values() for m in TEMPLATE_LABEL.findall(str(text)))
        uses.expression(str(rule["expr"]), templated)
    for panel in board["panels"]:  # type: ignore[attr-defined]
        for target in panel.get("targets", []):
            uses.expression(target["expr"], LEGEND.findall(target.get("legendFormat", "")))
    for variable in board["templating"]["list"]:  # type: ignore[index]
        definition = variable.get("definition", "")
        for name, label in VARIABLE.findall(definition):
            uses.expression(definition, [label])
            uses.labels.add((name, label))
    return uses


def declared_labels() -> dict[str, set[str]]:
    """Each metric's label names as actors/metrics.py declares them: the fallback for a
    family a scrape lists with no sample yet (a labelled counter before its first event,
    e.g. paper_breaker_trips_total before a trip)."""
    metrics = ServiceMetrics("DECLARED-001")
    declared = {}
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            names = set(value._labelnames)  # prometheus-client keeps them here
            declared[value._name] = names
            if value._type == "counter":
                declared[f"{value._name}_total"] = names
    return declared


Scrape = dict[str, set[str]]  # metric name (family and sample names) -> label names seen


def missing(uses: Uses, scrape: Scrape, declared: dict[str, set[str]]) -> list[str]:
    """Every metric and label the board and the rules use that the scrape lacks."""

    def labels_of(name: str) -> set[str] | None:
        if name in uses.records:
            return uses.records[name]
        base = next((name[: -len(p)] for p in HISTOGRAM_PARTS if name.endswith(p)), name)
        seen = scrape.get(name, set()) | scrape.get(base, set())
        if name not in scrape and base not in scrape:
            return None
        return seen or declared.get(name, declared.get(base, set()))

    problems = []
    for name in sorted(uses.metrics):
        if name.startswith("paper:") and name not in uses.records:
            problems.append(f"{name}: no recording rule records it")
        elif labels_of(name) is None:
            problems.append(f"{name}: not in the scrape")
    for where, label in sorted(uses.labels, key=lambda x: (str(x[0]), x[1])):
        if label in TARGET_LABELS or where is None:
            continue
        if where.startswith("<any of> "):
            names = [n for n in where.removeprefix("<any of> ").split(",") if n]
            pools = [labels_of(n) for n in names]
            if names and not any(label in (p or set()) for p in pools):
                problems.append(f"label {label}: on none of {', '.join(names)}")
        else:
            pool = labels_of(where)
            if pool is not None and label not in pool:
                problems.append(f"label {label}: not on {where}")
    return problems


def shipped_uses() -> Uses:
    return used(json.loads(BOARD.read_text()), rules_of(ALERTS), rules_of(RECORDING))


@pytest.mark.skipif(shutil.which("promtool") is None, reason="no promtool (make test-tools)")
def test_promtool_checks_the_rules_and_runs_their_unit_tests():
    checked = subprocess.run(
        ["promtool", "check", "rules", str(ALERTS), str(RECORDING)],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run(
        ["promtool", "test", "rules", str(RULE_TESTS)],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_has_a_firing_and_a_quiet_test_case_and_says_what_to_do():
    alerts = {str(rule["alert"]) for rule in rules_of(ALERTS)}
    cases = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    fired = {c["alertname"] for t in cases for c in t.get("alert_rule_test", []) if c["exp_alerts"]}
    quiet = {
        c["alertname"] for t in cases for c in t.get("alert_rule_test", []) if not c["exp_alerts"]
    }
    assert alerts == fired == quiet
    for rule in rules_of(ALERTS):
        annotations = rule["annotations"]
        assert isinstance(annotations, dict)
        assert annotations["summary"] and len(str(annotations["description"])) > 60, rule


def test_the_check_catches_a_renamed_metric_and_label():
    """Against a scrape of what actors/metrics.py declares (the live one is test_fleet's)."""
    declared = declared_labels()
    scrape = {name: set() for name in declared}  # names only: labels from the declarations
    uses = shipped_uses()
    assert missing(uses, scrape, declared) == []
    renamed = {("paper_equity_usd" if n == "paper_equity" else n): ls for n, ls in scrape.items()}
    assert "paper_equity: not in the scrape" in missing(uses, renamed, declared)
    relabelled = {**declared, "paper_breaker_trips_total": {"trader", "name"}}
    problems = missing(uses, scrape, relabelled)
    assert "label breaker: not on paper_breaker_trips_total" in problems, problems
