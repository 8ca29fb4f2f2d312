"""Supervision in OTP terms: child specs as data, restart strategies, escalation."""

from supervisor.config import ConfigError, ServiceConfig, SupervisionSettings, load_config
from supervisor.service import Service, service_spec
from supervisor.spec import ChildRef, ChildSpec, Escalation, Restart, Strategy, SupervisorSpec
from supervisor.supervisor import Supervisor, backoff_delay

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
