"""Scenario input: YAML schema, overrides, validation and resolution into frozen Setup objects.

The names below are loaded on first use (PEP 562), so that importing `simulator.scenario.errors`
(every command does) does not load the schema, pydantic and YAML."""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "ConfigError": "simulator.scenario.errors",
    "Setup": "simulator.scenario.setup",
    "load_setup": "simulator.scenario.load",
    "setup_from_mapping": "simulator.scenario.load",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'simulator.scenario' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
