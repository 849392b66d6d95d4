"""Read the bundled YAML catalogues (and user ones) as plain mappings."""

from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml


@cache
def bundled(name: str) -> dict[str, Any]:
    """The bundled catalogue `simulator/specs/<name>.yaml` as a dict (cached, treat as read-only)."""
    text = resources.files("simulator.specs").joinpath(f"{name}.yaml").read_text()
    return yaml.safe_load(text) or {}


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """A user YAML file that must hold a mapping; raises ValueError with a readable message."""
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a mapping of names to entries")
    return data
