"""What the real Terraform makes of the synthesized strings (no provider needed).

The whole stack goes through the real provider in test_terraform_provider.py,
where the provider binary can be built. The parts where Terraform's own syntax
matters most, the user_data template escaping and the webhook variable's
validation, are also checked without it, so they run everywhere: they are
copied into a provider-free configuration.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from homelab_tunnel.config import TunnelConfig
from homelab_tunnel.infra.terraform_literal import terraform_literal
from homelab_tunnel.payload import user_data as render_user_data
from homelab_tunnel.render.edge_env import WEBHOOK_URL_PLACEHOLDER

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


@pytest.fixture(scope="module")
def workdir(stack: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("terraform")
    document = {
        "variable": stack["variable"],
        "locals": {"user_data": stack["resource"]["digitalocean_droplet"]["edge"]["user_data"]},
    }
    (directory / "main.tf.json").write_text(json.dumps(document))
    done = _terraform(directory, "init", "-input=false", "-no-color")
    assert done.returncode == 0, done.stdout + done.stderr
    return directory


def _user_data_as_terraform_reads_it(workdir: Path, webhook: str) -> str:
    done = _terraform(
        workdir, "console", webhook=webhook, stdin="base64encode(nonsensitive(local.user_data))\n"
    )
    assert done.returncode == 0, done.stderr
    return base64.b64decode(done.stdout.strip().strip('"')).decode()


def test_terraform_reads_user_data_exactly_as_rendered(
    workdir: Path, example_config: TunnelConfig
) -> None:
    webhook = "https://hooks.example.com/services/T000/B000/XXXX"
    expected = render_user_data(example_config).replace(WEBHOOK_URL_PLACEHOLDER, webhook)
    assert _user_data_as_terraform_reads_it(workdir, webhook) == expected


def test_empty_webhook_is_allowed(workdir: Path) -> None:
    assert "HEALTH_WEBHOOK_URL=\n" in _user_data_as_terraform_reads_it(workdir, "")


@pytest.mark.parametrize(
    "webhook", ["http://hooks.example.com/x", "https://a b", "https://x\nEVIL=1", "ftp://x"]
)
def test_webhook_that_is_not_a_plain_https_url_is_refused(workdir: Path, webhook: str) -> None:
    done = _terraform(workdir, "plan", "-input=false", "-no-color", webhook=webhook)
    assert done.returncode != 0
    assert "health_webhook_url must be empty or an https:// URL" in done.stdout + done.stderr


def test_template_sequences_survive_as_literal_text(tmp_path: Path) -> None:
    # Shell and Caddy syntax that Terraform would otherwise evaluate.
    tricky = 'echo "${HOME}" %{ if x }y%{ endif } $${kept} ${var.health_webhook_url}\n'
    document = {"locals": {"text": terraform_literal(tricky)}}
    (tmp_path / "main.tf.json").write_text(json.dumps(document))
    assert _terraform(tmp_path, "init", "-input=false").returncode == 0
    done = _terraform(tmp_path, "console", stdin="base64encode(local.text)\n")
    assert done.returncode == 0, done.stderr
    assert base64.b64decode(done.stdout.strip().strip('"')).decode() == tricky
