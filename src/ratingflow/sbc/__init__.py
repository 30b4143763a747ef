"""Simulation-based calibration (Talts et al. 2018, arXiv:1804.06788) of every candidate model.

    python -m ratingflow.sbc --reps 200 --out docs/sbc.md

Modules: :mod:`.ranks` (replications, fits, ranks, uniformity tests), :mod:`.report` (the command and its
report)

For each candidate and replication: a station design (gauged stages and stated uncertainties of a
:mod:`ratingflow.synthetic` station, with its priors' context), parameters drawn from the *model's own
prior*, gaugings simulated from the model's likelihood, then NUTS with the config's sampler and model
structure, exactly as the pipeline fits. If the sampler and the model code are right, the rank of each
true quantity among (thinned) posterior draws is uniform, whatever the prior. A rank test that fails
points at the sampler or the implementation; a coverage study that misses while SBC passes points at a
mismatch between the prior and the world that made the data (or at a model that is not the true one).

Quantities ranked: every parameter of the candidate, ln Q of the curve at 10, 30, 50, 70 and 90 % of the
gauged stage range, and the log-likelihood of the simulated gaugings (sensitive to a joint error).
Uniformity: a chi-square test on :data:`.ranks.BINS` equal bins of the ranks, Bonferroni-corrected over every test
of the run.
"""
