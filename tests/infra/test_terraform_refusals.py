"""What the real provider refuses that the schema check lets through, and data sources that fail.

Each case breaks the synthesized base stack in one way the schema check
(support/provider_schema.py) cannot see: an enum or range the provider
validates, conflicting attributes, a reference Terraform cannot resolve, or
a rule the provider only applies at plan time (CustomizeDiff). These are the
negative twins of test_terraform_provider.py: they prove the real checks can
fail, and name the check that catches each mistake.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.fake_digitalocean import FakeDigitalOcean
from support.provider_schema import stack_problems
from support.shapes import BY_NAME, Synth
from support.terraform import OfflineTerraform

# Stands for "delete this key" in `_set`.
_REMOVE = object()


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A mutation setting `path` (dot-separated; digits index lists) in the stack."""

    def mutate(stack: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = stack
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        if last.isdigit():
            node[int(last)] = value
        elif value is _REMOVE:
            del node[last]
        else:
            node[last] = value

    return mutate


FIREWALL = "resource.digitalocean_firewall.edge"
RECORDS = "resource.digitalocean_record"
ALERT = "resource.digitalocean_monitor_alert.cpu"
VOLUME = "resource.digitalocean_volume.state"


@dataclass(frozen=True)
class Broken:
    """A stack made wrong on purpose, the command that refuses it and Terraform's words."""

    mutations: tuple[Callable[[dict[str, Any]], None], ...]
    refused_by: str  # "validate" or "plan"
    error: str


BROKEN: dict[str, Broken] = {
    "firewall protocol not one of tcp/udp/icmp": Broken(
        (_set(f"{FIREWALL}.inbound_rule.0.protocol", "tcpx"),),
        "validate",
        "digitalocean_firewall.edge: expected inbound_rule.4.protocol to be one of "
        "[tcp udp icmp], got tcpx",
    ),
    "CAA tag not one of issue/issuewild/iodef": Broken(
        (_set(f"{RECORDS}.caa_blog.tag", "issues"),),
        "validate",
        "digitalocean_record.caa_blog: expected tag to be one of [issue issuewild iodef], "
        "got issues",
    ),
    "record TTL of 0": Broken(
        (_set(f"{RECORDS}.a_blog.ttl", 0),),
        "validate",
        "digitalocean_record.a_blog: expected ttl to be at least (1), got 0",
    ),
    "alert window the API does not offer": Broken(
        (_set(f"{ALERT}.window", "15m"),),
        "validate",
        "digitalocean_monitor_alert.cpu: expected window to be one of [5m 10m 30m 1h], got 15m",
    ),
    "alert watching no droplet": Broken(
        (_set(f"{ALERT}.entities", []),),
        "validate",
        "digitalocean_monitor_alert.cpu: Not enough list items: "
        "Attribute entities requires 1 item minimum",
    ),
    "project environment not one of the three": Broken(
        (_set("resource.digitalocean_project.edge.environment", "prod"),),
        "validate",
        "digitalocean_project.edge: expected environment to be one of "
        "[development staging production], got prod",
    ),
    "volume with two conflicting filesystem settings": Broken(
        (
            _set(f"{VOLUME}.initial_filesystem_type", "ext4"),
            _set(f"{VOLUME}.filesystem_type", "ext4"),
        ),
        "validate",
        'digitalocean_volume.state: Conflicting configuration arguments: "filesystem_type": '
        "conflicts with initial_filesystem_type",
    ),
    "reserved IP assignment to an address that is not one": Broken(
        (_set("resource.digitalocean_reserved_ip_assignment.edge.ip_address", "300.1.1.1"),),
        "validate",
        "digitalocean_reserved_ip_assignment.edge: expected ip_address to contain a valid "
        "IPv4 address, got: 300.1.1.1",
    ),
    # The schema check skips "${...}": only Terraform resolves references.
    "firewall naming a droplet that is not in the stack": Broken(
        (_set(f"{FIREWALL}.droplet_ids", ["${digitalocean_droplet.nope.id}"]),),
        "validate",
        'Reference to undeclared resource: A managed resource "digitalocean_droplet" "nope" '
        "has not been declared",
    ),
    "output of a resource the shape does not create": Broken(
        (_set("output.reserved_ipv6", {"value": "${digitalocean_reserved_ipv6.edge.ip}"}),),
        "validate",
        'Reference to undeclared resource: A managed resource "digitalocean_reserved_ipv6" '
        '"edge" has not been declared',
    ),
    # CustomizeDiff rules: `terraform validate` passes these, `plan` refuses them.
    "CAA record without its tag": Broken(
        (_set(f"{RECORDS}.caa_blog.tag", _REMOVE),),
        "plan",
        "digitalocean_record.caa_blog: `tag` is required for when type is `CAA`",
    ),
    "TCP firewall rule without a port range": Broken(
        (_set(f"{FIREWALL}.inbound_rule.0.port_range", _REMOVE),),
        "plan",
        "digitalocean_firewall.edge: `port_range` of inbound rules is required if protocol "
        "is `tcp` or `udp`",
    ),
    "firewall without any rule": Broken(
        (_set(f"{FIREWALL}.inbound_rule", _REMOVE), _set(f"{FIREWALL}.outbound_rule", _REMOVE)),
        "plan",
        "digitalocean_firewall.edge: At least one rule must be specified",
    ),
}


def _refusal(
    terraform: OfflineTerraform, stack: dict[str, Any], case: Broken, path: Path
) -> tuple[list[str], list[str], list[str]]:
    """(schema problems, validate errors, plan errors) of the broken stack."""
    broken = copy.deepcopy(stack)
    for mutate in case.mutations:
        mutate(broken)
    workdir = terraform.workdir(path, broken)
    workdir.init()
    validate = workdir.validate().errors()
    plan = [] if validate else workdir.plan(refresh=False).errors()
    return stack_problems(broken), validate, plan


@pytest.fixture(scope="module")
def refusals(
    terraform: OfflineTerraform, synthesized: Synth, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[list[str], list[str], list[str]]]:
    stack = synthesized(BY_NAME["base"])
    root = tmp_path_factory.mktemp("broken")
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        done = pool.map(
            lambda item: _refusal(terraform, stack, item[1], root / f"case{item[0]}"),
            enumerate(BROKEN.values()),
        )
        return dict(zip(BROKEN, done, strict=True))


@pytest.mark.parametrize("case", BROKEN)
def test_provider_refuses_what_the_schema_check_passes(
    case: str, refusals: dict[str, tuple[list[str], list[str], list[str]]]
) -> None:
    schema, validate, plan = refusals[case]
    expected = BROKEN[case]
    assert schema == []
    refused = validate if expected.refused_by == "validate" else plan
    assert validate == [] or expected.refused_by == "validate", validate
    assert len(refused) == 1 and refused[0].startswith(expected.error), refused


# ---------------------------------------------------------------------------
# Data sources: a zone or key missing from the account stops the plan
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "value", "error"),
    [
        (
            "data.digitalocean_ssh_key.key_0.name",
            "nobody",
            "data.digitalocean_ssh_key.key_0: no ssh key found with name nobody",
        ),
        (
            "data.digitalocean_domain.zone.name",
            "example.net",
            "data.digitalocean_domain.zone: domain not found: GET https://127.0.0.1:",
        ),
    ],
    ids=["key-name", "zone"],
)
def test_plan_of_the_example_fails_at_once_when_the_account_lacks_it(
    path: str,
    value: str,
    error: str,
    terraform: OfflineTerraform,
    synthesized: Synth,
    fake_api: FakeDigitalOcean,
    certificate: tuple[Path, Path],
    tmp_path: Path,
) -> None:
    stack = copy.deepcopy(synthesized(BY_NAME["example"]))
    _set(path, value)(stack)
    workdir = terraform.workdir(tmp_path, stack, api_url=fake_api.url, cert=certificate[0])
    workdir.init()
    plan = workdir.plan(refresh=False)
    assert plan.returncode == 1
    errors = plan.errors()
    assert len(errors) == 1 and errors[0].startswith(error), errors
