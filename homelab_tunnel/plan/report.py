"""A `PlanSummary` as text (terminal), markdown (PR comment) or JSON (tools).

Every format leads with the verdict and spells out the consequence of each
dangerous change, because a reviewer skimming a PR reads the first line and
the warnings, not the table.
"""

from __future__ import annotations

import json
from typing import Literal

from homelab_tunnel.plan.model import Action, Change, Danger, PlanSummary

Format = Literal["text", "markdown", "json"]

_HEADLINES = {
    None: "no changes: the edge already matches the configuration",
    Danger.SAFE: "safe: only creations and in-place updates",
    Danger.IN_PLACE: "in place (no downtime): the running edge applies the new config",
    Danger.DOWNTIME: (
        "downtime: the sites go down while this applies, or something the edge relies on is removed"
    ),
    Danger.EXPOSURE: "EXPOSURE: the droplet or the backups become reachable by more than before",
    Danger.ADDRESS_CHANGE: "address change: a public address or DNS name changes",
    Danger.DATA_LOSS: "DATA LOSS: applying this destroys data that cannot be recovered",
}
_ICONS = {
    None: "✅",
    Danger.SAFE: "✅",
    Danger.IN_PLACE: "🔄",
    Danger.DOWNTIME: "⏳",
    Danger.EXPOSURE: "🔓",
    Danger.ADDRESS_CHANGE: "⚠️",
    Danger.DATA_LOSS: "🛑",
}
# An errored plan may hide any change: it never reads as "no changes" or "safe".
_ERRORED = "ERRORED: Terraform did not finish this plan, so it may not show every change"
_ERRORED_ICON = "❌"
_COUNTED = (Action.CREATE, Action.UPDATE, Action.REPLACE, Action.DELETE)


def headline(summary: PlanSummary) -> str:
    if summary.errored:
        worst = f" (worst change shown: {summary.verdict.label})" if summary.verdict else ""
        return _ERRORED + worst
    return _HEADLINES[summary.verdict]


def _icon(summary: PlanSummary) -> str:
    return _ERRORED_ICON if summary.errored else _ICONS[summary.verdict]


def counts_line(summary: PlanSummary) -> str:
    counts = summary.counts
    parts = [f"{counts[action]} to {action.value}" for action in _COUNTED]
    if counts[Action.FORGET]:
        parts.append(f"{counts[Action.FORGET]} to forget")
    return ", ".join(parts)


def render(summary: PlanSummary, fmt: Format) -> str:
    if fmt == "markdown":
        return render_markdown(summary)
    if fmt == "json":
        return render_json(summary)
    return render_text(summary)


# ---------------------------------------------------------------------------
# Text: one line per change, then what will happen
# ---------------------------------------------------------------------------


def render_text(summary: PlanSummary) -> str:
    lines = [
        f"{summary.source}: Terraform {summary.terraform_version} plan",
        f"verdict: {headline(summary)}",
        counts_line(summary),
    ]
    if summary.changes:
        lines.append("")
        width = max(len(change.address) for change in summary.changes)
        # "address change" sets the column unless a longer label is in the plan.
        danger = max(14, *(len(change.danger.label) for change in summary.changes))
        for change in summary.changes:
            why = f"  ({change.because})" if change.because else ""
            lines.append(
                f"  {change.danger.label:<{danger}} {change.action.value:<8} "
                f"{change.address:<{width}}{why}".rstrip()
            )
    findings = summary.findings()
    if findings:
        lines += ["", "what will happen:"]
        lines += [finding.line() for finding in findings]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------
# Markdown: a PR comment a reviewer can act on
# ---------------------------------------------------------------------------


def render_markdown(summary: PlanSummary) -> str:
    lines = [
        f"### {_icon(summary)} Terraform plan: {headline(summary)}",
        "",
        f"**{counts_line(summary)}** (Terraform {_md(summary.terraform_version)})",
    ]
    if summary.upgrade:
        lines += ["", f"**Upgrade:** {_md(summary.upgrade)}"]
    if summary.warnings:
        lines += ["", "**What will happen if this is applied:**", ""]
        lines += [
            f"- **{change.danger.label}** `{_code(change.address)}`: {_md(change.consequence)}"
            for change in summary.warnings
        ]
    if summary.notes:
        lines.append("")
        lines += [f"> **Note:** {_md(note)}" for note in summary.notes]
    if summary.changes:
        lines += [
            "",
            "| danger | action | resource | why |",
            "|---|---|---|---|",
        ]
        lines += [_table_row(change) for change in summary.changes]
    return "\n".join(lines) + "\n"


def _table_row(change: Change) -> str:
    why = ""
    if change.replace_paths:
        why = "forced by " + ", ".join(f"`{_code(path)}`" for path in change.replace_paths)
    elif change.because:
        why = _md(change.because)
    danger = change.danger.label if change.danger is Danger.SAFE else f"**{change.danger.label}**"
    return f"| {danger} | {change.action.value} | `{_code(change.address)}` | {why} |"


def _md(text: str) -> str:
    """Text that cannot break a table row or start markup."""
    return text.replace("|", "\\|").replace("\n", " ")


def _code(text: str) -> str:
    return text.replace("`", "'").replace("|", "\\|").replace("\n", " ")


# ---------------------------------------------------------------------------
# JSON: the same facts for other tools
# ---------------------------------------------------------------------------


def render_json(summary: PlanSummary) -> str:
    verdict = summary.verdict
    document = {
        "source": summary.source,
        "terraform_version": summary.terraform_version,
        # "errored" first: tools that look only at the verdict must not read "no-changes".
        "verdict": "errored"
        if summary.errored
        else verdict.option
        if verdict is not None
        else "no-changes",
        "headline": headline(summary),
        "counts": {action.value: count for action, count in summary.counts.items()},
        "changes": [
            {
                "address": change.address,
                "type": change.resource_type,
                "action": change.action.value,
                "danger": change.danger.option,
                "replace_paths": list(change.replace_paths),
                "action_reason": change.action_reason,
                "consequence": change.consequence,
            }
            for change in summary.changes
        ],
        "notes": list(summary.notes),
        "errored": summary.errored,
        "upgrade": summary.upgrade,
        "snapshot_first": summary.snapshot_first,
        "findings": [finding.to_json() for finding in summary.findings()],
    }
    return json.dumps(document, indent=2) + "\n"
