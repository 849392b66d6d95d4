"""Reading user YAML safely: bounded file size, nesting depth and alias expansion, so that a hostile or
broken file (a device, a FIFO, a "billion laughs" alias bomb, 20,000 nested brackets) is one input
error naming the file, never a hang, a memory blow-up or a traceback."""

import os
import stat
from pathlib import Path
from typing import Any

import yaml

from simulator.scenario.errors import ConfigError

MAX_FILE_BYTES = 4 * 2**20  # 4 MiB: ~100x the largest catalogue file; a scenario is ~1 kB
MAX_DEPTH = 32  # nesting levels; the deepest key, catalogue.gpus.NAME.peak_tflops.fp8, is 5
MAX_NODES = 100_000  # values after alias expansion; a scenario has ~100, a catalogue ~1,000


class InputLimitError(yaml.YAMLError):
    """The text breaks a limit (depth, size after expanding aliases, a self-referring alias)."""


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that (1) refuses nesting deeper than MAX_DEPTH and documents that expand to more
    than MAX_NODES values or contain an alias inside its own anchor, counting while composing, before
    anything is constructed or copied; (2) rejects a key written twice in one mapping: PyYAML would
    keep the last one and silently drop the first (a whole section, for a repeated `parallelism:`)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._sizes: dict[int, int] = {}  # id(node) -> values it stands for, aliases expanded

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        alias = self.check_event(yaml.AliasEvent)
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise InputLimitError(f"nested deeper than {MAX_DEPTH} levels")
        node = super().compose_node(parent, index)
        self._depth -= 1
        if alias:
            if id(node) not in self._sizes:  # its anchor is still being composed: `a: &x [*x]`
                raise InputLimitError("a YAML alias refers to its own anchor (recursive structure)")
            return node
        size = 1 + sum(self._sizes[id(child)] for child in _children(node))
        if size > MAX_NODES:
            raise InputLimitError(f"more than {MAX_NODES:,} values once YAML aliases are expanded")
        self._sizes[id(node)] = size
        return node

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


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def parse_yaml(text: str) -> Any:
    """The data in YAML text, within the limits above. Raises yaml.YAMLError (InputLimitError for a
    broken limit), with the problem and, where known, its line."""
    if len(text) > MAX_FILE_BYTES:
        raise InputLimitError(f"longer than {MAX_FILE_BYTES // 2**20} MiB")
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_data()
    except ValueError as exc:  # e.g. an integer of more digits than Python converts (int_max_str_digits)
        raise InputLimitError(f"a value cannot be read ({str(exc).split(':')[0]})") from None
    finally:
        loader.dispose()


def describe_yaml_error(exc: yaml.YAMLError) -> str:
    """'not valid YAML (line 3): ...' or the broken limit, for a message that names the file."""
    if isinstance(exc, InputLimitError):
        return f"refused: {exc}"
    where = getattr(exc, "problem_mark", None)
    line = f" (line {where.line + 1})" if where is not None else ""
    problem = getattr(exc, "problem", None) or "invalid YAML"
    return f"not valid YAML{line}: {problem}"


def read_text_bounded(
    path: Path, label: str, max_bytes: int = MAX_FILE_BYTES, kind: str = "a scenario or catalogue file"
) -> str:
    """The text of a regular file of at most `max_bytes`; ConfigError (naming `label`) otherwise.
    Devices and FIFOs are refused before they are opened (reading /dev/zero never ends; opening a
    FIFO blocks until someone writes to it); at most `max_bytes` + 1 bytes are ever read. `kind`
    names what the file should have been, for the messages."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ConfigError([f"{label}: no such file"]) from None
    except OSError as exc:
        raise ConfigError([f"{label}: cannot read ({exc.strerror or exc})"]) from None
    if stat.S_ISDIR(info.st_mode):
        raise ConfigError([f"{label}: is a directory, not a file"])
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError([f"{label}: not a regular file (a device, FIFO or socket); give {kind}"])
    try:
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise ConfigError([f"{label}: cannot read ({exc.strerror or exc})"]) from None
    if len(data) > max_bytes:
        raise ConfigError([f"{label}: larger than {max_bytes // 2**20} MiB; not {kind}"])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{label}: not UTF-8 text (byte {exc.start})"]) from None


def read_yaml_file(path: Path, label: str) -> Any:
    """The data in a YAML file, read within every limit above; ConfigError naming `label`."""
    text = read_text_bounded(path, label)
    try:
        return parse_yaml(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{label}: {describe_yaml_error(exc)}"]) from None
