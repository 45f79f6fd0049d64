"""``python -m upscaler_edge``: the CLI, and ``--gui`` / ``--bot`` front doors."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
