"""One validator for the configuration files: recipes (pipelines/recipe.py) and training configs (training/config.py).

A configuration is a tree of plain dataclasses. Their fields say what a value may be: the type, a range as
`Annotated[int, Field(ge=1)]`, choices as `Literal[...]`, a language code as `schemas.language_codes.LanguageCode`;
a class's `__post_init__` checks what concerns several of its fields. pydantic checks a mapping (a YAML file, a
command-line value) against such a tree, all of it before any work starts, and every problem becomes one line
that names where the value came from (a file, an option) and its key path, with close matches for a misspelt key:

    recipes/x.yaml: filters.lenght: unknown key; did you mean filters.length?
    --max-length-ratio: must be at least 1, got -1.0

A class opts in to unknown-key errors with `__pydantic_config__ = STRICT_KEYS`; the objects stay plain
dataclasses (`dataclasses.asdict` and construction in code work as before, without validation). What a field means
is its attribute docstring, the string right under it (`field_docs`), which help texts read.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import ConfigDict, TypeAdapter, ValidationError

STRICT_KEYS = ConfigDict(extra="forbid")
# Training configs have always taken a number where text is expected (`data.config: 2024`).
STRICT_KEYS_NUMBERS_AS_TEXT = ConfigDict(extra="forbid", coerce_numbers_to_str=True)
UNKNOWN_KEY = ("unexpected_keyword_argument", "extra_forbidden")
NULL_WORDS = ("null", "none", "~")


class ConfigError(ValueError):
    """A bad configuration: one line naming the file or option and the key."""


def key_path(loc: typing.Sequence) -> str:
    """("parallel", 1, "columns") -> "parallel[1].columns"."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f"{'.' if text else ''}{part}"
    return text


def located(source: str, key: str, message: str) -> str:
    return ": ".join(part for part in (source, key, message) if part)


def read_yaml(path: str | Path, error: type[ConfigError] = ConfigError) -> Any:
    """The YAML document in `path`; a syntax error names the file and line (safe_load: no objects are built)."""
    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f", line {mark.line + 1}" if mark else ""
        raise error(f"{path}{line}: not valid YAML: {getattr(e, 'problem', None) or e}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise error(f"{path}: cannot read: {e}") from None


@functools.lru_cache(maxsize=None)
def _class_adapter(cls) -> TypeAdapter:
    return TypeAdapter(cls)


def _adapter(kind) -> TypeAdapter:
    """Adapters of classes are kept (building one walks the whole tree); an annotation of one field is cheap."""
    return _class_adapter(kind) if isinstance(kind, type) else TypeAdapter(kind)


def check(kind, data: Any, source: str = "", prefix: tuple = (), error: type[ConfigError] = ConfigError) -> Any:
    """`data` validated as `kind` (a dataclass or any annotated type); `prefix` is where `data` sits in its file."""
    try:
        return _adapter(kind).validate_python(data)
    except ValidationError as e:
        raise error(describe(_deepest(e.errors()), kind, source, prefix)) from None


def _is_key(part) -> bool:
    """Whether a part of a pydantic location is a key or an index, not the tag of a union's member
    ("literal['all']", "list[function-after[...]]")."""
    return isinstance(part, int) or not any(c in part for c in "[(")


def _deepest(errors: list[dict]) -> dict:
    """The error to report: of a value that fits no member of a union, the one that got furthest into it (a list
    of codes with one bad code: that code, not "not 'all'")."""
    for error in errors:
        error["loc"] = tuple(part for part in error["loc"] if _is_key(part))
    return max(errors, key=lambda error: len(error["loc"]))


def field_types(cls) -> dict[str, Any]:
    """A dataclass's fields and their annotations (with Annotated ranges kept)."""
    hints = typing.get_type_hints(cls, include_extras=True)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


@functools.cache
def field_docs(cls) -> dict[str, str]:
    """Each field's attribute docstring (the string literal right under the field in the class body), whitespace
    folded: what the field means, written once beside it and read by help texts."""
    import ast
    import inspect
    import textwrap

    body = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0].body
    docs = {}
    for node, after in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(after, ast.Expr) \
                and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str):  # fmt: skip
            docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def _plain(kind):
    """The dataclass, dict or list inside an annotation (Annotated, X | None), or the annotation itself."""
    while True:
        if typing.get_origin(kind) is typing.Annotated:
            kind = typing.get_args(kind)[0]
        elif typing.get_origin(kind) in (typing.Union, types.UnionType):
            inner = [k for k in typing.get_args(kind) if k is not type(None)]
            kind = next((k for k in inner if dataclasses.is_dataclass(_plain(k))), inner[0])
        else:
            return kind


def _kind_at(kind, loc: tuple):
    for part in loc:
        kind = _plain(kind)
        if dataclasses.is_dataclass(kind):
            kind = field_types(kind).get(part)
        elif typing.get_origin(kind) in (list, dict):
            kind = typing.get_args(kind)[-1] if typing.get_args(kind) else Any
        else:
            return None
    return _plain(kind)


def suggest(key: str, known, path: tuple = ()) -> str:
    """`; did you mean <path>.<close>?`, or the known keys where none is close."""
    close = difflib.get_close_matches(str(key), sorted(known), n=2, cutoff=0.6)
    if close:
        return f"; did you mean {' or '.join(key_path((*path, c)) for c in close)}?"
    return f"; known keys: {', '.join(sorted(known))}"


MESSAGES = {
    "int_type": "expected an integer", "int_parsing": "expected an integer", "int_from_float": "expected an integer",
    "float_type": "expected a number", "float_parsing": "expected a number", "finite_number": "expected a finite number",
    "bool_type": "expected true or false", "bool_parsing": "expected true or false",
    "string_type": "expected a string", "list_type": "expected a list", "dict_type": "expected a mapping",
    "dataclass_type": "expected a mapping", "dataclass_exact_type": "expected a mapping",
    "greater_than_equal": "must be at least {ge}", "greater_than": "must be above {gt}",
    "less_than_equal": "must be at most {le}", "less_than": "must be below {lt}",
    "too_short": "expected at least {min_length} items", "too_long": "expected at most {max_length} items",
}  # fmt: skip


def describe(error: dict, kind, source: str = "", prefix: tuple = ()) -> str:
    """One line for one pydantic error: where, what, and what was given."""
    loc = tuple(part for part in error["loc"] if part != "[key]")
    where = key_path((*prefix, *loc))
    ctx = error.get("ctx") or {}
    if error["type"] in UNKNOWN_KEY:
        parent = _kind_at(kind, loc[:-1])
        known = field_types(parent) if dataclasses.is_dataclass(parent) else {}
        return located(source, where, f"unknown key{suggest(loc[-1], known, (*prefix, *loc[:-1]))}")
    if error["type"] == "missing":
        return located(source, where, "missing (required)")
    if error["type"] == "value_error":  # a check of our own (a validator, __post_init__): its message as it is
        return located(source, where, str(ctx.get("error", error["msg"])))
    if error["type"] == "literal_error":
        return located(source, where, f"{error['input']!r} is not one of {ctx['expected']}")
    message = MESSAGES.get(error["type"], error["msg"]).format(**ctx)
    given = error.get("input")
    return located(source, where, message if isinstance(given, dict) else f"{message}, got {given!r}")


def accepts_none(kind) -> bool:
    kind = typing.get_args(kind)[0] if typing.get_origin(kind) is typing.Annotated else kind
    return kind is type(None) or type(None) in typing.get_args(kind) or kind is Any


def from_text(text: str, kind) -> Any:
    """A command-line value for a field of this kind: `null` where None is allowed, YAML for lists and mappings;
    other text is left to the validator (pydantic reads "1e-5", "false", "7" for numbers and booleans)."""
    if text.strip().lower() in NULL_WORDS and accepts_none(kind):
        return None
    if typing.get_origin(_plain(kind)) in (list, dict) or _plain(kind) in (list, dict):
        return yaml.safe_load(text)
    return text


def set_key(obj, key: str, value: Any, source: str, error: type[ConfigError] = ConfigError, name_key: bool = True,
            text: bool = False) -> None:
    """Sets `key` ("filters.max_length_ratio"; "model.config.hidden_size" sets one entry of a mapping field) on
    a tree of dataclasses, checked as the field's annotation says. Errors name `source` and, with `name_key`,
    the key (an option such as --max-length-ratio is named by `source` alone)."""
    parts = key.split(".")
    for depth, name in enumerate(parts):
        fields = field_types(type(obj))
        if name not in fields:
            raise error(located(source, key_path(parts[: depth + 1]), f"unknown key{suggest(name, fields, tuple(parts[:depth]))}"))
        kind, rest = fields[name], parts[depth + 1 :]
        if not rest:
            given = from_text(value, kind) if text and isinstance(value, str) else value
            setattr(obj, name, check(kind, given, located(source, key if name_key else "", ""), error=error))
            return
        if _plain(kind) is dict or typing.get_origin(_plain(kind)) is dict:  # model.config.hidden_size=64
            mapping = dict(getattr(obj, name))
            mapping[".".join(rest)] = yaml.safe_load(value) if text and isinstance(value, str) else value
            setattr(obj, name, mapping)
            return
        obj = getattr(obj, name)
        if not dataclasses.is_dataclass(obj):
            raise error(located(source, key_path(parts[: depth + 1]), "not a section (it has no keys)"))
