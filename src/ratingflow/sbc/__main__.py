"""``python -m ratingflow.sbc``: see :mod:`ratingflow.sbc.report`."""
from .report import main

raise SystemExit(main())
