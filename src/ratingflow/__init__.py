"""ratingflow: Bayesian stage-discharge rating curves for many stations."""

__version__ = "0.1.0"
