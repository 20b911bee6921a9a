"""`python -m raccoon` runs the `raccoon` command."""

import sys

from raccoon.cli import main

sys.exit(main())
