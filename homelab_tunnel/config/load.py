"""Reading a config file and reporting every problem at once, one line per field.

`format_errors` turns pydantic's errors into `field.path: what is wrong`, and
an unknown key into the list of keys allowed at that level.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from homelab_tunnel.config.model import LocalBackend, SpacesBackend, TunnelConfig
from homelab_tunnel.errors import InputError
from homelab_tunnel.inputs import read_text


def load_config(path: Path) -> TunnelConfig:
    """Read and validate a config file; any problem raises `InputError`."""
    source = str(path)
    text = read_text(source)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(source, [f"not valid TOML: {exc}"]) from None
    return parse_config(raw, source)


def parse_config(raw: dict[str, Any], source: str) -> TunnelConfig:
    try:
        return TunnelConfig.model_validate(raw)
    except ValidationError as exc:
        raise InputError(source, format_errors(exc)) from None


def format_errors(exc: ValidationError) -> list[str]:
    """One line per problem: `field.path: what is wrong (what is allowed)`."""
    lines: list[str] = []
    for error in exc.errors(include_url=False):
        loc = list(error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        if not loc:
            lines.extend(message.splitlines())
            continue
        path = ".".join(_key(part) for part in loc if not _is_union_tag(part))
        if error["type"] == "extra_forbidden":
            allowed = _allowed_keys(loc[:-1])
            message = f"unknown key (allowed here: {', '.join(allowed)})"
        elif error["type"] == "missing":
            message = "required but missing"
        elif error["type"] == "union_tag_invalid":
            context = error.get("ctx", {})
            path += "." + str(context.get("discriminator", "type")).strip("'")
            message = f"{context.get('tag')!r} is not one of {context.get('expected_tags')}"
        elif error["type"] in _EXPECTED:
            message = f"{_EXPECTED[error['type']]}, not {_toml_kind(error['input'])}"
        lines.append(f"{path}: {message}")
    return lines


# Strict type errors, said in TOML's words: what to write instead.
_EXPECTED = {
    "int_type": "must be a whole number, unquoted (e.g. 8080)",
    "bool_type": "must be true or false, unquoted",
    "string_type": 'must be a string in quotes (e.g. "fra1")',
    "list_type": "must be an array [...]",
    "model_type": "must be a table ([section] or { key = value })",
    "model_attributes_type": "must be a table ([section] or { key = value })",
    "dict_type": "must be a table ([section] or { key = value })",
}


def _toml_kind(value: Any) -> str:
    """How TOML calls what the user wrote, with the value (shortened) when it is short."""
    kinds = [
        (bool, "a boolean"),
        (int, "an integer"),
        (float, "a float"),
        (str, "a string"),
        (list, "an array"),
        (dict, "a table"),
    ]
    kind = next((name for cls, name in kinds if isinstance(value, cls)), "a date/time")
    if isinstance(value, (bool, int, float, str)):
        shown = str(value).lower() if isinstance(value, bool) else repr(value)
        if len(shown) <= 40:
            return f"{kind} ({shown})"
    return kind


def _key(part: int | str) -> str:
    """A path element as written; a key with odd characters quoted so the line stays one line."""
    text = str(part)
    if text and all(char.isalnum() or char in "_-" for char in text) and text.isascii():
        return text
    return repr(text)


_BACKENDS: dict[str, type[BaseModel]] = {"local": LocalBackend, "spaces": SpacesBackend}


def _is_union_tag(part: int | str) -> bool:
    return part in _BACKENDS


def _allowed_keys(loc: list[int | str]) -> list[str]:
    model: type[BaseModel] = TunnelConfig
    for part in loc:
        if isinstance(part, int):
            continue
        if part in _BACKENDS:
            model = _BACKENDS[str(part)]
            continue
        annotation = model.model_fields[str(part)].annotation
        nested = _model_in(annotation)
        if nested is None:
            return []
        model = nested
    return sorted(model.model_fields)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None
