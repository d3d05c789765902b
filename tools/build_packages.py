"""Build what the lab's package mirror serves, once, into a cache outside the clone.

The .debs nfpm makes from the Go-built programs (tools/build_binaries.py runs
first) and each project's packaging, the part of Debian trixie the edge
installs, and a throwaway trixie root to install them into:
tests/support/mirror/build.py says what and why.

    python tools/build_packages.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.mirror.build import main

if __name__ == "__main__":
    sys.exit(main())
