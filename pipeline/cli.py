"""Transitional alias of ``workflows.cli`` for callers not yet moved (``python -m pipeline.cli``): delete it once
nothing imports ``pipeline.cli``. It imports ``workflows`` only when called, so ``pipeline`` does not depend on it.
"""

from __future__ import annotations

import importlib
import sys


def main(argv: list[str] | None = None) -> int:
    """``workflows.cli.main``."""
    return int(importlib.import_module("workflows.cli").main(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
