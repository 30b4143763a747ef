"""The own-offsets round of the fit (issue 17): a chosen one-h0 seg2 fit that the own-offsets check flags is fitted
in the BaRatin form, which takes its place where it passes the diagnostics gate. A fake driver stands in for NUTS,
so every assertion is about what the round does with the fits it is given (deterministic)."""

import numpy as np
import pytest

from ratingflow import synthetic
from ratingflow.candidates import Candidate, structure_for
from ratingflow.choice import fit_and_choose
from ratingflow.sampler import FitResult, SamplerSettings

pytestmark = pytest.mark.package

CANDIDATES = [Candidate("seg1"), Candidate("seg2")]
#: every fit passes it (draws are independent normals) / none does (ESS can't reach 1e9)
PASS = {"rhat_max": 100.0, "ess_bulk_min": 0, "ess_tail_min": 0, "max_divergences": 0}
FAIL = {**PASS, "ess_bulk_min": 1e9}
#: mean log density per gauging: seg2 beats seg1 clearly, and the BaRatin form beats one h0
LOG_DENSITY = {("seg1", False): -3.0, ("seg2", False): -1.0, ("seg2", True): -0.5}


class Driver:
    """Records its calls; returns independent normal draws and a fixed log density per candidate and form.
    ``density(station, name, offsets, n)``: each gauging's log density instead; ``unconverged``: the (station, name,
    offsets) whose chains are drawn apart (R-hat far above 1)."""

    def __init__(self, structure, calls, density=None, unconverged=()):
        self.structure, self.settings, self.calls = structure, SamplerSettings(), calls
        self.density, self.unconverged = density, unconverged

    def fit(self, stations, candidates, seed):
        rng = np.random.default_rng(seed)
        out = []
        for st in stations:
            res = {}
            for c in candidates:
                self.calls.append((st.station_id, c.name, self.structure.segment_offsets))
                s = self.structure.max_segments
                post = {"gap": rng.lognormal(size=(4, 200)), "log_q_ref": rng.normal(size=(4, 200)),
                        "sigma": rng.lognormal(size=(4, 200)), "b": rng.lognormal(size=(4, 200, s)),
                        "log_a": rng.normal(size=(4, 200, s)), "breakpoint_rel": rng.uniform(size=(4, 200, s - 1)),
                        "break_u": rng.normal(size=(4, 200, s - 1))}
                if self.structure.segment_offsets:
                    post["offset_rel"] = rng.normal(size=(4, 200, s))
                    post["offset_shift"] = post["offset_log_depth"] = rng.normal(size=(4, 200, s - 1))
                form = (st.station_id, c.name, self.structure.segment_offsets)
                if form in self.unconverged:
                    post["gap"] = post["gap"] + 10.0 * np.arange(4)[:, None]
                mean = (LOG_DENSITY[(c.name, self.structure.segment_offsets)] if self.density is None
                        else self.density(*form, st.n))
                res[c.name] = FitResult(st, c, {}, post, {"diverging": np.zeros((4, 200), bool)},
                                        rng.normal(mean, 0.01, (4, 200, st.n)))
            out.append(res)
        return out


def _stations():
    """A channel control with its own zero flow (0.8 m) above a section control (h0 0): the check flags it (z 5.9
    against 1.5 when written; 3.1-6.5 on 20 such stations, tests/package/test_screen.py); and a one-control station,
    which the check does not flag (z 0.1). The gaugings are NumPy's, the same on every machine, and the margins are
    far beyond the order of floating-point sums."""
    rng = np.random.default_rng(20261205)
    two = synthetic.two_controls("two", 5.0, 2.6, 0.0, 0.03, 1.0, 1.3, h02=0.8)
    one = synthetic.Truth("one", 1, 5.0, 1.8, 0.0, 0.03)
    return [synthetic.station_data(t, synthetic.gaugings(rng, t, 100)) for t in (two, one)]


def _run(gate, own_offsets_z=1.5, screen_z=None, seg1_z=None, candidates=CANDIDATES, ahead_z=None, **driver):
    calls, drivers = [], {}
    base = structure_for(candidates, transition=0.05)

    def driver_for(structure=None):
        structure = structure or base
        return drivers.setdefault(structure, Driver(structure, calls, **driver))

    return fit_and_choose(driver_for, _stations(), candidates, seed=1, own_offsets_z=own_offsets_z, gate=gate,
                          screen_z=screen_z, own_offsets_seg1_z=seg1_z, own_offsets_ahead_z=ahead_z), calls


def test_a_flagged_one_h0_fit_is_replaced_by_the_baratin_form_where_it_passes_the_gate():
    (two, one), calls = _run(PASS)
    assert ("two", "seg2", True) in calls and ("one", "seg2", True) not in calls
    assert two.chosen == "seg2" and "offset_rel" in two.fit.posterior
    row = two.table.set_index("model").loc["seg2"]
    assert "BaRatin form" in row["description"]
    assert row["own_offsets"].startswith("own-offsets check: profile leave-one-out gain")
    assert "replaced the one-h0 fit" in row["own_offsets"]
    # the one-control station: seg2 is chosen too (the fake's log density), but the check does not flag it
    assert one.chosen == "seg2" and "offset_rel" not in one.fit.posterior and "own_offsets" not in one.table


def test_at_minus_infinity_every_chosen_one_h0_seg2_fit_goes_to_the_baratin_form():
    """``models.own_offsets: -.inf`` (the config's default): the one-control station, whose check does not flag it, is
    fitted in the form too, and its row says why; at 1.5 (above) it is not."""
    (two, one), calls = _run(PASS, own_offsets_z=-np.inf)
    assert ("two", "seg2", True) in calls and ("one", "seg2", True) in calls
    for choice in (two, one):
        assert choice.chosen == "seg2" and "offset_rel" in choice.fit.posterior
        note = choice.table.set_index("model").loc["seg2", "own_offsets"]
        assert note.startswith("every chosen one-h0 seg2 (own-offsets check: profile leave-one-out gain")
        assert "replaced the one-h0 fit" in note


def test_the_one_h0_fit_stays_where_the_baratin_form_fails_the_gate():
    (two, _), calls = _run(FAIL)
    assert ("two", "seg2", True) in calls
    assert two.chosen == "seg2" and "offset_rel" not in two.fit.posterior
    note = two.table.set_index("model").loc["seg2", "own_offsets"]
    assert "failed the diagnostics gate" in note and "ESS" in note and note.endswith("one h0 kept")


def test_no_round_without_a_threshold_and_a_threshold_needs_the_gate():
    (two, _), calls = _run(PASS, own_offsets_z=None)
    assert not any(form for _, _, form in calls) and "offset_rel" not in two.fit.posterior
    with pytest.raises(ValueError, match="gate"):
        _run(None)


def test_the_retry_keeps_the_rounds_note():
    """A kept one-h0 fit that fails the gate is retried (ratingflow.fit.retry_round); the seg2 row still says what
    the own-offsets round did."""
    from ratingflow.fit import retry_round

    (two, one), _ = _run(FAIL)
    calls = []
    retry = Driver(structure_for(CANDIDATES, transition=0.05), calls)
    out = retry_round(lambda structure=None: retry, _stations(), [two, one], 1, 2.0, FAIL)
    assert ("two", "seg2", False) in calls
    table = out[0].table.set_index("model")
    assert table.loc["seg2", "retry"].startswith("fitted again") and table.loc["seg2", "own_offsets"].endswith("one h0 kept")
    assert table.loc["seg1", "own_offsets"] == ""


@pytest.mark.parametrize("types", [(), ("riffle", "channel")])
def test_the_baratin_form_starts_at_its_own_profile_optimum(types):
    """A two-segment fit in the BaRatin form starts where the BaRatin profile fits best (the upper control's own
    zero-flow stage, not h0's): with a sharp change, the model's curve at the start is the profile's curve, and each
    control's exponent is the profile's, whether its exponent is sampled as the control's own (a typed control) or as
    if it kept the lower control's offset (deterministic algebra)."""
    from dataclasses import replace

    import jax.numpy as jnp
    from numpyro import handlers

    from ratingflow.initial import init_centre, offset_columns, offsets_profile
    from ratingflow.model import rating_model

    st = replace(_stations()[0], control_types=types)
    structure = structure_for([Candidate("seg3")], segment_offsets=True)  # transition 0: a sharp change
    centre = init_centre(st, Candidate("seg2"), structure)
    best = offsets_profile(st, structure)
    assert best["shift"] < -0.5  # the channel's zero flow lies well above h0
    values = {**{k: centre[k] for k in ("break_u", "offset_log_depth", "log_q_ref", "sigma_z")},
              "gap": np.exp(centre["gap"]), "b": np.exp(centre["b"])}
    context = {k: jnp.asarray(v) for k, v in st.context(Candidate("seg2"), structure).items()}
    trace = handlers.trace(handlers.seed(handlers.substitute(rating_model, data=values), 0)).get_trace(
        jnp.asarray(st.stage_rel, jnp.float32), jnp.asarray(st.sd_log, jnp.float32), context, structure=structure)
    profile = offset_columns(st.stage_rel, best["gap"], np.array([best["break"]]), np.array([best["shift"]]))[0]
    np.testing.assert_allclose(trace["log_curve"]["value"], profile @ best["coef"], atol=2e-4)
    np.testing.assert_allclose(trace["b_control"]["value"][:2], best["coef"][1:], rtol=1e-4)


def test_a_kept_seg1_whose_one_h0_seg2_failed_the_gate_with_most_of_the_weight_gets_the_baratin_form():
    """seg2 predicts half the gaugings better by 0.5 and the other half worse by 0.45 (in ln density): its elpd gain,
    2.5, lies within 2 SE of seg1's (SE 4.75), so seg1 is kept, and stacking gives seg2 a weight of about 0.61. Its
    one-h0 fit at station "two" has chains drawn apart: it fails the gate there, and the BaRatin form (which
    converges) is fitted and takes its place; at "one" the one-h0 fit converged and nothing is refitted."""
    gate = {**PASS, "rhat_max": 1.5}

    def density(station, name, offsets, n):
        if name == "seg1":
            return np.zeros(n)
        return np.where(np.arange(n) % 2 == 0, 0.5, -0.45)

    (two, one), calls = _run(gate, density=density, unconverged={("two", "seg2", False)})
    assert ("two", "seg2", True) in calls and ("one", "seg2", True) not in calls
    assert one.chosen == "seg1" and "own_offsets" not in one.table
    assert one.table.set_index("model").loc["seg2", "weight"] >= 0.5
    assert "offset_rel" in two.fits["seg2"].posterior and two.chosen == "seg1"
    note = two.table.set_index("model").loc["seg2", "own_offsets"]
    assert note.startswith("the one-h0 fit failed the diagnostics gate (R-hat") and "stacking weight 0.6" in note
    assert note.endswith(")") and "replaced the one-h0 fit" in note
    # with the mixture, the kept seg1 and the BaRatin seg2 both count in the bands
    from ratingflow.mixture import weights

    assert set(weights(two, gate)) == {"seg1", "seg2"}


@pytest.mark.parametrize("gate", [PASS, FAIL])
def test_a_kept_seg1_whose_seg2_the_screen_ruled_out_gets_the_baratin_form_where_its_profile_beats_seg1(gate):
    """The screen's threshold set at 20 SE rules seg2 out at both stations (its one-h0 profile gain over seg1 is
    10.9 SE at "two", -1.0 at "one"), so seg1 is kept. The BaRatin form's profile gain over seg1 is 15.0 SE at "two"
    and -1.2 at "one" (deterministic least squares on NumPy's gaugings): with ``own_offsets_seg1`` at 1.0 the form is
    fitted at "two" only. Where it passes the gate it joins the choice as seg2 (the fake's density makes it the
    best); where it fails, seg1 stays and seg2 stays unfitted, listed once."""
    (two, one), calls = _run(gate, screen_z=20.0, seg1_z=1.0)
    assert [c for c in calls if c[1] == "seg2"] == [("two", "seg2", True)]
    assert one.chosen == "seg1" and "own_offsets" not in one.table
    table = two.table.set_index("model")
    assert list(two.table["model"]).count("seg2") == 1
    note = table.loc["seg2", "own_offsets"]
    assert note.startswith("the screen ruled seg2 out, but the BaRatin form's profile leave-one-out gain over seg1")
    if gate is PASS:
        assert two.chosen == "seg2" and "offset_rel" in two.fit.posterior and bool(table.loc["seg2", "fitted"])
        assert note.endswith("joined the choice")
    else:
        assert two.chosen == "seg1" and "seg2" not in two.fits and not bool(table.loc["seg2", "fitted"])
        assert note.endswith("seg2 not fitted")
    # without the setting, nothing is fitted in the form
    _, calls = _run(gate, screen_z=20.0)
    assert not [c for c in calls if c[1] == "seg2"]


def test_the_round_fits_the_baratin_form_with_its_own_transition():
    """``form_transition`` (config ``models.offsets_transition``): the round's BaRatin fits run in a structure with
    that rounding of the change of control, the one-h0 fits keep the base structure's; None keeps the base's for
    both. ``ModelSettings`` gives the same to a config with ``segment_offsets`` (the SBC and the studies)."""
    from ratingflow.candidates import ModelSettings

    for form_transition, expected in ((0.0, 0.0), (None, 0.05)):
        seen = {}
        base = structure_for(CANDIDATES, transition=0.05)

        def driver_for(structure=None):
            structure = structure or base
            seen[structure.segment_offsets] = structure.transition
            return Driver(structure, [])

        fit_and_choose(driver_for, _stations(), CANDIDATES, seed=1, own_offsets_z=-np.inf, gate=PASS,
                       form_transition=form_transition)
        assert seen == {False: 0.05, True: expected}
    models = ModelSettings(candidates=("seg1", "seg2"), transition=0.05, offsets_transition=0.0)
    assert models.structure(models.candidate_list()).transition == 0.05
    assert ModelSettings(transition=0.05, offsets_transition=0.0, segment_offsets=True).structure(CANDIDATES).transition == 0.0
    assert ModelSettings(transition=0.05, segment_offsets=True).structure(CANDIDATES).transition == 0.05


def test_a_fits_structure_carries_the_transition_it_ran_with():
    """``fit_structure`` (the structure a fit file records and the rating table predicts with) takes the rounding
    the fit ran with, so a BaRatin fit made sharp is not predicted rounded; a fit that does not say takes the
    config's for its form."""
    from dataclasses import replace

    from ratingflow.candidates import ModelSettings
    from ratingflow.posterior import fit_structure

    models = ModelSettings(candidates=("seg1", "seg2"), transition=0.05, offsets_transition=0.0)
    (one,) = _stations()[1:]
    seg2 = [Candidate("seg2")]
    form = Driver(structure_for(CANDIDATES, transition=0.05, segment_offsets=True), []).fit([one], seg2, 1)[0]["seg2"]
    assert fit_structure(form, models).segment_offsets and fit_structure(form, models).transition == 0.0
    assert fit_structure(replace(form, transition=0.05), models).transition == 0.05
    plain = Driver(structure_for(CANDIDATES, transition=0.05), []).fit([one], seg2, 1)[0]["seg2"]
    assert not fit_structure(plain, models).segment_offsets and fit_structure(plain, models).transition == 0.05


@pytest.mark.parametrize("gate", [PASS, FAIL])
def test_a_chosen_one_h0_seg3_gets_the_baratin_seg2_which_is_chosen_where_it_passes_and_fits_as_well(gate):
    """One-h0 seg3 predicts every gauging better than one-h0 seg2 (by 0.3 in ln density), so it is chosen at both
    stations; the BaRatin seg2 as well as seg3, a little better. The round fits the form at both: where it passes
    the gate it replaces the one-h0 seg2 and, the simpler, is chosen; where it fails, seg3 stays (and the retry
    would sample it again). Without seg2 among the candidates there is no seg2 to fit."""
    seg123 = [Candidate("seg1"), Candidate("seg2"), Candidate("seg3")]
    means = {("seg1", False): -3.0, ("seg2", False): -0.8, ("seg3", False): -0.5, ("seg2", True): -0.49}

    def density(station, name, offsets, n):
        return means[(name, offsets)]

    choices, calls = _run(gate, own_offsets_z=-np.inf, candidates=seg123, density=density)
    assert ("two", "seg2", True) in calls and ("one", "seg2", True) in calls
    for choice in choices:
        note = choice.table.set_index("model").loc["seg2", "own_offsets"]
        assert note.startswith("a chosen one-h0 seg3: two controls, each with its own zero-flow stage")
        if gate is PASS:
            assert choice.chosen == "seg2" and "offset_rel" in choice.fit.posterior
            assert "replaced the one-h0 fit" in note
        else:
            assert choice.chosen == "seg3" and note.endswith("one h0 kept")
    _, calls = _run(gate, own_offsets_z=-np.inf, candidates=[Candidate("seg1"), Candidate("seg3")], density=density)
    assert not [c for c in calls if c[2]]


SEG123 = [Candidate("seg1"), Candidate("seg2"), Candidate("seg3")]


@pytest.mark.parametrize("candidates", [CANDIDATES, SEG123])
def test_a_seg2_the_screen_keeps_far_above_seg1_goes_to_the_baratin_form_without_a_one_h0_fit(candidates):
    """``own_offsets_ahead`` (3 SE): at "two" the screen keeps seg2 with a profile gain over seg1 of 68.6, SE 6.3
    (10.9 SE; deterministic least squares on NumPy's gaugings), and the own-offsets check has its profile, so the
    round would fit seg2 in the BaRatin form whatever the one-h0 fit gave: it is fitted in the form at once, once, and
    never with one h0. The choice is the one the round makes, over the same fits (the fake's draws for the form are
    the same in either order). At "one" the screen rules seg2 out, and nothing changes. Above the screen's gain (20
    SE) the one-h0 fit comes first, as without the setting."""
    means = {**LOG_DENSITY, ("seg3", False): -0.7}  # with seg3: one-h0 seg3 chosen first, then the round's seg2
    kwargs = {"own_offsets_z": -np.inf, "screen_z": 1.5, "candidates": candidates,
              "density": lambda station, name, offsets, n: means[(name, offsets)]}
    first, first_calls = _run(PASS, **kwargs)
    ahead, calls = _run(PASS, ahead_z=3.0, **kwargs)
    assert ("two", "seg2", False) in first_calls and ("two", "seg2", False) not in calls
    assert calls.count(("two", "seg2", True)) == 1
    assert [c for c in calls if c[0] == "one"] == [c for c in first_calls if c[0] == "one"]
    for old, new in zip(first, ahead):
        assert new.chosen == old.chosen and set(new.fits) == set(old.fits)
        columns = ["model", "fitted", "elpd_loo", "se", "weight", "chosen"]
        assert new.table[columns].equals(old.table[columns])
        for name, fit in old.fits.items():
            assert ("offset_rel" in fit.posterior) == ("offset_rel" in new.fits[name].posterior)
    trigger = "a chosen one-h0 seg3" if candidates == SEG123 else "every chosen one-h0 seg2"
    assert first[0].table.set_index("model").loc["seg2", "own_offsets"].startswith(trigger)
    two = ahead[0]
    assert two.chosen == "seg2" and "offset_rel" in two.fit.posterior
    note = two.table.set_index("model").loc["seg2", "own_offsets"]
    assert note.startswith("the screen's gain of seg2 over seg1 68.6 > 3 x SE 6.3")
    assert "own-offsets check: profile leave-one-out gain" in note and note.endswith("which passed the diagnostics gate")
    assert "own_offsets" not in ahead[1].table or not ahead[1].table["own_offsets"].astype(bool).any()
    _, calls = _run(PASS, ahead_z=20.0, **kwargs)
    assert calls == first_calls


def test_where_the_baratin_form_fitted_ahead_fails_the_gate_seg2_is_fitted_with_one_h0_and_kept():
    """As the round keeps the one-h0 fit where the form's fails the gate: the one-h0 seg2 is fitted then, takes the
    form's place in the choice, and the round does not fit the form a second time."""
    (two, _), calls = _run(FAIL, own_offsets_z=-np.inf, screen_z=1.5, ahead_z=3.0)
    assert [c for c in calls if c[:2] == ("two", "seg2")] == [("two", "seg2", True), ("two", "seg2", False)]
    assert two.chosen == "seg2" and "offset_rel" not in two.fits["seg2"].posterior
    note = two.table.set_index("model").loc["seg2", "own_offsets"]
    assert note.startswith("the screen's gain of seg2 over seg1") and "failed the diagnostics gate (" in note
    assert note.endswith("seg2 fitted with one h0 and kept")


def test_no_seg2_ahead_of_the_round_without_the_round():
    """``own_offsets_ahead`` is part of the own-offsets round: without the round's threshold, or without a screen,
    seg2 is fitted with one h0 as before."""
    for kwargs in ({"own_offsets_z": None, "screen_z": 1.5}, {"own_offsets_z": -np.inf, "screen_z": None}):
        _, calls = _run(PASS, ahead_z=3.0, **kwargs)
        assert ("two", "seg2", False) in calls
