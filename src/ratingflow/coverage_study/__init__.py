"""Coverage study: are the rating curve's bands right?

This is a statistical check of the fitted bands, not input validation. Three parts, each can be skipped:

1. simulation: synthetic stations with a known true curve, fitted with model choice as in the pipeline;
2. held-out: K-fold cross-validation on real stations' gaugings;
3. peer: USGS ``ratingcurve==1.1.0`` on the same folds, in its own interpreter.

:mod:`.study` holds the study itself, :mod:`.peer` runs the peer, :mod:`.report` writes the Markdown
report, and ``python -m ratingflow.coverage_study --help`` is the command line.
"""
