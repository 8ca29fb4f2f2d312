"""Supervision in OTP terms: child specs as data, restart strategies, escalation.

``Service`` and ``service_spec`` resolve lazily: they import the node host and so
Nautilus, which ``status`` and ``config check`` do not need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from supervisor.config import ConfigError, ServiceConfig, SupervisionSettings, load_config
from supervisor.spec import ChildRef, ChildSpec, Escalation, Restart, Strategy, SupervisorSpec
from supervisor.supervisor import Supervisor, backoff_delay

if TYPE_CHECKING:
    from supervisor.service import Service, service_spec

__all__ = [
    "ChildRef",
    "ChildSpec",
    "ConfigError",
    "Escalation",
    "Restart",
    "Service",
    "ServiceConfig",
    "Strategy",
    "SupervisionSettings",
    "Supervisor",
    "SupervisorSpec",
    "backoff_delay",
    "load_config",
    "service_spec",
]


def __getattr__(name: str) -> object:
    if name in ("Service", "service_spec"):
        return getattr(importlib.import_module("supervisor.service"), name)
    raise AttributeError(f"module 'supervisor' has no attribute {name!r}")
