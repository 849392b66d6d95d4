"""Scenario input: YAML schema, overrides, validation and resolution into frozen Setup objects."""

from simulator.scenario.errors import ConfigError
from simulator.scenario.load import load_setup, setup_from_mapping
from simulator.scenario.setup import Setup

__all__ = ["ConfigError", "Setup", "load_setup", "setup_from_mapping"]
