"""Physical priors per control type from the sheet (issue 17): the sheet column, the context, the model's prior."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml
from numpyro.infer import Predictive

from ratingflow.data import StationData
from ratingflow.candidates import CONTROL_TYPES, Candidate, Priors, structure_for
from ratingflow.model import rating_model
from ratingflow.sheet import SheetError, load_sheet

HEAD = "station_id\tname\tfile\tstage_column\tstage_unit\tdischarge_column\tdischarge_unit\tcontrols\tbreakpoints_m\tcontrol_types\n"


def _sheet(tmp_path, row):
    raw = tmp_path / "raw"
    raw.mkdir(exist_ok=True)
    (raw / "x.csv").write_text("h,q\n1,2\n")
    path = tmp_path / "s.tsv"
    path.write_text(HEAD + "a\tA\tx.csv\th\tm\tq\tm3/s\t" + row + "\n")
    return path, raw


def test_sheet_reads_and_checks_control_types(tmp_path):
    spec = load_sheet(*_sheet(tmp_path, "2\t1.0-1.3\triffle; channel"))["a"]
    assert spec.control_type_list() == ["riffle", "channel"]
    for row, message in (("2\t\triffle;pipe", "unknown control type 'pipe'"),
                         ("3\t\triffle;channel", "2 types for 3 controls"),
                         ("\t1.0-1.3;1.5-2\triffle;channel", "2 controls need 1 breakpoint range"),
                         ("\t\triffle;channel;channel;channel", "at most 3")):
        with pytest.raises(SheetError, match=rf"row 2 .*'control_types'.*{message}"):
            load_sheet(*_sheet(tmp_path, row))


def test_schema_names_every_control_type():
    schema = yaml.safe_load(open("workflow/schemas/stations.schema.yaml"))
    text = schema["properties"]["control_types"]["description"]
    assert all(name in text for name in CONTROL_TYPES)


def _station(types):
    return StationData("s", np.linspace(1.0, 3.0, 12), np.ones(12), np.full(12, 0.05), control_types=types)


@pytest.mark.parametrize("offsets", [False, True])
def test_context_takes_the_types_of_a_candidate_with_as_many_segments(offsets):
    priors = Priors()
    structure = structure_for([Candidate("seg3")], segment_offsets=offsets)
    st = _station(("riffle", "channel"))
    seg2 = st.context(Candidate("seg2"), structure, priors)
    assert seg2["b_log_mean"][0] == pytest.approx(np.log(1.6)) and seg2["b_log_sd"][0] == pytest.approx(0.2)
    # the upper exponent is the channel's only when the channel has its own offset
    expected = (np.log(1.67), 0.1) if offsets else (np.log(priors.b_median), priors.b_upper_log_sd)
    assert (seg2["b_log_mean"][1], seg2["b_log_sd"][1]) == pytest.approx(expected)
    for other in ("seg1", "seg3"):  # a candidate with another number of controls keeps the config's prior
        ctx = st.context(Candidate(other), structure, priors)
        np.testing.assert_allclose(ctx["b_log_mean"], np.log(priors.b_median), rtol=1e-6)
        np.testing.assert_allclose(ctx["b_log_sd"], [0.35, 0.5, 0.5], rtol=1e-6)


def test_model_draws_the_exponent_from_the_type_prior():
    """Prior draws of b for a rectangular weir: median 1.5 and SD of ln b 0.035. With 4000 draws the sample
    median's SE is about 1.25 * 0.035 / sqrt(4000) = 7e-4 in ln b, and the SD's about 0.035 / sqrt(8000) = 4e-4,
    so the tolerances below (6 and 8 SE) fail by chance with probability < 1e-8."""
    structure = structure_for([Candidate("seg2")], segment_offsets=True)
    st = _station(("rectangular_weir", "channel"))
    ctx = {k: jnp.asarray(v) for k, v in st.context(Candidate("seg2"), structure, Priors()).items()}
    draws = Predictive(lambda *a: rating_model(*a, structure=structure), num_samples=4000)(
        jax.random.PRNGKey(3), jnp.asarray(st.stage_rel, jnp.float32), jnp.full(12, 0.05), ctx)
    log_b = np.log(np.asarray(draws["b"]))
    assert np.median(log_b[:, 0]) == pytest.approx(np.log(1.5), abs=6 * 7e-4)
    assert np.std(log_b[:, 0]) == pytest.approx(0.035, abs=8 * 4e-4)
    assert np.median(log_b[:, 1]) == pytest.approx(np.log(1.67), abs=6 * 0.1 * 1.25 / np.sqrt(4000))


def test_a_station_with_control_types_is_fitted_in_the_baratin_form():
    """fit_and_choose sends the multi-segment candidates of a station whose sheet names its controls to a
    program with own offsets, the others' to the config's program, and the saved structure says so."""
    from dataclasses import replace

    from ratingflow.choice import fit_and_choose
    from ratingflow.candidates import ModelSettings
    from ratingflow.posterior import fit_structure
    from ratingflow.sampler import FitResult

    rng = np.random.default_rng(0)
    calls = []
    base = structure_for([Candidate("seg1"), Candidate("seg2")], transition=0.05)

    class Driver:
        def __init__(self, structure):
            self.structure = structure

        def fit(self, stations, candidates, seed):
            calls.append((self.structure, [st.station_id for st in stations], candidates[0].name))
            out = []
            for st in stations:
                s = self.structure.max_segments
                post = {"gap": rng.lognormal(size=(4, 50)), "log_q_ref": rng.normal(size=(4, 50)),
                        "sigma": rng.lognormal(size=(4, 50)), "b": rng.lognormal(size=(4, 50, s)),
                        "log_a": rng.normal(size=(4, 50, s)), "breakpoint_rel": rng.uniform(size=(4, 50, max(s - 1, 1))),
                        "break_u": rng.normal(size=(4, 50, max(s - 1, 1)))}
                if self.structure.segment_offsets:
                    post["offset_rel"] = rng.normal(size=(4, 50, s))
                    post["offset_shift"] = post["offset_log_depth"] = rng.normal(size=(4, 50, s - 1))
                out.append({candidates[0].name: FitResult(st, candidates[0], {}, post,
                                                          {"diverging": np.zeros((4, 50), bool)},
                                                          rng.normal(-1, 0.1, (4, 50, st.n)))})
            return out

    drivers = {}

    def driver_for(structure=None):
        structure = structure or base
        return drivers.setdefault(structure, Driver(structure))

    typed, plain = _station(("riffle", "channel")), replace(_station(()), station_id="t")
    choices = fit_and_choose(driver_for, [typed, plain], [Candidate("seg1"), Candidate("seg2")], seed=1)
    seg2 = {tuple(ids): s.segment_offsets for s, ids, name in calls if name == "seg2"}
    assert seg2 == {("s",): True, ("t",): False}
    assert all(s.max_segments == 1 for s, _, name in calls if name == "seg1")
    models = ModelSettings(candidates=("seg1", "seg2"))
    assert fit_structure(choices[0].fits["seg2"], models).segment_offsets
    assert not fit_structure(choices[1].fits["seg2"], models).segment_offsets
    described = [c.table.set_index("model").loc["seg2", "description"] for c in choices]
    assert "BaRatin form" in described[0] and "BaRatin" not in described[1]


def test_offsets_study_summary_counts_per_variant():
    """offsets_study's table: converged and breakpoint-inside counts, real and simulated stations apart."""
    import pandas as pd

    from ratingflow.offsets_study import VARIANTS, summary

    rows = pd.DataFrame({
        "variant": ["offsets"] * 3 + ["offsets + sheet"], "station": ["green_channel", "two000", "two001", "green_channel"],
        "chosen": ["seg2", "seg2", "seg1", "seg2"], "converged": [False, True, False, True],
        "expected_inside": [True, True, False, True], "seg2_divergences": [0, 0, 7, 0],
        "variant_seconds": [12.4, 12.4, 12.4, 3.0]})
    table = summary(rows).set_index("variant")
    assert table.loc["offsets", "real: seg2 converged"] == "0/1"
    assert table.loc["offsets", "simulated: seg2 converged"] == "1/2"
    assert table.loc["offsets", "simulated: true breakpoint in 90 % HPDI"] == "1/2"
    assert table.loc["offsets", "divergences (all seg2 fits)"] == 7
    assert table.loc["offsets + sheet", "simulated: seg2 chosen"] == "-"
    assert table.loc["offsets", "wall s (seg1 + seg2, all stations)"] == 12
    assert all("," not in name for name in VARIANTS)  # the command line separates variants with ';'
