"""YAML file (+ --set overrides) -> validated Scenario -> resolved Setup, or one ConfigError."""

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from simulator.scenario.errors import ConfigError, printable
from simulator.scenario.hf_config import fold_hf_config
from simulator.scenario.resolve import resolve
from simulator.scenario.schema import Scenario
from simulator.scenario.setup import Setup
from simulator.scenario.yaml_input import (
    MAX_DEPTH,
    InputLimitError,
    describe_yaml_error,
    parse_yaml,
    read_yaml_file,
)

MAX_CATALOGUE_FILES = 16  # each file may hold any number of GPUs and models; this bounds the reading
MAX_PATH_SHOWN = 1024  # characters of a file path echoed in a message (paths may be long)


def read_scenario_file(path: str | Path) -> dict[str, Any]:
    """The raw mapping in a scenario file; ConfigError for a missing, unreadable, oversized, empty or
    broken file (yaml_input.py bounds what a hostile file can cost)."""
    label = printable(str(path), MAX_PATH_SHOWN)
    data = read_yaml_file(Path(path), label)
    if data is None:
        raise ConfigError([f"{label}: the file is empty"])
    if not isinstance(data, dict):
        raise ConfigError([f"{label}: a scenario must be a mapping of sections, got {type(data).__name__}"])
    return _deep_copy(data)


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `key.path=value` strings (value parsed as YAML, within the limits of a file) to a copy of `raw`."""
    data = _deep_copy(raw)
    problems = []
    for item in overrides:
        key, sep, value = item.partition("=")
        parts = key.strip().split(".")
        if not sep or not key.strip():
            problems.append(f"--set {printable(item)}: expected key.path=value")
        elif len(parts) > MAX_DEPTH:
            problems.append(f"--set {printable(key)}: a key path of more than {MAX_DEPTH} levels")
        elif problem := _set(data, parts, value):
            problems.append(problem)
    if problems:
        raise ConfigError(problems)
    return data


def _set(data: dict[str, Any], parts: list[str], value: str) -> str | None:
    """Put one --set value at its key path; the problem as text, or None."""
    node = data
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            return f"{printable('.'.join(parts[: i + 1]))}: is a value, cannot set {printable('.'.join(parts))}"
        node = child
    try:
        node[parts[-1]] = parse_value(value)
    except InputLimitError as exc:
        return f"--set {printable('.'.join(parts))}: {describe_yaml_error(exc)}"
    return None


def parse_value(text: str) -> Any:
    """A value given on the command line (`--set`, `--sweep`) as YAML, within the limits of a file
    (InputLimitError past them); empty is None, and text that is not YAML (`a: b`) is the text itself."""
    if not text.strip():
        return None
    try:
        return parse_yaml(text)
    except InputLimitError:
        raise
    except yaml.YAMLError:
        return text


def _deep_copy(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: _deep_copy(v) for k, v in d.items()}
    if isinstance(d, list):
        return [_deep_copy(v) for v in d]
    return d


def validate(raw: dict[str, Any]) -> Scenario:
    """Schema validation; every pydantic error becomes one 'key.path: message' line."""
    try:
        return Scenario.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError([_describe(err) for err in exc.errors()]) from None


def _describe(err: Any) -> str:
    """One pydantic error as 'key.path: message (got value)'; keys and values as the user wrote them,
    control characters escaped and long values cut (a hostile key must not drive the terminal)."""
    path = printable(".".join(str(p) for p in _key_path(err["loc"]))) or "(top level)"
    kind = err["type"]
    if kind == "extra_forbidden":
        return f"{path}: unknown key"
    if kind == "missing":
        return f"{path}: required key is missing"
    if kind in ("model_type", "dict_type"):
        return f"{path}: expected a mapping of keys, got {printable(repr(err.get('input')))}"
    given = err.get("input")
    shown = f" (got {printable(repr(given))})" if not isinstance(given, dict | list) else ""
    msg = err["msg"]
    return f"{path}: {msg[:1].lower()}{msg[1:]}{shown}"


def _key_path(loc: tuple[Any, ...]) -> list[Any]:
    """The key path of a pydantic error location, without the validator steps pydantic adds for
    annotated and optional types (`function-before[...]`, `int`, `[key]`)."""
    return [p for p in loc if not (isinstance(p, str) and (p.startswith("function-") or p == "[key]"))]


def merge_catalogue_files(raw: dict[str, Any], base: Path) -> dict[str, Any]:
    """Fold the entries of `catalogue.files` (YAML with `gpus:` and/or `models:` mappings) into the
    scenario's inline catalogue; inline entries win. Paths are relative to the scenario file."""
    section = raw.get("catalogue")
    if not isinstance(section, dict) or not section.get("files"):
        return raw
    files = section["files"]
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        raise ConfigError(["catalogue.files: expected a list of file paths"])
    if len(files) > MAX_CATALOGUE_FILES:
        raise ConfigError([f"catalogue.files: more than {MAX_CATALOGUE_FILES} files"])
    merged: dict[str, dict[str, Any]] = {"gpus": {}, "models": {}}
    problems = []
    for name in files:
        label = f"catalogue.files: {printable(name, MAX_PATH_SHOWN)}"
        try:
            data = read_yaml_file(base / name, label) or {}
        except ConfigError as exc:
            problems += exc.problems
            continue
        if not isinstance(data, dict) or set(data) - {"gpus", "models"}:
            problems.append(f"{label}: must hold only `gpus:` and `models:` mappings")
            continue
        for kind in ("gpus", "models"):
            entries = data.get(kind) or {}
            if not isinstance(entries, dict):
                problems.append(f"{label}: `{kind}:` must be a mapping of names to entries")
                continue
            merged[kind].update(_deep_copy(entries))
    if problems:
        raise ConfigError(problems)
    inline = {kind: section.get(kind) or {} for kind in ("gpus", "models")}
    if not all(isinstance(v, dict) for v in inline.values()):
        return raw  # the schema reports the inline section that is not a mapping
    out = dict(raw)
    out["catalogue"] = {**section, **{kind: {**merged[kind], **inline[kind]} for kind in inline}}
    return out


def load_raw(path: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """The scenario file as a mapping: `--set` overrides applied, `catalogue.files` and
    `model.hf_config` folded in (so the mapping stands alone, e.g. on a Dask worker that has not got
    the files)."""
    raw = apply_overrides(read_scenario_file(path), overrides or [])
    base = Path(path).resolve().parent
    return fold_hf_config(merge_catalogue_files(raw, base), base)


def load_setup(path: str | Path, overrides: list[str] | None = None) -> Setup:
    """The whole input pipeline for `simulator run`."""
    return resolve(validate(load_raw(path, overrides)))


def setup_from_mapping(raw: dict[str, Any], overrides: list[str] | None = None, base: Path | None = None) -> Setup:
    """Same as load_setup for an in-memory scenario (tests, search, validation files); a
    `model.hf_config` path is relative to `base` (default: the working directory)."""
    return resolve(validate(fold_hf_config(apply_overrides(raw, overrides or []), base or Path.cwd())))
