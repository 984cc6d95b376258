"""``python -m mdnworld ...`` = the ``mdnworld`` command (for machines where the package is
on PYTHONPATH but not installed)."""

import sys

from mdnworld.cli import main

sys.exit(main())
