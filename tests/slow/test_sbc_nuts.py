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


def test_ranks_of_prior_truths_are_uniform_for_the_baratin_form_by_importance_sampling():
    """The BaRatin form's seg2 (each control its own offset) fitted as the pipeline fits it: importance sampling
    over a breakpoint grid (ratingflow.importance), NUTS where its weights fail. 24 replications; the same KS and
    Bonferroni bound as above (false failure at most 1e-3), and most fits made by importance sampling (193 of 200
    in docs/sbc_offsets_importance.md: fewer than 12 of 24 has probability under 1e-6 at a rate of 0.9)."""
    models = ModelSettings(candidates=("seg1", "seg2"), segment_offsets=True)
    settings = SamplerSettings.from_config({
        "num_chains": 4, "num_warmup": 300, "num_samples": 500, "target_accept": 0.95, "dense_mass": True,
        "offsets": {"num_warmup": 500, "num_samples": 500, "target_accept": 0.99, "importance": True}})
    rows = sbc.run([Candidate("seg2")], 24, 13, models, settings, Priors())
    fits = rows.drop_duplicates("station")
    assert (fits["sampler"] == "importance").sum() >= 12, fits["sampler"].value_counts()
    rng = np.random.default_rng(0)
    groups = list(rows.groupby("quantity"))
    p_values = {key: sbc.ks_uniformity(part["rank"].to_numpy(), rng) for key, part in groups}
    print(sorted(p_values.items(), key=lambda kv: kv[1])[:5])
    assert len(groups) == len(sbc.quantities(Candidate("seg2"), segment_offsets=True))
    assert min(p_values.values()) > ALPHA / len(p_values)
