"""The `mleb` console script. The slim client (inside agent images) has no command line of
its own beyond mleb-validate: this says what to install instead of failing on an import."""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from mleb.lab.cli import build_app
    except ImportError as exc:
        sys.exit(
            f"mleb: the command line needs the lab extra ({exc.name} is not installed): "
            "pip install 'mleb[lab]'"
        )
    build_app()()
