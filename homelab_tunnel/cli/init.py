"""`init`: a first, commented config, from flags or from questions at a terminal.

Flags answer; a terminal is asked only for what they left out. Each answer
is checked by the config model as it is given, with the line `check` would
print; the file is written only once complete, never over an existing one.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer

from homelab_tunnel.cli.app import DEFAULT_CONFIG, app, at_terminal, reports_input_errors
from homelab_tunnel.config import REGIONS
from homelab_tunnel.config.starter import (
    Answers,
    SiteAnswer,
    default_backup_region,
    default_base_domain,
    default_headscale_domain,
    problems_with,
    read_back,
    starter_toml,
)
from homelab_tunnel.errors import InputError
from homelab_tunnel.payload import checked_user_data_size

SITE = re.compile(r"(?P<domain>[^=]+)=(?P<upstream>[^:]+):(?P<port>[^:]+)(?::(?P<scheme>[^:]*))?")
SITE_FORM = "DOMAIN=MACHINE:PORT[:https], e.g. blog.example.com=homelab:8080"


def _site(spec: str) -> SiteAnswer:
    match = SITE.fullmatch(spec)
    if match is None or match["scheme"] not in (None, "http", "https"):
        raise InputError("--site", [f"{spec!r} is not {SITE_FORM}"])
    return SiteAnswer(
        match["domain"], match["upstream"], _port(match["port"]), match["scheme"] == "https"
    )


def _port(text: str) -> int | str:
    """A number when it is one; otherwise the text, which the model refuses as check would."""
    return int(text) if text.isascii() and text.isdigit() else text


# Each answer and the config field that checks it.
FIELDS = {
    "name": "name",
    "region": "region",
    "zone": "dns.zone",
    "headscale_domain": "headscale.domain",
    "base_domain": "headscale.base_domain",
    "email": "alert_email",
    "backup_region": "backup.region",
    "recipients": "backup.recipients",
    "sites": "sites",
}


def _flag_problems(answers: Answers, given: list[str]) -> list[str]:
    """Every problem with what the flags said, at once, as check words them."""
    checked = answers.with_defaults()
    problems: list[str] = []
    for name in given:
        problems += problems_with(checked, FIELDS[name])
    return list(dict.fromkeys(problems))


@app.command()
@reports_input_errors
def init(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="The config file to write (never overwritten).")
    ] = DEFAULT_CONFIG,
    name: Annotated[
        str | None, typer.Option("--name", help="Stack name; names the droplet and volume.")
    ] = None,
    region: Annotated[
        str | None, typer.Option("--region", help="DigitalOcean region, e.g. fra1.")
    ] = None,
    zone: Annotated[
        str | None, typer.Option("--zone", help="DigitalOcean DNS zone holding every name.")
    ] = None,
    headscale_domain: Annotated[
        str | None,
        typer.Option(
            "--headscale-domain", help="Headscale's public name (default: headscale.ZONE)."
        ),
    ] = None,
    base_domain: Annotated[
        str | None,
        typer.Option("--base-domain", help="The tailnet's MagicDNS domain (default: tail.ZONE)."),
    ] = None,
    site: Annotated[
        list[str] | None,
        typer.Option("--site", metavar="DOMAIN=MACHINE:PORT[:https]", help="A site (repeatable)."),
    ] = None,
    email: Annotated[
        str | None, typer.Option("--email", help="Alerts and Let's Encrypt's account email.")
    ] = None,
    backups: Annotated[
        bool | None,
        typer.Option(
            "--backups/--no-backups", help="Off-box backups to a Spaces bucket (about $5/month)."
        ),
    ] = None,
    backup_region: Annotated[
        str | None,
        typer.Option(
            "--backup-region", help="Spaces region of the backups (default: one near the edge's)."
        ),
    ] = None,
    backup_recipient: Annotated[
        list[str] | None,
        typer.Option(
            "--backup-recipient", metavar="AGE1...", help="Your age public key (repeatable)."
        ),
    ] = None,
) -> None:
    """Write a first, commented config: from the flags, asking at a terminal for what is missing.

    Each answer is checked with the rules `check` applies; an existing file is
    never overwritten.
    """
    source = str(out)
    _refuse_existing(out)
    sites = tuple(_site(spec) for spec in site or [])
    answers = Answers(
        name=name,
        region=region,
        zone=zone,
        headscale_domain=headscale_domain,
        base_domain=base_domain,
        sites=sites,
        email=email or None,
        backups=bool(backups) or bool(backup_recipient) or backup_region is not None,
        backup_region=backup_region,
        recipients=tuple(backup_recipient or ()),
    )
    if backups is False and answers.backups:
        raise InputError("--no-backups", ["--backup-region and --backup-recipient need backups"])
    given = [key for key, value in vars(answers).items() if key in FIELDS and value]
    problems = _flag_problems(answers, given)
    if problems:
        raise InputError(source, problems)
    if answers.missing:
        if not at_terminal():
            raise InputError(
                "init",
                [f"{flag}: required (no terminal to ask on)" for flag in answers.missing],
            )
        ask_backups = backups is None and not answers.backups
        answers = Questions(answers, source, ask_backups=ask_backups).ask()
    text = starter_toml(answers)
    checked_user_data_size(read_back(text, source), source)
    _write_new(out, text)
    typer.echo(f"wrote {out}")
    typer.echo(f"next: homelab-tunnel check --config {out}")


def _refuse_existing(out: Path) -> None:
    if out.exists() or out.is_symlink():
        raise InputError(
            str(out),
            ["exists already; init never overwrites a file: give another --out, or edit this one"],
        )


def _write_new(out: Path, text: str) -> None:
    """All of the file or nothing, and never over a file that appeared meanwhile."""
    folder = out.absolute().parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix=f".{out.name}.", dir=folder)
        staged = Path(name)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                stream.write(text)
            staged.chmod(0o644)
            os.link(staged, out)  # fails if `out` exists: never replaced
        finally:
            staged.unlink()
    except FileExistsError:
        _refuse_existing(out)
        raise
    except OSError as exc:
        raise InputError(str(out), [f"cannot write: {exc.strerror or exc}"]) from None


# ---------------------------------------------------------------------------
# At a terminal
# ---------------------------------------------------------------------------


class Questions:
    """Ask for each answer the flags left out, re-asking until `check` has nothing to say."""

    def __init__(self, answers: Answers, source: str, *, ask_backups: bool) -> None:
        self.answers = answers
        self.source = source
        self.ask_backups = ask_backups

    def ask(self) -> Answers:
        given = self.answers
        self._text("name", "Stack name (names the droplet and its volume)", "homelab-edge")
        self._text("region", f"DigitalOcean region ({', '.join(REGIONS)})", None)
        self._text("zone", "DNS zone in your DigitalOcean account (e.g. example.com)", None)
        zone = self.answers.zone or ""
        self._text("headscale_domain", "Headscale's public name", default_headscale_domain(zone))
        self._text("base_domain", "The tailnet's MagicDNS domain", default_base_domain(zone))
        if not given.sites:
            self._sites()
        if given.email is None:
            self._text("email", "Email for alerts and Let's Encrypt (empty: none)", "")
        if self.ask_backups and typer.confirm(
            "Back up Headscale's database and keys to a Spaces bucket (about $5/month)?",
            default=True,
        ):
            self.answers = replace(self.answers, backups=True)
        if self.answers.backups:
            region = default_backup_region(self.answers.region)
            self._text("backup_region", "Spaces region of the backups", region)
            if not self.answers.recipients:
                self._recipient()
        return self.answers

    def _check(self, answers: Answers, field_path: str) -> bool:
        """Keep the answer if check finds nothing wrong with it; else print check's lines."""
        problems = problems_with(answers, field_path)
        for line in InputError(self.source, problems).lines():
            typer.echo(line, err=True)
        if not problems:
            self.answers = answers
        return not problems

    def _text(self, key: str, question: str, default: str | None) -> None:
        if getattr(self.answers, key):
            return
        while True:
            value = typer.prompt(question, default=default, show_default=bool(default)).strip()
            if key == "email" and not value:
                return
            if self._check(replace(self.answers, **{key: value}), FIELDS[key]):
                return

    def _recipient(self) -> None:
        while True:
            value = typer.prompt("Your age public key (`age-keygen -o owner.key` prints it)")
            answers = replace(self.answers, recipients=(value.strip(),))
            if self._check(answers, "backup.recipients"):
                return

    def _sites(self) -> None:
        while True:
            index = len(self.answers.sites)
            self._one_site(index)
            if not typer.confirm("Add another site?", default=False):
                return

    def _one_site(self, index: int) -> None:
        before = self.answers.sites
        zone = self.answers.zone or "example.com"
        # The answers so far; the stand-ins for the rest are valid, so only the answer shows.
        site: dict[str, Any] = {"domain": f"www.{zone}", "upstream": "homelab", "port": 8080}
        asked = [
            ("domain", f"Site {index + 1}: public domain (e.g. blog.{zone})", None),
            ("upstream", "  tailnet machine that serves it", "homelab"),
            ("port", "  port on that machine", None),
        ]
        for key, question, default in asked:
            while True:
                text = typer.prompt(question, default=default).strip()
                candidate = site | {key: _port(text) if key == "port" else text}
                answers = replace(self.answers, sites=(*before, SiteAnswer(**candidate)))
                if self._check(answers, f"sites.{index}.{key}"):
                    site = candidate
                    break
        https = typer.confirm("  does it serve HTTPS itself?", default=False)
        self.answers = replace(self.answers, sites=(*before, SiteAnswer(**site, https=https)))
