"""``python -m netspec``."""

import sys

from netspec.cli import main

sys.exit(main())
