"""A station whose chosen fit fails the diagnostics gate is fitted once more with the retry settings
(``sampler.retry``); the others are not (ratingflow.fit.retry_round). Fake drivers: no NUTS."""
import numpy as np

from ratingflow.candidates import Candidate, Structure
from ratingflow.choice import fit_and_choose
from ratingflow.data import StationData
from ratingflow.fit import retry_round
from ratingflow.sampler import FitResult, SamplerSettings

GATE = {"rhat_max": 1.01, "ess_bulk_min": 400, "ess_tail_min": 400, "max_divergences": 0, "bfmi_min": 0.3}


class FakeDriver:
    """Returns iid draws (chains agree: R-hat about 1, ESS about 4000), or for the stations in ``stuck`` chains
    that sit at four different values (R-hat far above 1.01), ``stuck[station]`` SD apart (a set: 1 SD);
    records what it was asked to fit."""

    def __init__(self, settings: SamplerSettings, stuck=()):
        self.structure, self.settings, self.asked = Structure(max_segments=3), settings, []
        self.stuck = dict(stuck) if isinstance(stuck, dict) else dict.fromkeys(stuck, 1.0)

    def __call__(self, structure=None):
        return self

    def fit(self, stations, candidates, seed):
        out = []
        for st in stations:
            self.asked.append(st.station_id)
            rng = np.random.default_rng(len(st.station_id) + len(self.asked))
            shift = self.stuck.get(st.station_id, 0.0) * np.arange(4.0)[:, None]
            draws = lambda scale: scale * rng.normal(size=(4, 1000)) + shift  # noqa: E731
            posterior = {"gap": 0.5 + 0.01 * draws(1), "log_q_ref": draws(0.1), "sigma": 0.05 + 0.001 * draws(1),
                         "b": (1.6 + 0.05 * draws(1))[..., None], "log_a": (2.0 + 0.1 * draws(1))[..., None]}
            stats = {"diverging": np.zeros((4, 1000), bool), "n_steps": np.full((4, 1000), 7)}
            loglik = -1.0 + 0.1 * rng.normal(size=(4, 1000, st.n))
            out.append({c.name: FitResult(st, c, {}, posterior, stats, loglik) for c in candidates})
        return out


def _station(name):
    stage = np.linspace(0.6, 2.0, 20)
    return StationData(name, stage, 10 * (stage - 0.5) ** 1.6, np.full(20, 0.5))


def test_only_a_station_whose_chosen_fit_fails_the_gate_is_fitted_again_and_its_table_says_why():
    stations = [_station("good"), _station("stuck")]
    first = FakeDriver(SamplerSettings(num_warmup=500, num_samples=1000), stuck={"stuck"})
    choices = fit_and_choose(first, stations, [Candidate("seg1")], 1)
    retry = FakeDriver(SamplerSettings(num_warmup=1000, num_samples=2000, target_accept=0.99))
    out = retry_round(retry, stations, choices, 1, 2.0, GATE)
    assert retry.asked == ["stuck"]
    assert out[0] is choices[0]
    assert out[1].fit is not choices[1].fit and out[1].chosen == "seg1"
    note = out[1].table.loc[out[1].table["chosen"], "retry"].item()
    assert note.startswith("fitted again (1000 + 2000 per chain, target 0.99)") and "R-hat" in note
    # nothing fails twice: the retried fit passes and is not fitted a third time
    assert retry_round(retry, stations, out, 1, 2.0, GATE)[1] is out[1] and retry.asked == ["stuck"]


def test_a_fit_that_already_ran_with_the_retrys_settings_is_not_fitted_again():
    """The BaRatin form's own settings (``sampler.offsets``) can be the retry's: the retry would draw the same
    chains again. Such a fit is left as it is, and its table says why."""
    stations = [_station("stuck")]
    first = FakeDriver(SamplerSettings(num_warmup=1000, num_samples=2000, target_accept=0.99), stuck={"stuck"})
    choices = fit_and_choose(first, stations, [Candidate("seg1")], 1)
    retry = FakeDriver(SamplerSettings(num_warmup=1000, num_samples=2000, target_accept=0.99))
    out = retry_round(retry, stations, choices, 1, 2.0, GATE, repeats=lambda fit: True)
    assert retry.asked == [] and out[0] is choices[0]
    note = out[0].table.loc[out[0].table["chosen"], "retry"].item()
    assert note.startswith("not fitted again") and "R-hat" in note


def test_a_fit_whose_chains_did_not_mix_is_not_fitted_again():
    """``min_ess`` (config ``sampler.retry_min_ess``): a chosen fit that fails the gate with a bulk ESS below it (chains
    a whole SD apart: ESS about 7) is left as it is, and its table says why; one that fails with chains that overlap
    (0.15 SD apart: R-hat above 1.01, ESS above it) is fitted again. Without ``min_ess``, both are."""
    from ratingflow.posterior import fit_convergence

    stations = [_station("stuck"), _station("slow")]
    first = FakeDriver(SamplerSettings(num_warmup=500, num_samples=1000), stuck={"stuck": 1.0, "slow": 0.15})
    choices = fit_and_choose(first, stations, [Candidate("seg1")], 1)
    conv = [fit_convergence(c.fit) for c in choices]
    assert conv[0]["ess_bulk_min"] < 20 < conv[1]["ess_bulk_min"] and conv[1]["rhat_max"] > GATE["rhat_max"]
    retry = FakeDriver(SamplerSettings(num_warmup=1000, num_samples=2000, target_accept=0.99))
    out = retry_round(retry, stations, choices, 1, 2.0, GATE, min_ess=20)
    assert retry.asked == ["slow"]
    assert out[0] is choices[0] and out[1].fit is not choices[1].fit
    note = out[0].table.loc[out[0].table["chosen"], "retry"].item()
    assert note.startswith(f"not fitted again: its chains did not mix (bulk ESS {conv[0]['ess_bulk_min']:.1f} < 20)")
    assert "R-hat" in note
    assert out[1].table.loc[out[1].table["chosen"], "retry"].item().startswith("fitted again")
    retry = FakeDriver(SamplerSettings(num_warmup=1000, num_samples=2000, target_accept=0.99))
    retry_round(retry, stations, fit_and_choose(first, stations, [Candidate("seg1")], 1), 1, 2.0, GATE)
    assert retry.asked == ["stuck", "slow"]
