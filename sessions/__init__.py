"""Sessions the dashboard launches: presets (validated like config files) and jobs.

A wing beside the service, above it: the dashboard imports this package, the service
never does. ``presets`` turns the editable config fields into a form and a preset into a
session's config file; ``launcher`` starts a session as a background job (from a preset,
or from a registered strategy with a preset) and tells its state from its process and
its heartbeat; ``parity`` runs a session's parity report; ``chart`` builds a session's
Trades chart in a child with a time limit; ``promotion`` sets a session's
paper results beside the backtest metrics its strategy was registered with.
"""

from __future__ import annotations

from sessions.chart import CHART_TIMEOUT_S, child_chart
from sessions.launcher import Launcher, LaunchError, SessionView, session_state
from sessions.parity import ParityOutcome, run_parity
from sessions.presets import (
    PRESET_FIELDS,
    PresetField,
    default_preset,
    from_text,
    session_config_text,
    strategy_tables,
    validate_preset,
)
from sessions.promotion import MetricRow, PaperResults, compare, paper_results

__all__ = [
    "CHART_TIMEOUT_S",
    "PRESET_FIELDS",
    "LaunchError",
    "Launcher",
    "MetricRow",
    "PaperResults",
    "ParityOutcome",
    "PresetField",
    "SessionView",
    "child_chart",
    "compare",
    "default_preset",
    "from_text",
    "paper_results",
    "run_parity",
    "session_config_text",
    "session_state",
    "strategy_tables",
    "validate_preset",
]
