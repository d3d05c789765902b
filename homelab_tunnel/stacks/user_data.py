"""Rendered user_data as a Terraform string literal.

Terraform reads `${...}` and `%{...}` inside any string as interpolation, and
cdktf passes strings through untouched, so a shell script's `${VAR}` would
break the plan (or worse, be evaluated). Escaping keeps the document exactly
as rendered once Terraform has parsed it.
"""

from __future__ import annotations


def terraform_literal(text: str) -> str:
    return text.replace("${", "$${").replace("%{", "%%{")


def from_terraform_literal(text: str) -> str:
    """The inverse, as Terraform evaluates the literal (for tests and tools)."""
    return text.replace("$${", "${").replace("%%{", "%{")
