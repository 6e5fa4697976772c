"""``python -m lls``: see :mod:`lls.cli`."""

import sys

from lls.cli import main

sys.exit(main())
