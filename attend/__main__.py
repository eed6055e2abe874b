"""`python -m attend` is the `attend` command."""

import sys

from attend.cli import main

sys.exit(main())
