"""Templates shipped under render/templates/, filled with `string.Template`.

`substitute` raises on any placeholder left without a value, so a missing
variable fails the render instead of reaching the edge as `${name}`.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from string import Template


@cache
def _template(name: str) -> Template:
    return Template((files(__package__) / "templates" / name).read_text(encoding="utf-8"))


def fill(name: str, values: dict[str, str]) -> str:
    return _template(name).substitute(values)
