"""Read the bundled YAML catalogues (and user ones) as plain mappings."""

from functools import cache
from importlib import resources
from typing import Any

import yaml


@cache
def bundled(name: str) -> dict[str, Any]:
    """The bundled catalogue `simulator/specs/<name>.yaml` as a dict (cached, treat as read-only)."""
    text = resources.files("simulator.specs").joinpath(f"{name}.yaml").read_text()
    return yaml.safe_load(text) or {}
