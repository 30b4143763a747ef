"""Simulation-based calibration, small: the pipeline's sampler and model recover truths drawn from the prior.

The study itself (200 replications per candidate, docs/sbc.md) is ``python -m ratingflow.sbc``; this runs
24 replications of seg1 and seg2 with shorter chains. Under calibration each quantity's KS p-value (on
ranks spread at random over their level, exact at any size) is uniform, so with a Bonferroni bound over the
quantities the test fails by chance with probability at most 1e-3."""
import numpy as np

from ratingflow.sbc import ranks as sbc
from ratingflow.candidates import Candidate, ModelSettings, Priors
from ratingflow.sampler import SamplerSettings
from stats import ALPHA


SETTINGS = SamplerSettings(num_chains=4, num_warmup=300, num_samples=500, target_accept=0.95, dense_mass=True)


def test_ranks_of_prior_truths_are_uniform():
    models = ModelSettings(candidates=("seg1", "seg2"))
    rows = sbc.run([Candidate("seg1"), Candidate("seg2")], 24, 11, models, SETTINGS, Priors())
    rng = np.random.default_rng(0)
    groups = list(rows.groupby(["model", "quantity"]))
    p_values = {key: sbc.ks_uniformity(part["rank"].to_numpy(), rng) for key, part in groups}
    print(sorted(p_values.items(), key=lambda kv: kv[1])[:5])
    assert len(groups) == len(sbc.quantities(Candidate("seg1"))) + len(sbc.quantities(Candidate("seg2")))
    assert min(p_values.values()) > ALPHA / len(p_values)
