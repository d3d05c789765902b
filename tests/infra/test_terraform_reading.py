"""What the real Terraform makes of the synthesized strings (no provider needed).

The whole stack goes through the real provider in test_terraform_provider.py,
where the provider binary can be built. The parts where Terraform's own syntax
matters most, the user_data template escaping and the webhook variable's
validation, are also checked without it, so they run everywhere: they are
copied into a provider-free configuration.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from support.config import EDGY_ALERT_EMAIL, EDGY_KEY_NAME, EXAMPLE, edgy_config

from homelab_tunnel.config import TunnelConfig
from homelab_tunnel.edge.channel import PURPOSE, mac
from homelab_tunnel.edge.derive import derived_key
from homelab_tunnel.infra.terraform_literal import terraform_literal
from homelab_tunnel.payload import edge_config_object, user_data_size
from homelab_tunnel.payload import user_data as render_user_data
from homelab_tunnel.render.secrets import (
    BACKUP_ACCESS_KEY,
    BACKUP_SECRET_KEY,
    CHANNEL_ACCESS_KEY,
    CHANNEL_SECRET_KEY,
    EDGE_SECRET,
    SPACES_KEY_MAX_LENGTH,
    fill,
)

TERRAFORM = shutil.which("terraform")
pytestmark = pytest.mark.skipif(
    TERRAFORM is None,
    reason="terraform is not installed (it is not in the package registries `make test` uses)",
)


def _terraform(workdir: Path, *args: str, webhook: str | None = None, stdin: str = "") -> Any:
    env = {
        **os.environ,
        "CHECKPOINT_DISABLE": "1",
        "TF_IN_AUTOMATION": "1",
        "HOME": str(workdir),
        "TF_CLI_CONFIG_FILE": os.devnull,
    }
    if webhook is not None:
        env["TF_VAR_health_webhook_url"] = webhook
    assert TERRAFORM is not None
    return subprocess.run(
        [TERRAFORM, *args], cwd=workdir, env=env, input=stdin, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip


# The Spaces keys' values, as the provider would fill them: the longest the size
# check allows. Without the provider, variables stand in for the references.
KEY_VALUE = {"access_key": "A" * SPACES_KEY_MAX_LENGTH, "secret_key": "s" * SPACES_KEY_MAX_LENGTH}
KEY_REFERENCE = re.compile(r"digitalocean_spaces_key\.([a-z_]+)\.(access_key|secret_key)")
# Which secret each key's attribute fills, in user_data and the config object.
FILLED = {
    ("config", "access_key"): CHANNEL_ACCESS_KEY,
    ("config", "secret_key"): CHANNEL_SECRET_KEY,
    ("edge_secret", "secret_key"): EDGE_SECRET,
    ("backup", "access_key"): BACKUP_ACCESS_KEY,
    ("backup", "secret_key"): BACKUP_SECRET_KEY,
}


def _with_variables(text: str, variables: dict[str, Any]) -> str:
    def swap(match: re.Match[str]) -> str:
        name = f"key_{match.group(1)}_{match.group(2)}"
        variables[name] = {"type": "string", "default": KEY_VALUE[match.group(2)]}
        return f"var.{name}"

    return KEY_REFERENCE.sub(swap, text)


@pytest.fixture(scope="module")
def workdir(stack: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The droplet's user_data and the config object's body and metadata, as locals."""
    directory = tmp_path_factory.mktemp("terraform")
    variables = dict(stack["variable"])
    config = stack["resource"]["digitalocean_spaces_bucket_object"]["config"]
    locals_ = {
        "user_data": stack["resource"]["digitalocean_droplet"]["edge"]["user_data"],
        "config_body": config["content"],
        "config_mac": config["metadata"]["mac"],
        "config_webhook": config["metadata"]["webhook"],
    }
    locals_ = {name: _with_variables(text, variables) for name, text in locals_.items()}
    (directory / "main.tf.json").write_text(json.dumps({"variable": variables, "locals": locals_}))
    done = _terraform(directory, "init", "-input=false", "-no-color")
    assert done.returncode == 0, done.stdout + done.stderr
    return directory


def _as_terraform_reads_it(workdir: Path, local: str, webhook: str = "") -> str:
    done = _terraform(
        workdir, "console", webhook=webhook, stdin=f"base64encode(nonsensitive(local.{local}))\n"
    )
    assert done.returncode == 0, done.stderr
    return base64.b64decode(done.stdout.strip().strip('"')).decode()


def test_terraform_reads_user_data_exactly_as_rendered(
    workdir: Path, example_config: TunnelConfig
) -> None:
    expected = fill(
        render_user_data(example_config),
        {secret: KEY_VALUE[attribute] for (_, attribute), secret in FILLED.items()},
    )
    assert _as_terraform_reads_it(workdir, "user_data") == expected


def test_user_data_size_holds_for_the_longest_keys_terraform_fills(
    workdir: Path, example_config: TunnelConfig
) -> None:
    read = _as_terraform_reads_it(workdir, "user_data")
    assert len(read.encode()) == user_data_size(example_config)


def test_terraform_writes_the_config_object_exactly_as_rendered(
    workdir: Path, example_config: TunnelConfig
) -> None:
    assert _as_terraform_reads_it(workdir, "config_body") == edge_config_object(example_config).body


@pytest.mark.parametrize("webhook", ["", "https://hooks.example.com/services/T000/B000/XXXX"])
def test_terraforms_mac_is_the_one_the_edge_checks(
    workdir: Path, example_config: TunnelConfig, webhook: str
) -> None:
    """The HCL the stack writes and edge/channel.py compute the same MAC, by the real Terraform."""
    secret = KEY_VALUE["secret_key"]
    body = edge_config_object(example_config).body.encode()
    expected = mac(derived_key(secret, PURPOSE), body, webhook)
    assert _as_terraform_reads_it(workdir, "config_mac", webhook) == expected
    assert _as_terraform_reads_it(workdir, "config_webhook", webhook) == webhook


def test_negative_twin_another_webhook_gives_another_mac(
    workdir: Path, example_config: TunnelConfig
) -> None:
    body = edge_config_object(example_config).body.encode()
    signed_for_empty = mac(derived_key(KEY_VALUE["secret_key"], PURPOSE), body, "")
    assert _as_terraform_reads_it(workdir, "config_mac", "https://x.example.com/") != (
        signed_for_empty
    )


REFUSED_WEBHOOKS = [
    "http://hooks.example.com/x",
    "https://a b",
    "https://x\nEVIL=1",
    "ftp://x",
    "https://",
    'https://hooks.example.com/"x"',
    "https://hooks.example.com/'x'",
    "https://hooks.example.com/a\\b",
    "https://hooks.example.com/$HOME",
    "https://hooks.example.com/`id`",
    "https://hooks.example.com/" + "x" * 487,  # 513 characters
]


@pytest.mark.parametrize("webhook", REFUSED_WEBHOOKS)
def test_webhook_that_is_not_a_plain_https_url_is_refused(workdir: Path, webhook: str) -> None:
    done = _terraform(workdir, "plan", "-input=false", "-no-color", webhook=webhook)
    assert done.returncode != 0
    assert "health_webhook_url must be empty or an https:// URL" in done.stdout + done.stderr


@pytest.mark.parametrize(
    "webhook",
    [
        "https://hooks.slack.com/services/T000/B000/XXXX",
        "https://discord.com/api/webhooks/123/a_b-C",
        "https://ntfy.sh/homelab-alerts?priority=high&tags=warning,edge",
        "https://hooks.example.com/" + "x" * 486,  # 512 characters: the most the variable takes
    ],
)
def test_webhooks_of_common_services_are_accepted(workdir: Path, webhook: str) -> None:
    done = _terraform(workdir, "plan", "-input=false", "-no-color", webhook=webhook)
    assert done.returncode == 0, done.stdout + done.stderr


def test_template_sequences_survive_as_literal_text(tmp_path: Path) -> None:
    # Shell and Caddy syntax that Terraform would otherwise evaluate.
    tricky = 'echo "${HOME}" %{ if x }y%{ endif } $${kept} ${var.health_webhook_url}\n'
    document = {"locals": {"text": terraform_literal(tricky)}}
    (tmp_path / "main.tf.json").write_text(json.dumps(document))
    assert _terraform(tmp_path, "init", "-input=false").returncode == 0
    done = _terraform(tmp_path, "console", stdin="base64encode(local.text)\n")
    assert done.returncode == 0, done.stderr
    assert base64.b64decode(done.stdout.strip().strip('"')).decode() == tricky


# ---------------------------------------------------------------------------
# Config values in Terraform JSON: literal, never a template
# ---------------------------------------------------------------------------

# The only interpolations the stack itself writes: references between its resources.
REFERENCE = re.compile(
    r"\$\{(?:(?:data\.)?digitalocean_[a-z0-9_]+\.[a-z0-9_-]+\.[a-z0-9_]+|var\.health_webhook_url)\}"
)


def _strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for value in node.values() for s in _strings(value)]
    if isinstance(node, list):
        return [s for item in node for s in _strings(item)]
    return []


def _templates_outside_user_data(document: dict[str, Any]) -> list[str]:
    """Every string with `${` or `%{` that is not one of the stack's own references.

    user_data and the config object's body and MAC are checked above: Terraform
    reads them back exactly as rendered.
    """
    body = {key: value for key, value in document.items() if key not in ("//", "variable")}
    body["resource"] = copy.deepcopy(body["resource"])
    del body["resource"]["digitalocean_droplet"]["edge"]["user_data"]
    config = body["resource"]["digitalocean_spaces_bucket_object"]["config"]
    del config["content"], config["metadata"]["mac"]
    return [
        text
        for text in _strings(body)
        if "%{" in REFERENCE.sub("", text) or "${" in REFERENCE.sub("", text)
    ]


def _synth(config: TunnelConfig, outdir: Path) -> dict[str, Any]:
    from homelab_tunnel.infra.synth import synthesize

    return dict(json.loads(synthesize(config, outdir, config_path=EXAMPLE).read_text()))


@pytest.fixture(scope="module")
def edgy_stack(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _synth(edgy_config(), tmp_path_factory.mktemp("edgy") / "cdktf.out")


def test_no_config_value_becomes_a_template(edgy_stack: dict[str, Any]) -> None:
    assert _templates_outside_user_data(edgy_stack) == []


def test_negative_twin_a_key_name_with_a_template_is_caught(tmp_path: Path) -> None:
    # What the key-name shape prevents: Terraform would evaluate this reference.
    spoiled = edgy_config().model_copy(update={"ssh_keys": ["laptop ${data.x.y}"]})
    assert _templates_outside_user_data(_synth(spoiled, tmp_path / "out")) == ["laptop ${data.x.y}"]


def _read_back(workdir: Path, values: dict[str, Any]) -> Any:
    (workdir / "main.tf.json").write_text(json.dumps({"locals": {"values": values}}))
    assert _terraform(workdir, "init", "-input=false").returncode == 0
    done = _terraform(workdir, "console", stdin="base64encode(jsonencode(local.values))\n")
    assert done.returncode == 0, done.stderr
    return json.loads(base64.b64decode(done.stdout.strip().strip('"')))


def test_terraform_reads_every_config_value_literally(
    edgy_stack: dict[str, Any], tmp_path: Path
) -> None:
    config = edgy_config()
    resource = edgy_stack["resource"]
    firewall = resource["digitalocean_firewall"]["edge"]
    values = {
        "key_name": edgy_stack["data"]["digitalocean_ssh_key"]["key_0"]["name"],
        "fingerprint": resource["digitalocean_droplet"]["edge"]["ssh_keys"][0],
        "alert_email": resource["digitalocean_monitor_alert"]["cpu"]["alerts"]["email"],
        "ssh_sources": next(r for r in firewall["inbound_rule"] if r.get("port_range") == "22")[
            "source_addresses"
        ],
        "records": sorted(r["name"] for r in resource["digitalocean_record"].values()),
        "site_urls": edgy_stack["output"]["site_urls"]["value"],
        "headscale_url": edgy_stack["output"]["headscale_url"]["value"],
        "backend_key": edgy_stack["terraform"]["backend"]["s3"]["key"],
    }
    assert _read_back(tmp_path, values) == {
        "key_name": EDGY_KEY_NAME,
        "fingerprint": "3b:16:bf:e4:8b:00:8b:b8:59:8c:a9:d3:f0:19:45:fa",
        "alert_email": [EDGY_ALERT_EMAIL],
        "ssh_sources": ["203.0.113.7/32", "2001:db8::/64"],
        "records": sorted(["@", "a-b", "x1.a-b", "headscale"] * 2),
        "site_urls": [f"https://{site.domain}" for site in config.sites],
        "headscale_url": "https://headscale.example.com",
        "backend_key": "edge/sub_dir/terraform-1.2.tfstate",
    }


def test_negative_twin_terraform_evaluates_a_template_in_a_string(tmp_path: Path) -> None:
    assert _read_back(tmp_path, {"key_name": 'laptop ${upper("x")}'}) == {"key_name": "laptop X"}
