"""What a synthesized stack contains, read back from its cdk.tf.json."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class StackSummary:
    stack: str
    path: Path
    resources: Counter[str]
    outputs: dict[str, Any]

    @property
    def resource_count(self) -> int:
        return sum(self.resources.values())


def summarize_stack(path: Path) -> StackSummary:
    document = json.loads(path.read_text(encoding="utf-8"))
    return StackSummary(
        stack=document["//"]["metadata"]["stackName"],
        path=path,
        resources=Counter({kind: len(items) for kind, items in document["resource"].items()}),
        outputs={name: body["value"] for name, body in document.get("output", {}).items()},
    )
