"""Supervision in OTP terms, the service tree, its runtime and its command line.

- ``spec`` and ``supervisor``: child specs as data, restart strategies, escalation;
- ``config``: the TOML loader over ``protocol.settings``;
- ``service``: the tree (alerter, classifier, checkpointer, gate, node) and its stop;
- ``runtime``: the anyio loop around it (signals, watchdog, operator control);
- ``heap``: the start-up heap out of the garbage collector's sight.
Nothing here imports NautilusTrader: the node child does that itself.
"""

from __future__ import annotations

from supervisor.config import ConfigError, ServiceConfig, load_config, parse_config
from supervisor.heap import freeze_heap
from supervisor.service import LiveConfig, Service, service_spec
from supervisor.spec import ChildRef, ChildSpec, Restart, SupervisorSpec
from supervisor.supervisor import Supervisor, backoff_delay

__all__ = [
    "ChildRef",
    "ChildSpec",
    "ConfigError",
    "LiveConfig",
    "Restart",
    "Service",
    "ServiceConfig",
    "Supervisor",
    "SupervisorSpec",
    "backoff_delay",
    "freeze_heap",
    "load_config",
    "parse_config",
    "service_spec",
]
