"""The configuration reference is written from the model: every key, its type, default and rules.

The committed page is compared with a fresh one in tests/test_docs_site.py;
here, what the generator makes of the model, and of a model changed the way a
new feature changes it (a new section, a new type, a new rule), with no edit
to the generator.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

import pytest
from pydantic import AfterValidator, BaseModel, Field, model_validator
from support.config import ROOT

from homelab_tunnel.config.model import TunnelConfig, _Model
from homelab_tunnel.config.reference import ReferenceGap, config_reference
from homelab_tunnel.config.values import Port, Rule


def _rows(page: str) -> dict[str, list[str]]:
    rows = {}
    for line in page.splitlines():
        match = re.match(r"\| `([a-z0-9_.]+)` \| (.*) \|$", line)
        if match:
            rows[match[1]] = [cell.strip() for cell in match[2].split(" | ")]
    return rows


def _keys(model: type[BaseModel], path: str = "") -> set[str]:
    """Every key the model accepts, walked independently of the generator."""
    keys = set()
    for name, field in model.model_fields.items():
        key = f"{path}.{name}" if path else name
        keys.add(key)
        for sub in _submodels(field.annotation):
            keys |= _keys(sub, key)
    return keys


def _submodels(annotation: object) -> list[type[BaseModel]]:
    found = []
    for arg in getattr(annotation, "__args__", ()) or ():
        found += _submodels(arg)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        found.append(annotation)
    return found


def test_every_key_of_the_model_has_a_row() -> None:
    assert set(_rows(config_reference())) == _keys(TunnelConfig)


@pytest.mark.parametrize(
    ("key", "kind", "default"),
    [
        ("name", "[stack name](#stack-name)", "required"),
        ("dns.ttl", "integer, 30-86400", "`300`"),
        ("size", "[DigitalOcean slug](#digitalocean-slug)", '`"s-1vcpu-1gb"`'),
        ("reserved_ipv6", "boolean", "`false`"),
        ("ssh_keys", "array of [SSH key](#ssh-key)", "`[]`"),
        ("sites", "array of tables, at least 1", "required"),
        ("sites.scheme", 'string: `"http"` or `"https"`', '`"http"`'),
        ("sites.auth.forward.port", "[port](#port)", "required"),
        ("backend", "inline table", '`{ type = "local" }`'),
        ("tls.email", "[email address](#email-address)", "not set"),
    ],
)
def test_row_states_type_and_default_in_toml_terms(key: str, kind: str, default: str) -> None:
    assert _rows(config_reference())[key][:2] == [kind, default]


def test_every_value_type_links_to_its_rule() -> None:
    page = config_reference()
    headings = {line.removeprefix("### ") for line in page.splitlines() if line.startswith("### ")}
    linked = set(re.findall(r"\| \[([^\]]+)\]\(#", page))
    assert linked and linked <= headings
    assert "One of `ams3`, `atl1`" in page  # the rule's words come from the values it checks


def test_cross_field_rules_come_from_the_validators() -> None:
    page = config_reference()
    assert "- `staging` and `acme_ca` exclude each other." in page
    assert (
        "- With `enabled = true`, `region` and at least one of `recipients` are required." in page
    )


def test_committed_page_is_the_generated_one() -> None:
    page = (ROOT / "docs" / "reference" / "config.md").read_text()
    assert page == config_reference(), "run `make docs-reference`"


# ---------------------------------------------------------------------------
# A feature that adds config: the page follows with no edit to the generator
# ---------------------------------------------------------------------------

Protocol = Annotated[str, AfterValidator(lambda value: value), Rule("protocol", "`tcp` or `udp`")]


class _Forward(_Model):
    """One public port forwarded into the tailnet."""

    protocol: Protocol = Field(description="what to forward")
    port: Port = Field(description="the public port")


class _Metrics(_Model):
    """A tailnet-only Prometheus endpoint."""

    enabled: bool = Field(default=False, description="serve metrics on the tailnet")

    @model_validator(mode="after")
    def _never_public(self) -> _Metrics:
        """- The endpoint never listens on a public address."""
        return self


class _Grown(TunnelConfig):
    ports: list[_Forward] = Field(default_factory=list, description="raw ports to forward")
    metrics: _Metrics = Field(default=_Metrics(), description="the metrics endpoint")


def test_new_sections_appear_without_touching_the_generator() -> None:
    page = config_reference(_Grown)
    rows = _rows(page)
    assert rows["ports"][:2] == ["array of tables", "`[]`"]
    assert rows["ports.protocol"][0] == "[protocol](#protocol)"
    assert rows["metrics.enabled"][:2] == ["boolean", "`false`"]
    assert "## `[[ports]]`" in page
    assert "- The endpoint never listens on a public address." in page
    assert "### protocol\n\n`tcp` or `udp`." in page


def test_a_changed_model_no_longer_matches_the_committed_page() -> None:
    committed = (ROOT / "docs" / "reference" / "config.md").read_text()
    assert config_reference(_Grown) != committed


class _Undescribed(TunnelConfig):
    colour: bool = False


class _Unruled(TunnelConfig):
    colour: Annotated[str, AfterValidator(str.lower)] = Field(
        default="red", description="a checked string"
    )


class _Unexplained(TunnelConfig):
    @model_validator(mode="after")
    def _quiet(self) -> _Unexplained:
        return self


@pytest.mark.parametrize(
    ("model", "says"),
    [
        (_Undescribed, "colour: no description"),
        (_Unruled, "colour: its type"),
        (_Unexplained, "_Unexplained._quiet: a model validator without a docstring"),
    ],
)
def test_a_key_or_rule_without_words_is_refused(model: type[TunnelConfig], says: str) -> None:
    with pytest.raises(ReferenceGap, match=re.escape(says)):
        config_reference(model)


def test_literal_choices_are_listed() -> None:
    class _Choice(TunnelConfig):
        mode: Literal["a", "b"] = Field(default="a", description="a mode")

    assert _rows(config_reference(_Choice))["mode"][:2] == ['string: `"a"` or `"b"`', '`"a"`']
