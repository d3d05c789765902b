"""Pinned versions of what the edge runs."""

from __future__ import annotations

HEADSCALE_VERSION = "0.29.2"
