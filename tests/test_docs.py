"""The documentation site: it builds with ``mkdocs build --strict`` (a broken link, a missing
page or a bad anchor fails), and its config reference, generated from the declarations,
lists every setting with its type, default and bounds."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import annotated_types
import pytest

from protocol.settings import Config
from scripts import config_reference, metrics_reference
from tests.service import ROOT


def rows_by_section(page: str) -> dict[str, dict[str, list[str]]]:
    """section heading -> key -> its cells (type, default, bounds, description)."""
    found: dict[str, dict[str, list[str]]] = {}
    section = ""
    for line in page.splitlines():
        heading = re.match(r"^## `\[+(\w+)\]+`$", line)
        if heading:
            section = heading.group(1)
            found[section] = {}
        row = re.match(r"^\| `(\w+)` \|(.*)\|$", line)
        if row and section:
            found[section][row.group(1)] = [c.strip() for c in row.group(2).split(" | ")]
    return found


def test_the_config_reference_lists_every_setting_with_type_default_and_bounds():
    page = rows_by_section(config_reference.markdown())
    assert set(page) == set(Config.model_fields)
    for section in Config.model_fields:
        model = config_reference.section_model(section)
        assert set(page[section]) == set(model.model_fields), section
        for key, field in model.model_fields.items():
            kind, default, bounds, description = page[section][key]
            assert kind and default and bounds, (section, key)
            assert description == config_reference.cell(field.description or ""), (section, key)
            for meta in field.metadata:
                for limit in ("gt", "ge", "lt", "le"):
                    if isinstance(meta, getattr(annotated_types, limit.capitalize())):
                        assert str(getattr(meta, limit)) in bounds, (section, key, bounds)
    service = page["service"]
    assert service["checkpoint_interval_s"][:3] == ["number", "`60.0`", "&gt; 0, &le; 86400.0"]
    assert service["mode"][0] == '"replay" &#124; "binance-sandbox" &#124; "binance-testnet"'
    assert page["risk"]["risk_per_trade"][:2] == ["decimal", '`"0.01"`']


def test_the_metrics_reference_lists_every_declared_metric():
    names = [row[0] for row in metrics_reference.rows()]
    assert "paper_fills_total" in names and "paper_checkpoint_write_seconds" in names
    assert all(f"| `{name}` |" in metrics_reference.markdown() for name in names)


@pytest.mark.skipif(shutil.which("mkdocs", path=str(Path(sys.executable).parent)) is None,
                    reason="no mkdocs (the dev extra)")  # fmt: skip
def test_the_site_builds_strictly(tmp_path: Path):
    done = subprocess.run(
        [str(Path(sys.executable).parent / "mkdocs"), "build", "--strict", "--quiet",
         "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=120,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    config = (tmp_path / "site" / "reference" / "config" / "index.html").read_text()
    assert "progress_every_s" in config and "checkpoint_interval_s" in config
