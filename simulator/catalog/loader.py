"""Read the bundled YAML catalogues (and user ones) as plain mappings."""

from functools import cache
from importlib import resources
from typing import Any

import yaml

# libyaml's parser builds the same objects as the pure-Python SafeLoader ~10x faster; the bundled
# catalogues are parsed on every start-up, so they use it when PyYAML was built with it.
_FAST_SAFE_LOADER = yaml.CSafeLoader if getattr(yaml, "__with_libyaml__", False) else yaml.SafeLoader


@cache
def bundled(name: str) -> dict[str, Any]:
    """The bundled catalogue `simulator/specs/<name>.yaml` as a dict (cached, treat as read-only)."""
    text = resources.files("simulator.specs").joinpath(f"{name}.yaml").read_text()
    return yaml.load(text, Loader=_FAST_SAFE_LOADER) or {}  # noqa: S506 (a safe loader)
