"""One validation case, where the bundled validation data lives, and the error a broken file raises."""

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from simulator.scenario.errors import ConfigError


@dataclass(frozen=True)
class Case:
    id: str
    group: str
    scenario: dict[str, Any]
    published: dict[str, float]
    source: str = ""


def bundled_path(name: str) -> Path:
    return Path(str(resources.files("simulator.data").joinpath("validation", name)))


def file_error(path: Path, problems: list[str]) -> ConfigError:
    """A validation file that cannot be read: one line per problem, each naming the file (and the
    case, row or column), reported by the CLI with exit code 2."""
    return ConfigError([f"{path}: {p}" for p in problems])
