"""`python -m tf_sine`: runs the command line."""

import sys

from tf_sine.cli import main

sys.exit(main())
