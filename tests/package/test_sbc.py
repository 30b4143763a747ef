"""Simulation-based calibration's parts (no NUTS): the replications, ranks and uniformity tests."""

import jax
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ratingflow.sbc import ranks as sbc
from ratingflow.candidates import Candidate, ModelSettings, Priors
from ratingflow.sbc.report import band, central_coverage


def test_ranks_count_the_draws_below_and_split_ties():
    rng = np.random.default_rng(0)
    assert sbc.rank(0.5, np.array([0.1, 0.2, 0.9]), rng) == 2
    assert {sbc.rank(1.0, np.array([1.0, 1.0, 0.0]), rng) for _ in range(200)} == {1, 2, 3}
    draws = np.arange(4000.0).reshape(4, 1000)
    kept = sbc.thin({"a": draws, "b": np.stack([draws, -draws], axis=-1)})
    assert len(kept["a"]) == sbc.THINNED and kept["a"][0] == 0 and kept["a"][-1] == 3999
    assert np.all(np.diff(kept["a"]) > 30) and np.array_equal(kept["b"][:, 1], -kept["a"])


def test_uniformity_tests_pass_uniform_ranks_and_fail_a_narrow_posterior():
    """Uniform ranks: each p-value is uniform, so p < 1e-4 has probability 1e-4 (two tests: 2e-4). Ranks of a
    posterior too narrow by half (truth ~ N(0, 1), draws ~ N(0, 0.25)) pile at both ends: p is below 1e-6."""
    rng = np.random.default_rng(1)
    uniform = rng.integers(0, sbc.THINNED + 1, 200)
    assert sbc.uniformity(uniform) > 1e-4 and sbc.ks_uniformity(uniform, rng) > 1e-4
    narrow = [sbc.rank(rng.normal(), rng.normal(0, 0.5, sbc.THINNED), rng) for _ in range(200)]
    assert sbc.uniformity(np.array(narrow)) < 1e-6 and sbc.ks_uniformity(np.array(narrow), rng) < 1e-6


def test_report_tables_from_ranks():
    rows = pd.DataFrame({"model": "seg1", "station": np.repeat([f"s{i}" for i in range(100)], 2), "n": 20,
                         "quantity": ["curve@0.5", "gap"] * 100, "rank": np.tile([50, 0], 100)})
    table = sbc.tests(rows)
    assert list(table["quantity"]) == ["curve@0.5", "gap"] and table["p_corrected"].iloc[1] < 1e-10
    assert table["outside_90"].tolist() == [0.0, 1.0]  # rank 0: below every draw
    # the curve's truth always at the middle rank: inside every central interval
    cover = central_coverage(rows, sbc.THINNED + 1)
    assert cover["central 50 %"].item() == 1.0 and cover["points"].item() == 100
    assert band(200) == pytest.approx(np.sqrt(np.log(200) / 400))


@pytest.mark.parametrize("name", ["seg1", "seg2"])
def test_a_replication_is_drawn_from_the_model(name):
    """The simulated gaugings are the prior draw's, with the design's stages and stated uncertainty, and the
    true log-likelihood is the Normal density of ln Q around the true curve."""
    models = ModelSettings()
    structure = models.structure(models.candidate_list())
    design = sbc.designs(1, 5)[0]
    rep = sbc.replicate(design, Candidate(name), structure, Priors(), jax.random.PRNGKey(2))
    st = rep.station
    np.testing.assert_array_equal(st.stage, design[1])
    np.testing.assert_allclose(st.discharge_sd / st.discharge, design[2])
    np.testing.assert_allclose(np.log(st.discharge), rep.sites["log_discharge"][0], rtol=1e-6)
    assert set(rep.truth) == set(sbc.quantities(Candidate(name)))
    assert rep.truth["gap"] == pytest.approx(float(rep.sites["gap"][0]))
    sd = np.sqrt(rep.sites["sigma"][0] ** 2 + st.sd_log**2)
    expected = stats.norm.logpdf(np.log(st.discharge), rep.sites["log_curve"][0], sd).sum()
    assert rep.truth["log_lik"] == pytest.approx(expected, rel=1e-4, abs=1e-3)
    if name == "seg2":
        lo, hi = st.context(Candidate(name), structure)["break_lo"][0], st.context(Candidate(name), structure)["break_hi"][0]
        assert lo <= rep.truth["breakpoint[0]"] <= hi


def test_generator_replications_carry_the_generators_truth():
    """In the generator's world the true curve, read through the model at the generator's parameters, is the
    generator's own discharge at the check stages."""
    from ratingflow.synthetic import draw_station

    models = ModelSettings()
    structure = models.structure(models.candidate_list())
    reps = sbc.from_generator(3, 2, structure, Priors(), jax.random.PRNGKey(0))
    rng = np.random.default_rng(3)
    for rep in reps:  # the same draws as from_generator's, from the same seed
        st, truth = draw_station(rng, rep.station.station_id, int(rng.integers(15, 41)), two_control_share=0.0)
        np.testing.assert_allclose(st.discharge, rep.station.discharge)
        stages = st.stage.min() + np.array(sbc.STAGE_FRACTIONS) * np.ptp(st.stage)
        curve = [rep.truth[f"curve@{f:.1f}"] for f in sbc.STAGE_FRACTIONS]
        np.testing.assert_allclose(curve, np.log(truth.discharge(stages)), atol=1e-4)


def test_a_candidate_the_config_does_not_list_is_fitted_in_a_structure_that_holds_it(monkeypatch):
    """``--candidates gplm`` with a config listing seg1 and seg2: the fits' structure is the pipeline's had gplm been
    listed too (its exponent terms; the KeyError 'exponent_w' before), with the config's segments."""
    from ratingflow import sampler

    seen = []

    class Stop(Exception):
        pass

    class Recorder:
        def __init__(self, structure, settings, priors):
            seen.append(structure)
            raise Stop

    monkeypatch.setattr(sampler, "BatchedNUTS", Recorder)
    for names in (("gplm",), ("seg1",)):
        with pytest.raises(Stop):
            sbc.run([Candidate(n) for n in names], 1, 0, ModelSettings(candidates=("seg1", "seg2")), None, Priors())
    assert seen[0].gplm_terms > 0 and seen[0].max_segments == 2
    assert seen[1].gplm_terms == 0 and seen[1].max_segments == 2
