"""YAML file (+ --set overrides) -> validated Scenario -> resolved Setup, or one ConfigError."""

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from simulator.scenario.errors import ConfigError
from simulator.scenario.resolve import resolve
from simulator.scenario.schema import Scenario
from simulator.scenario.setup import Setup


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key written twice in one mapping: PyYAML would keep the last one
    and silently drop the first (a whole section, for a repeated `parallelism:`)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor` may be overridden by design
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # unhashable key: the base class reports it
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        return super().construct_mapping(node, deep)


def read_scenario_file(path: str | Path) -> dict[str, Any]:
    """The raw mapping in a scenario file; ConfigError for a missing, unreadable, empty or broken file."""
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such file"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read ({exc})"]) from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError([f"{path}: not valid YAML{line}: {problem}"]) from None
    if data is None:
        raise ConfigError([f"{path}: the file is empty"])
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: a scenario must be a mapping of sections, got {type(data).__name__}"])
    try:
        return _deep_copy(data)
    except RecursionError:  # an alias inside its own anchor (`a: &x [*x]`)
        raise ConfigError([f"{path}: a YAML alias refers to its own anchor (recursive structure)"]) from None


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `key.path=value` strings (value parsed as YAML) to a copy of `raw`."""
    data = _deep_copy(raw)
    problems = []
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            problems.append(f"--set {item}: expected key.path=value")
            continue
        parts = key.strip().split(".")
        node = data
        for i, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                problems.append(f"{'.'.join(parts[: i + 1])}: is a value, cannot set {key}")
                break
            node = child
        else:
            try:
                node[parts[-1]] = yaml.safe_load(value) if value.strip() else None
            except yaml.YAMLError:
                node[parts[-1]] = value
    if problems:
        raise ConfigError(problems)
    return data


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
    path = ".".join(str(p) for p in err["loc"]) or "(top level)"
    kind = err["type"]
    if kind == "extra_forbidden":
        return f"{path}: unknown key"
    if kind == "missing":
        return f"{path}: required key is missing"
    if kind in ("model_type", "dict_type"):
        return f"{path}: expected a mapping of keys, got {err.get('input')!r}"
    given = err.get("input")
    shown = f" (got {given!r})" if not isinstance(given, dict | list) else ""
    return f"{path}: {err['msg'].lower()}{shown}"


def merge_catalogue_files(raw: dict[str, Any], base: Path) -> dict[str, Any]:
    """Fold the entries of `catalogue.files` (YAML with `gpus:` and/or `models:` mappings) into the
    scenario's inline catalogue; inline entries win. Paths are relative to the scenario file."""
    section = raw.get("catalogue")
    if not isinstance(section, dict) or not section.get("files"):
        return raw
    files = section["files"]
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        raise ConfigError(["catalogue.files: expected a list of file paths"])
    merged = {"gpus": {}, "models": {}}
    problems = []
    for name in files:
        path = base / name
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            problems.append(f"catalogue.files: cannot read {name} ({type(exc).__name__})")
            continue
        if not isinstance(data, dict) or set(data) - {"gpus", "models"}:
            problems.append(f"catalogue.files: {name} must hold only `gpus:` and `models:` mappings")
            continue
        for kind in ("gpus", "models"):
            merged[kind].update(data.get(kind) or {})
    if problems:
        raise ConfigError(problems)
    out = dict(raw)
    out["catalogue"] = {
        **section,
        "gpus": {**merged["gpus"], **(section.get("gpus") or {})},
        "models": {**merged["models"], **(section.get("models") or {})},
    }
    return out


def load_raw(path: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """The scenario file as a mapping: `--set` overrides applied, `catalogue.files` folded in (so the
    mapping stands alone, e.g. on a Dask worker that has not got the files)."""
    raw = apply_overrides(read_scenario_file(path), overrides or [])
    return merge_catalogue_files(raw, Path(path).resolve().parent)


def load_setup(path: str | Path, overrides: list[str] | None = None) -> Setup:
    """The whole input pipeline for `simulator run`."""
    return resolve(validate(load_raw(path, overrides)))


def setup_from_mapping(raw: dict[str, Any], overrides: list[str] | None = None) -> Setup:
    """Same as load_setup for an in-memory scenario (tests, search, validation files)."""
    return resolve(validate(apply_overrides(raw, overrides or [])))
