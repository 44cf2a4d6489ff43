"""Allow `python -m jincun`."""

import sys

from jincun.cli import main

sys.exit(main())
