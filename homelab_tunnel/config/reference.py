"""The configuration reference, written from the config model so it cannot drift from it.

Every key comes from the pydantic tree (model.py), its words from the field's
description, what a value may be from the type's `Rule` (values.py) or its
constraints, and the rules between keys from the model validators'
docstrings. A key, type or validator without words is an error here, not a
gap in the page. `make docs-reference` writes the result to
docs/reference/config.md; a test compares the two.
"""

from __future__ import annotations

import re
import types
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from homelab_tunnel.config.model import TunnelConfig
from homelab_tunnel.config.values import Rule

TITLE = "# Configuration reference"
GENERATED = (
    "<!-- Generated from homelab_tunnel/config/ by `make docs-reference`: do not edit by hand. -->"
)

PREAMBLE = """\
Every key `homelab-tunnel.toml` may hold, as the config model defines it.
[Configuration](../configuration/index.md) explains how the parts fit together;
`homelab-tunnel check` applies every rule below and reports all problems at
once, one line each (`<file>: <key>: <what is wrong and what is allowed>`),
with exit code 2.

Refused everywhere:

- a key not listed here (the error names the keys that are allowed);
- a value of another TOML type, never converted: `port = "8080"`,
  `port = 8080.0`, `port = true` and `reserved_ipv6 = "on"` are all refused;
- a control character in any string (line breaks, tabs, NUL, DEL, zero-width
  and bidi controls): values are one line of printable text, except
  `tls.ca_roots`.
"""


class ReferenceGap(Exception):
    """The model holds something the reference cannot describe in words."""


@dataclass(frozen=True)
class _Section:
    path: str  # dotted TOML path; "" for the top level
    heading: str
    model: type[BaseModel]
    intro: str


# ---------------------------------------------------------------------------
# Types in TOML's words
# ---------------------------------------------------------------------------


def slug(text: str) -> str:
    """The anchor MkDocs gives a heading (its toc extension's default slugify)."""
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def _split(annotation: Any) -> tuple[Any, list[Any]]:
    """A type without its Annotated wrapper, and the metadata the wrapper carried."""
    if get_origin(annotation) is Annotated:
        base, *metadata = get_args(annotation)
        inner, more = _split(base)
        return inner, more + metadata
    return annotation, []


def _is_union(annotation: Any) -> bool:
    return get_origin(annotation) in (Union, types.UnionType)


def _optional(annotation: Any) -> Any:
    """`X | None` is X with no value by default."""
    if _is_union(annotation):
        options = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(options) == 1:
            return options[0]
    return annotation


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _models(annotation: Any) -> list[type[BaseModel]]:
    """The tables a key holds: one model, a list of them, or a union of them."""
    base = _optional(_split(annotation)[0])
    if get_origin(base) is list:
        base = _optional(_split(get_args(base)[0])[0])
    if _is_model(base):
        return [base]
    if _is_union(base) and all(_is_model(arg) for arg in get_args(base)):
        return list(get_args(base))
    return []


def _limits(metadata: Iterable[Any]) -> str:
    low = high = None
    for item in metadata:
        if isinstance(item, annotated_types.Ge):
            low = item.ge
        elif isinstance(item, annotated_types.Le):
            high = item.le
    if low is not None and high is not None:
        return f"{low}-{high}"
    if low is not None:
        return f"at least {low}"
    return f"at most {high}" if high is not None else ""


def _rule(metadata: Iterable[Any]) -> Rule | None:
    return next((item for item in metadata if isinstance(item, Rule)), None)


def _describe(annotation: Any, metadata: list[Any], where: str) -> str:
    """A value's type as a reader of TOML knows it, linking to its rule."""
    base, inner = _split(_optional(annotation))
    metadata = metadata + inner
    rule = _rule(metadata)
    if rule is not None:
        return f"[{rule.name}](#{slug(rule.name)})"
    if base is bool:
        return "boolean"
    if base is int:
        limits = _limits(metadata)
        return f"integer, {limits}" if limits else "integer"
    if get_origin(base) is Literal:
        return "string: " + " or ".join(f'`"{value}"`' for value in get_args(base))
    if get_origin(base) is list:
        (item,) = get_args(base)
        text = "array of tables" if _models(item) else "array of " + _describe(item, [], where)
        least = next(
            (m.min_length for m in metadata if isinstance(m, annotated_types.MinLen)), None
        )
        return f"{text}, at least {least}" if least else text
    if _models(base):
        return "table" if _is_model(base) else "inline table"
    if base is str and not any(hasattr(item, "func") for item in metadata):
        return "string"
    raise ReferenceGap(
        f"{where}: its type {annotation!r} has no Rule saying what it accepts; add one "
        "to its Annotated type in homelab_tunnel/config/values.py"
    )


def _toml(value: Any) -> str:
    """A default as it would be written in the file."""
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, list) and not value:
        return "`[]`"
    if isinstance(value, BaseModel):
        kind = getattr(value, "type", None)  # one of several table shapes: say which
        return f'`{{ type = "{kind}" }}`' if isinstance(kind, str) else "its keys' defaults"
    return f"`{value!r}`"


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        return _toml(field.default_factory())  # type: ignore[call-arg]
    if field.default is None:
        return "not set"
    if field.default is PydanticUndefined:  # pragma: no cover - is_required() covers it
        return "required"
    return _toml(field.default)


# ---------------------------------------------------------------------------
# The walk
# ---------------------------------------------------------------------------


def _key(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _heading(path: str, field: FieldInfo, model: type[BaseModel], variants: int) -> str:
    base = _optional(_split(field.annotation)[0])
    if variants > 1:
        kind = model.model_fields["type"].annotation
        return f'`{path}` with `type = "{get_args(kind)[0]}"`'
    if get_origin(base) is list:
        return f"`[[{path}]]`"
    return f"`[{path}]`"


def _sections(model: type[BaseModel], path: str = "") -> Iterator[_Section]:
    for name, field in model.model_fields.items():
        variants = _models(field.annotation)
        key = _key(path, name)
        for variant in variants:
            heading = _heading(key, field, variant, len(variants))
            intro = (variant.__doc__ or "").strip().split("\n\n")[0]
            yield _Section(key, heading, variant, " ".join(intro.split()))
            yield from _sections(variant, key)


def _description(field: FieldInfo, where: str) -> str:
    if not field.description:
        raise ReferenceGap(
            f"{where}: no description; give its Field a description= "
            "(homelab_tunnel/config/model.py): the reference and `check` show it"
        )
    return field.description


def _cell(text: str) -> str:
    """Table cell text: a `|` would end the cell, `<name>` would be read as HTML."""
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _table(section: _Section, sections: dict[str, list[str]]) -> list[str]:
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for name, field in section.model.model_fields.items():
        where = _key(section.path, name)
        meaning = _description(field, where)
        kind = _describe(field.annotation, list(field.metadata), where)
        row = f"| `{where}` | {kind} | {_default(field)} | {_cell(meaning)}"
        if _models(field.annotation):
            row += " (see " + ", ".join(sections[where]) + ")"
        lines.append(row + " |")
    return lines


def _cross_rules(model: type[BaseModel]) -> list[str]:
    """The rules between keys, from the docstrings of the model's validators."""
    lines: list[str] = []
    for name, decorator in model.__pydantic_decorators__.model_validators.items():
        doc = decorator.func.__doc__
        if not doc or not doc.strip().startswith("- "):
            raise ReferenceGap(
                f"{model.__name__}.{name}: a model validator without a docstring listing "
                "its rules ('- ...' lines); the reference prints them"
            )
        lines += [line.strip() if line.strip().startswith("- ") else "  " + line.strip()
                  for line in doc.strip().splitlines()]  # fmt: skip
    return lines


def _value_types(models: Iterable[type[BaseModel]]) -> list[str]:
    rules: dict[str, Rule] = {}
    for model in models:
        for field in model.model_fields.values():
            for rule in _rules_in(field.annotation, list(field.metadata)):
                rules.setdefault(rule.name, rule)
    lines = [
        "## Value types",
        "",
        "What each kind of value accepts; anything else is refused.",
    ]
    for rule in sorted(rules.values(), key=lambda rule: rule.name.lower()):
        lines += ["", f"### {rule.name}", "", rule.allowed[0].upper() + rule.allowed[1:] + "."]
    return lines


def _rules_in(annotation: Any, metadata: list[Any]) -> Iterator[Rule]:
    base, inner = _split(annotation)
    found = _rule(metadata + inner)
    if found is not None:
        yield found
    for arg in get_args(base):
        if get_origin(base) is not Literal:
            yield from _rules_in(arg, [])


def config_reference(root: type[BaseModel] = TunnelConfig) -> str:
    """The reference page for `root` (the config model; tests pass a changed one)."""
    top = _Section("", "Top level", root, "")
    sections = [top, *_sections(root)]
    anchors: dict[str, list[str]] = {}
    for section in sections[1:]:
        anchors.setdefault(section.path, []).append(
            f"[{section.heading}](#{slug(section.heading)})"
        )
    out = [TITLE, "", GENERATED, "", PREAMBLE.rstrip()]
    for section in sections:
        out += ["", f"## {section.heading}", ""]
        if section.intro:
            out += [section.intro, ""]
        out += _table(section, anchors)
        rules = _cross_rules(section.model)
        if rules:
            out += ["", "Refused together:", "", *rules]
    out += ["", *_value_types(section.model for section in sections)]
    return "\n".join(out) + "\n"


if __name__ == "__main__":  # pragma: no cover - `make docs-reference`
    print(config_reference(), end="")
