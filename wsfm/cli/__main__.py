"""``python -m wsfm.cli ARGS``: the same as the ``wsfm`` console script."""

import sys

from wsfm.cli.app import main

sys.exit(main())
