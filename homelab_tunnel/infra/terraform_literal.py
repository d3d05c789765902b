"""Strings as Terraform literals.

Terraform reads `${...}` and `%{...}` inside any string as interpolation, and
cdktf passes strings through untouched, so a shell script's `${VAR}` would
break the plan (or worse, be evaluated). Escaping keeps the text exactly as
written once Terraform has parsed it.
"""

from __future__ import annotations


def terraform_literal(text: str) -> str:
    return text.replace("${", "$${").replace("%{", "%%{")
