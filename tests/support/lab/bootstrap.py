"""One boot's bootstrap, as the lab reads it from the droplet: its lines and each step's record.

The droplet's bootstrap unit runs bootstrap.sh (every step of steps/order)
under its systemd; droplet_edge.py reads the unit's journal for this boot and
the record each step keeps under /run/homelab-tunnel/bootstrap/<step>.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from homelab_tunnel.payload import BOOTSTRAP_STEPS

STEP_RECORDS = "/run/homelab-tunnel/bootstrap"


@dataclass
class BootstrapRun:
    """One run: its exit code, every line it printed (timed), and each step's record."""

    returncode: int = 0
    lines: list[tuple[float, str]] = field(default_factory=list)
    steps: dict[str, str] = field(default_factory=dict)

    @property
    def output(self) -> str:
        return "".join(f"{line}\n" for _, line in self.lines)

    def step(self, name: str) -> str:
        """What step `name` did ("restore-state: ..."), '' if it did not finish."""
        assert name in BOOTSTRAP_STEPS, f"no bootstrap step {name}"
        return self.steps.get(name, "")

    def failure(self) -> str:
        found = [line for _, line in self.lines if line.startswith("homelab-tunnel: FAILED: ")]
        return found[-1].removeprefix("homelab-tunnel: FAILED: ") if found else ""
