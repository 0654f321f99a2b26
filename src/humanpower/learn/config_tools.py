"""Generic helpers for flat config dataclasses: field type checks, ``--key-name value`` parsing, field docs.

They work for any dataclass whose fields are ``bool``, ``int``, ``float``, ``str`` or ``X | None`` of those,
and whose fields carry attribute docstrings (a string literal right under the field). :mod:`.config` uses
them for :class:`~humanpower.learn.config.Phase2Config`.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import inspect
import math
import textwrap
import types
import typing
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from humanpower.errors import ConfigError

MAX_CONFIG_FILE_BYTES = 1_000_000
"""Largest config file read (a full config with comments is about 10 kB)."""

_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no")


def split_optional(tp: Any) -> tuple[type, bool]:
    """``int | None`` -> ``(int, True)``; ``int`` -> ``(int, False)``."""
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"unsupported config field type {tp!r}")
        return args[0], True
    return tp, False


def type_phrase(tp: Any) -> str:
    """Human wording of a field type, e.g. ``an integer or none``."""
    base, optional = split_optional(tp)
    name = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}[base]
    return name + (" or none" if optional else "")


def check_type(name: str, value: Any, tp: Any) -> Any:
    """Return ``value`` if it has the field type (ints widened to float for float fields), else raise.

    Floats must be finite; ``bool`` is not accepted as an int.
    """
    base, optional = split_optional(tp)
    if value is None and optional:
        return None
    ok = False
    if base is bool:
        ok = isinstance(value, bool)
    elif base is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif base is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        value = float(value) if ok else value
    elif base is str:
        ok = isinstance(value, str)
    if not ok:
        raise ConfigError(f"{name}: must be {type_phrase(tp)}, got {value!r}")
    return value


def coerce_yaml_value(name: str, value: Any, tp: Any) -> Any:
    """YAML spellings the config accepts beyond plain YAML types.

    YAML 1.1 reads ``1e-3`` (no dot) as a string: such strings are accepted for float fields. ``none`` (any
    case; the spelling of the command line and of the docs' default column) means null for optional fields.
    """
    base, optional = split_optional(tp)
    if optional and isinstance(value, str) and value.strip().lower() in ("none", "null"):
        return None
    if base is float and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"{name}: must be {type_phrase(tp)}, got {value!r}") from None
    return value


class _DuplicateKeyLoader(yaml.SafeLoader):
    """A SafeLoader that refuses duplicate mapping keys (PyYAML keeps the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, list | dict | set):
                continue  # unhashable: PyYAML itself refuses it below with its line
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _compose_and_construct(text: str) -> tuple[yaml.Node | None, Any]:
    """The root node and the constructed document (duplicate keys refused); YAML errors propagate."""
    loader = _DuplicateKeyLoader(text)
    try:
        node = loader.get_single_node()
        return node, None if node is None else loader.construct_document(node)
    finally:
        loader.dispose()


def read_flat_yaml(path: Path) -> tuple[dict[str, Any], dict[str, int]]:
    """Read a flat YAML mapping: ``({key: value}, {key: line})``; ``{}`` for an empty file.

    Every problem raises :class:`ConfigError` with one line starting ``FILE`` or ``FILE:LINE``: an unreadable
    file, a file over :data:`MAX_CONFIG_FILE_BYTES`, bytes that are not UTF-8 text (a binary file), YAML syntax
    errors, duplicate keys, a document that is not a mapping, keys that are not names.
    """
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_FILE_BYTES:
            raise ConfigError(
                f"{path}: the file has {size:,} bytes, more than the {MAX_CONFIG_FILE_BYTES:,} a config file may have"
            )
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not a UTF-8 text file (byte 0x{raw[exc.start]:02x} at offset {exc.start}); a config is "
            f"a YAML text file"
        ) from None
    try:
        node, data = _compose_and_construct(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError(f"{where}: YAML syntax error: {_one_line(exc.problem or exc)}") from None
    except yaml.YAMLError as exc:  # e.g. a reader error: control characters in the text
        raise ConfigError(f"{path}: YAML error: {_one_line(exc)}") from None
    if data is None:
        return {}, {}
    if not isinstance(node, yaml.MappingNode) or not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys (key: value), got {type(data).__name__}")
    lines: dict[str, int] = {}
    for key_node, _ in node.value:
        line = int(key_node.start_mark.line) + 1
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != "tag:yaml.org,2002:str":
            raise ConfigError(f"{path}:{line}: config keys must be names, got {_one_line(key_node.value)[:60]!r}")
        lines[str(key_node.value)] = line
    return data, lines


def suggest(key: str, known: Iterable[str], prefix: str = "") -> str:
    """`` (did you mean 'x'?)`` for the closest known name, or an empty string."""
    close = difflib.get_close_matches(key, sorted(known), n=1)
    if not close:
        return ""
    shown = f"{prefix}{close[0]}" if prefix else repr(close[0])
    return f" (did you mean {shown}?)"


def parse_value(flag: str, raw: str, tp: Any) -> Any:
    """Convert one command-line string to the field type; errors name ``flag``."""
    base, optional = split_optional(tp)
    text = raw.strip()
    if optional and text.lower() in ("none", "null"):
        return None
    bad = ConfigError(f"{flag}: expected {type_phrase(tp)}, got {raw!r}")
    if base is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise bad
    try:
        if base is int:
            return int(text)
        if base is float:
            value = float(text)
            if not math.isfinite(value):
                raise bad
            return value
    except ValueError:
        raise bad from None
    return raw


def parse_flag_overrides(argv: Sequence[str], hints: dict[str, Any]) -> dict[str, Any]:
    """``["--key-name", "v", "--other=w"]`` -> ``{"key_name": typed v, "other": typed w}`` per ``hints``.

    Raises :class:`ConfigError` naming the flag for an unknown flag, a missing value or a bad value.
    """
    out: dict[str, Any] = {}
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or len(arg) == 2:
            raise ConfigError(f"{arg}: expected an option of the form --key-name VALUE")
        flag, eq, inline = arg.partition("=")
        name = flag[2:].replace("-", "_")
        if name not in hints:
            dashed = [k.replace("_", "-") for k in hints]
            raise ConfigError(f"{flag}: unknown option{suggest(flag[2:], dashed, prefix='--')}")
        if eq:
            raw, i = inline, i + 1
        elif i + 1 < len(args):
            raw, i = args[i + 1], i + 2
        else:
            raise ConfigError(f"{flag}: missing value")
        out[name] = parse_value(flag, raw, hints[name])
    return out


def attribute_docstrings(cls: type) -> dict[str, tuple[str, str]]:
    """``{field: (annotation source text, docstring with whitespace collapsed)}`` read with ``ast``."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    node = tree.body[0]
    if not isinstance(node, ast.ClassDef):
        raise TypeError(f"{cls.__name__}: source is not a class definition")
    out: dict[str, tuple[str, str]] = {}
    body = node.body
    for stmt, nxt in zip(body, [*body[1:], None], strict=True):
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            doc = ""
            value = nxt.value if isinstance(nxt, ast.Expr) else None
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                doc = " ".join(value.value.split())
            out[stmt.target.id] = (ast.unparse(stmt.annotation), doc)
    return out


def dataclass_field_docs(cls: type) -> list[tuple[str, str, Any, str]]:
    """``(name, type text, default, doc)`` per dataclass field, in declaration order."""
    docs = attribute_docstrings(cls)
    return [(f.name, docs[f.name][0], f.default, docs[f.name][1]) for f in dataclasses.fields(cls)]


def format_default(value: Any) -> str:
    """A default value as it would be written in YAML / on the command line."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def markdown_table(rows: Iterable[tuple[str, str, Any, str]]) -> list[str]:
    """Lines of a Markdown table ``Field | Type | Default | Meaning`` (pipes in cells escaped)."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| Field | Type | Default | Meaning, unit, range |", "|---|---|---|---|"]
    for name, type_text, default, doc in rows:
        lines.append(f"| `{name}` | {cell(type_text)} | `{format_default(default)}` | {cell(doc)} |")
    return lines
