"""Typed configs: dataclass schemas filled from YAML, JSON or command-line values with OmegaConf structured configs.

The one mechanism behind every config the package reads: the training run config (`train.config.RunConfig`, with
its `model.rmt` section checked against `config.RMTConfig` and its `data.args` against the task's own config
class), the pretraining corpus config (`pretrain.corpus_config.CorpusConfig`) and the downstream task options
(`tasks.make_task`). The schema is a plain dataclass; OmegaConf (https://omegaconf.readthedocs.io, "Structured
configs") checks and converts the values against its type hints. What OmegaConf decides:

- an unknown key is an error (we add the closest known key and the list of known keys);
- a value is converted to the declared type where the conversion is exact: an int for a float field, number text
  for a number (YAML 1.1 reads `1e-4` as text), `true`/`yes`/`1` for a bool, any scalar or path for a str;
  a float for an int field, a bool for a number and text that is no number are errors;
- `None` only where the hint is Optional; a required field (no default) left out is an error.

What we add (OmegaConf does neither):

- a single value where a list or tuple is expected is a list of one (`fasta_paths: genome.fa`, `valid: chr20:...`);
- every error is one line, `<source>: <dotted key>: <problem>` (OmegaConf's messages span several lines and, for
  tuple fields, name no key).

Errors are raised as the caller's exception class (RunConfigError, CorpusError, ...), a ValueError subclass.
"""
from __future__ import annotations

import dataclasses
import difflib
import inspect
import re
import sys
import typing
from pathlib import Path
from typing import Any, Mapping, Sequence, TypeVar

import yaml
from omegaconf import DictConfig, OmegaConf, SCMode
from omegaconf.errors import (ConfigKeyError, MissingMandatoryValue, OmegaConfBaseException, UnsupportedValueType,
                              ValidationError)

T = TypeVar("T")

_INDEX = re.compile(r"\[(\d+)\]")


def build(schema: type[T], values: Mapping[str, Any], source: str, error: type[Exception] = ValueError,
          prefix: str = "") -> T:
    """An instance of the dataclass `schema` from loosely typed `values` (a YAML/JSON mapping).

    source: the file (or "config", "options", ...) named first in error messages; prefix: the dotted position of
    this section in a larger config (e.g. "data.args."), named in error messages. The schema's own checks
    (`__post_init__` raising ValueError) become errors of the same one-line form. Raises `error`.
    """
    merged = _merge(schema, values, source, error, prefix)
    try:
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as err:
        raise _one_line(err, schema, values, source, error, prefix) from None
    except (ValueError, TypeError) as err:
        raise error(f"{source}: {prefix.rstrip('.') or 'config'}: {err}") from None


def check(schema: type, values: Mapping[str, Any], source: str, error: type[Exception] = ValueError,
          prefix: str = "", construct: bool = True) -> dict[str, Any]:
    """The keys given in `values`, with their values checked and converted against `schema`, as a plain dict.

    For sections that keep only what the user wrote (a task's options: `make_task` fills what is absent), so that
    the saved config stays what was given. construct=True also builds the schema once, so its own checks run.
    Lists and tuples come back as lists, nested dataclasses as dicts. Raises `error`.
    """
    merged = _merge(schema, values, source, error, prefix)
    if construct:
        build(schema, values, source, error, prefix)
    try:
        plain = OmegaConf.to_container(merged, resolve=True, structured_config_mode=SCMode.DICT)
    except OmegaConfBaseException as err:
        raise _one_line(err, schema, values, source, error, prefix) from None
    return _given(plain, values)


def constructor_schema(cls: type, exclude: Sequence[str] = ()) -> type:
    """A dataclass schema of the keyword parameters of `cls(...)`, every one optional (None: not given) and typed by
    its annotation (Any where there is none); for checking the keys and types of an open section (`model.config`)
    against a class that reads it, whether that class is a dataclass or not (a transformers PretrainedConfig).
    """
    namespaces = [vars(sys.modules[klass.__module__]) for klass in cls.__mro__ if klass.__module__ in sys.modules]
    fields = []
    for name, parameter in inspect.signature(cls.__init__).parameters.items():
        if name == "self" or name in exclude or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        hint = _resolve(parameter.annotation, namespaces)
        fields.append((name, Any if hint is Any else typing.Optional[hint], dataclasses.field(default=None)))
    return dataclasses.make_dataclass(f"{cls.__name__}Keys", fields)


def _resolve(annotation: Any, namespaces: list[dict[str, Any]]) -> Any:
    """A parameter annotation as a type OmegaConf can check; Any where it cannot be resolved (a name not
    importable here) or OmegaConf cannot express it (a union of containers, torch.dtype): only the key is
    checked then."""
    if annotation is inspect.Parameter.empty:
        return Any
    hint = annotation
    if isinstance(annotation, str):
        for namespace in namespaces:
            try:
                hint = eval(annotation, dict(namespace))  # noqa: S307 - an annotation of our own config class
                break
            except Exception:
                continue
        else:
            return Any
    try:
        OmegaConf.structured(dataclasses.make_dataclass("Probe", [("value", typing.Optional[hint], None)]))
    except Exception:
        return Any
    return hint


def load_yaml_mapping(path: str | Path, error: type[Exception] = ValueError) -> dict[str, Any]:
    """The top-level mapping of a YAML file; a missing file, bad YAML (with its line) or a non-mapping is `error`."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        raise error(f"{path}: {where}invalid YAML: {getattr(err, 'problem', err)}") from None
    if not isinstance(data, dict):
        raise error(f"{path}: expected a mapping at the top level")
    return data


def apply_overrides(data: dict[str, Any], overrides: Sequence[str], error: type[Exception] = ValueError,
                    source: str = "config") -> dict:
    """`data` (read from `source`) with command-line overrides `section.key=value` merged in (values read as YAML,
    OmegaConf dot-list). Returns a new plain dict; `data` is not changed.
    """
    if not overrides:
        return dict(data)
    try:
        merged = OmegaConf.create(data)
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None)
        raise error(f"{source}: {key + ': ' if key else ''}{_first_line(err)}") from None
    for item in overrides:
        key, sep, _ = item.partition("=")
        if not sep or not key.strip():
            raise error(f"override {item!r} is not of the form section.key=value")
        try:
            merged = OmegaConf.merge(merged, OmegaConf.from_dotlist([item]))
        except (OmegaConfBaseException, yaml.YAMLError) as err:
            raise error(f"override {item!r}: {_first_line(err)}") from None
    return OmegaConf.to_container(merged)


def type_name(hint: Any) -> str:
    """A readable name of a type hint: `int`, `list[float]`, `str or None`."""
    args = typing.get_args(hint)
    if _is_union(hint):
        return " or ".join("None" if a is type(None) else type_name(a) for a in args)
    origin = typing.get_origin(hint)
    if origin is not None:
        inner = ", ".join("..." if a is Ellipsis else type_name(a) for a in args)
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]" if inner else origin.__name__
    return getattr(hint, "__name__", str(hint))


# ---- internals ---------------------------------------------------------------------------------------------------
def _merge(schema: type, values: Mapping[str, Any], source: str, error: type[Exception], prefix: str) -> DictConfig:
    if not isinstance(values, Mapping):
        raise error(f"{source}: {prefix.rstrip('.') or 'config'} must be a mapping, got {values!r}")
    _refuse_booleans_as_text(schema, values, source, error, prefix)
    values = _listify(schema, dict(values))
    try:
        return OmegaConf.merge(OmegaConf.structured(schema), values)
    except OmegaConfBaseException as err:
        raise _one_line(err, schema, values, source, error, prefix) from None


def _refuse_booleans_as_text(schema: type, values: Mapping[str, Any], source: str, error: type[Exception],
                             prefix: str) -> None:
    """A text field given a boolean is refused: YAML reads an unquoted yes / no / on / off / true / false as one, and
    OmegaConf would turn it into the text "True" (a name, a path) without a word."""
    hints = _hints(schema)
    for key, value in values.items():
        hint = _strip_optional(hints.get(key))
        items = [(f"{prefix}{key}", value)] if hint is str else []
        if typing.get_origin(hint) in (list, tuple) and typing.get_args(hint)[:1] == (str,):
            # a list of text given one boolean (`test: no`) would become ["False"] as well
            items = ([(f"{prefix}{key}[{index}]", item) for index, item in enumerate(value)]
                     if isinstance(value, (list, tuple)) else [(f"{prefix}{key}", value)])
        for where, item in items:
            if isinstance(item, bool):
                raise error(f"{source}: {where}: expected text, got the boolean {str(item).lower()} (YAML reads "
                            "unquoted yes/no/on/off/true/false as booleans: quote the value)")
        if dataclasses.is_dataclass(hint) and isinstance(value, Mapping):
            _refuse_booleans_as_text(hint, value, source, error, f"{prefix}{key}.")


def _listify(schema: type, values: dict[str, Any]) -> dict[str, Any]:
    """Single values where the schema expects a list or tuple become lists of one, at every nesting level."""
    hints = _hints(schema)
    for key, value in values.items():
        hint = _strip_optional(hints.get(key))
        if hint is None or value is None:
            continue
        if typing.get_origin(hint) in (list, tuple) and isinstance(value, (str, int, float, Path)):
            values[key] = [value]
        elif dataclasses.is_dataclass(hint) and isinstance(value, Mapping):
            values[key] = _listify(hint, dict(value))
    return values


def _one_line(err: OmegaConfBaseException, schema: type, values: Mapping[str, Any], source: str,
              error: type[Exception], prefix: str) -> Exception:
    key = getattr(err, "full_key", None) or ""
    if not key:
        # OmegaConf names no key for some errors (tuple fields): find the first top-level key that fails alone.
        for name in values:
            try:
                OmegaConf.merge(OmegaConf.structured(schema), {name: values[name]})
            except OmegaConfBaseException:
                hint = _hints(schema).get(name)
                got = values[name]
                return error(f"{source}: {prefix}{name}: expected {type_name(hint)}, got {got!r}")
        return error(f"{source}: {prefix.rstrip('.') or 'config'}: {_first_line(err)}")
    where = prefix + key
    parent, _, last = key.rpartition(".")
    if isinstance(err, ConfigKeyError) and not isinstance(err, MissingMandatoryValue):
        section = _schema_at(schema, parent)
        known = sorted(_hints(section)) if section is not None else []
        close = difflib.get_close_matches(last, known, n=1)
        return error(f"{source}: unknown key {where}" + (f" (did you mean {close[0]}?)" if close else "")
                     + (f"; known: {', '.join(known)}" if known else ""))
    if isinstance(err, MissingMandatoryValue):
        return error(f"{source}: {where} is required")
    if isinstance(err, (ValidationError, UnsupportedValueType)):
        found, got = _lookup(values, key)
        hint = _hint_at(schema, key)
        if found and hint is not None:
            return error(f"{source}: {where}: expected {type_name(hint)}, got {got!r}")
    return error(f"{source}: {where}: {_first_line(err)}")


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _hints(schema: Any) -> dict[str, Any]:
    if not (isinstance(schema, type) and dataclasses.is_dataclass(schema)):
        return {}
    hints = typing.get_type_hints(schema)
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(schema)}


def _is_union(hint: Any) -> bool:
    import types

    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def _strip_optional(hint: Any) -> Any:
    if _is_union(hint):
        rest = [a for a in typing.get_args(hint) if a is not type(None)]
        return rest[0] if len(rest) == 1 else hint
    return hint


def _parts(key: str) -> list[str]:
    return [p for p in _INDEX.sub(r".\1", key).split(".") if p]


def _schema_at(schema: Any, key: str) -> Any:
    """The dataclass at dotted `key` below `schema` (None where the path leaves the dataclasses)."""
    node = schema
    for part in _parts(key):
        node = _strip_optional(_hints(node).get(part))
        if node is None:
            return None
    return node if dataclasses.is_dataclass(node) else None


def _hint_at(schema: Any, key: str) -> Any:
    node: Any = schema
    for part in _parts(key):
        node = _strip_optional(node)
        if dataclasses.is_dataclass(node):
            node = _hints(node).get(part)
        elif typing.get_origin(node) in (list, tuple, dict):
            args = [a for a in typing.get_args(node) if a is not Ellipsis]
            node = args[-1] if args else Any
        else:
            return None
        if node is None:
            return None
    return node


def _lookup(values: Any, key: str) -> tuple[bool, Any]:
    node = values
    for part in _parts(key):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False, None
    return True, node


def _given(plain: Any, values: Any) -> Any:
    """`plain` (converted values, defaults filled in) cut down to the keys present in `values`, at every level."""
    if isinstance(values, Mapping) and isinstance(plain, Mapping):
        return {key: _given(plain[key], value) for key, value in values.items() if key in plain}
    return _plain(plain)


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
