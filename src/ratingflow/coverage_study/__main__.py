"""``python -m ratingflow.coverage_study``: see :mod:`.cli`."""
import sys

from .cli import main

sys.exit(main())
