"""The real Terraform with the real DigitalOcean provider, offline.

The provider binary is the one tools/build_binaries.py caches (entry
`terraform-provider-digitalocean` of tools/binaries.toml). Terraform finds it
through a CLI config (TF_CLI_CONFIG_FILE) whose only installation method is a
filesystem mirror laid out as the registry serves it; `direct` is excluded,
so nothing is ever downloaded. The provider only ever talks to 127.0.0.1:
the fake API, or a port where nothing listens. Every run gets a clean
environment (no TF_VAR_*, no plugin cache, HOME inside the test's folder).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support.binaries import binary, why_missing
from support.fake_digitalocean import TOKEN

PROVIDER = "registry.terraform.io/digitalocean/digitalocean"
# The release cdktf-cdktf-provider-digitalocean 13.14.1 binds (tools/binaries.toml pins its commit).
PROVIDER_VERSION = "2.71.0"
PROVIDER_BINARY = "terraform-provider-digitalocean"
# Nothing listens here: a provider call that should not happen fails at once.
UNREACHABLE_API = "https://127.0.0.1:9"
BACKEND_OVERRIDE = "backend_override.tf.json"


class Unavailable(Exception):
    """Terraform or the provider cannot be had here; the message says why, in one line."""


def _platform() -> str:
    machine = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    return f"{platform.system().lower()}_{machine}"


@dataclass(frozen=True)
class Diagnostic:
    severity: str
    summary: str
    detail: str
    address: str | None

    def line(self) -> str:
        where = f"{self.address}: " if self.address else ""
        detail = " ".join(self.detail.split())
        return f"{where}{self.summary}" + (f": {detail}" if detail else "")


@dataclass(frozen=True)
class Run:
    """One terraform command: exit code, output, and the diagnostics of its `-json` output."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def diagnostics(self) -> list[Diagnostic]:
        """From `validate -json` (one document) or `plan -json` (one message per line)."""
        found: list[dict[str, Any]] = []
        lines = [line for line in self.stdout.splitlines() if line.startswith("{")]
        if self.args[:1] == ("validate",):
            found = json.loads(self.stdout).get("diagnostics", []) if self.stdout else []
        else:
            messages = [json.loads(line) for line in lines]
            found = [m["diagnostic"] for m in messages if m.get("type") == "diagnostic"]
        return [
            Diagnostic(d["severity"], d["summary"], d.get("detail", ""), d.get("address"))
            for d in found
        ]

    def errors(self) -> list[str]:
        return [d.line() for d in self.diagnostics() if d.severity == "error"]


@dataclass(frozen=True)
class OfflineTerraform:
    """Terraform plus a mirror holding the built provider, under `root`."""

    executable: Path
    root: Path

    @property
    def cli_config(self) -> Path:
        return self.root / "terraformrc"

    def env(
        self,
        *,
        api_url: str = UNREACHABLE_API,
        cert: Path | None = None,
        extra: dict[str, str] | None = None,
    ) -> dict[str, str]:
        """The whole environment of a run: nothing inherited but PATH; `extra` on top (the
        fake Spaces' proxy and key)."""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.root / "home"),
            "TF_CLI_CONFIG_FILE": str(self.cli_config),
            "CHECKPOINT_DISABLE": "1",
            "TF_IN_AUTOMATION": "1",
            "TF_INPUT": "0",
            "DIGITALOCEAN_TOKEN": TOKEN,
            "DIGITALOCEAN_API_URL": api_url,
            # godo retries 4 times with 1-8 s backoff by default; fail at once instead.
            "DIGITALOCEAN_HTTP_RETRY_MAX": "0",
        }
        if cert is not None:
            env["SSL_CERT_FILE"] = str(cert)
        return {**env, **(extra or {})}

    def workdir(
        self,
        path: Path,
        stack: dict[str, Any],
        *,
        api_url: str = UNREACHABLE_API,
        cert: Path | None = None,
        extra: dict[str, str] | None = None,
    ) -> Workdir:
        workdir = Workdir(path, self.executable, self.env(api_url=api_url, cert=cert, extra=extra))
        workdir.write(stack)
        return workdir


@dataclass(frozen=True)
class Workdir:
    """One stack in a folder of its own, with its state in the same folder."""

    path: Path
    executable: Path
    env: dict[str, str]

    def write(self, stack: dict[str, Any]) -> None:
        """The stack, its backend replaced by a local state file here (local or Spaces alike).

        The path is relative to the folder, so a copy of the folder is a working
        copy of the state, with no `init` again.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / "cdk.tf.json").write_text(json.dumps(stack, indent=1))
        override = {"terraform": {"backend": {"local": {"path": self.state.name}}}}
        (self.path / BACKEND_OVERRIDE).write_text(json.dumps(override))

    @property
    def state(self) -> Path:
        return self.path / "terraform.tfstate"

    def run(self, *args: str, timeout: float = 120) -> Run:
        done = subprocess.run(
            [str(self.executable), *args],
            cwd=self.path,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return Run(tuple(args), done.returncode, done.stdout, done.stderr)

    def init(self) -> Run:
        done = self.run("init", "-input=false", "-no-color")
        if done.returncode != 0:
            raise AssertionError(f"terraform init failed in {self.path}:\n{done.output}")
        return done

    def validate(self) -> Run:
        return self.run("validate", "-json", "-no-color")

    def plan(self, *args: str, refresh: bool = True) -> Run:
        """`plan -detailed-exitcode` into plan.tfplan: 0 no changes, 2 changes, 1 error."""
        flags = [] if refresh else ["-refresh=false"]
        return self.run(
            "plan", "-input=false", "-no-color", "-json", "-detailed-exitcode",
            "-out=plan.tfplan", *flags, *args,
        )  # fmt: skip

    def show_plan(self) -> str:
        """`terraform show -json plan.tfplan`: the document plan-summary reads."""
        done = self.run("show", "-json", "-no-color", "plan.tfplan")
        if done.returncode != 0:
            raise AssertionError(f"terraform show failed in {self.path}:\n{done.output}")
        return done.stdout

    def apply(self) -> Run:
        return self.run("apply", "-input=false", "-no-color", "-auto-approve", timeout=600)


def offline_terraform(root: Path) -> OfflineTerraform:
    """Terraform with the built provider mirrored under `root`, or `Unavailable` saying why."""
    executable = shutil.which("terraform")
    if executable is None:
        raise Unavailable(
            "terraform is not installed (it is not in the package registries `make test` uses)"
        )
    provider = binary(PROVIDER_BINARY)
    if provider is None:
        raise Unavailable(why_missing(PROVIDER_BINARY))
    package = root / "mirror" / PROVIDER / PROVIDER_VERSION / _platform()
    package.mkdir(parents=True, exist_ok=True)
    target = package / f"{PROVIDER_BINARY}_v{PROVIDER_VERSION}"
    if not target.exists():
        target.symlink_to(provider)
    (root / "home").mkdir(exist_ok=True)
    terraform = OfflineTerraform(Path(executable), root)
    terraform.cli_config.write_text(
        "provider_installation {\n"
        "  filesystem_mirror {\n"
        f"    path    = {json.dumps(str(root / 'mirror'))}\n"
        f"    include = [{json.dumps(PROVIDER)}]\n"
        "  }\n"
        "  direct {\n"
        '    exclude = ["registry.terraform.io/*/*"]\n'
        "  }\n"
        "}\n"
    )
    return terraform
