"""A fit's InferenceData without ArviZ (ratingflow.idata): the groups ArviZ's from_dict makes, and jobs that read fits
without importing ArviZ."""
import subprocess
import sys

import arviz as az
import numpy as np
import pytest

from ratingflow.chain_stats import bfmi
from ratingflow.idata import FitData, fit_data, group


def _same(ours, theirs):
    """Identical Datasets but for the time they were made."""
    ours, theirs = ours.copy(), theirs.copy()
    ours.attrs["created_at"] = theirs.attrs["created_at"] = ""
    return ours.identical(theirs)


def test_groups_are_laid_out_as_arviz_from_dict_lays_them_out():
    rng = np.random.default_rng(1)
    sampled = {"b": rng.normal(size=(4, 30, 2)).astype(np.float32), "h0": rng.normal(size=(4, 30)),
               "breakpoint": rng.normal(size=(4, 30, 1)), "w": rng.normal(size=(4, 30, 3, 2)),
               "diverging": rng.random((4, 30)) < 0.1, "n_steps": rng.integers(1, 9, (4, 30)).astype(np.int32)}
    given = {"stage": rng.normal(size=7), "offset": np.float64(0.3), "pair": rng.normal(size=(7, 2))}
    dims = {"b": ["segment"], "breakpoint": ["breakpoint_number"], "stage": ["gauging"], "pair": ["gauging"]}
    coords = {"segment": np.arange(1, 3), "breakpoint_number": np.arange(1, 2), "gauging": np.arange(7),
              "period": np.arange(1, 4)}  # a dimension no variable has: left out, as ArviZ leaves it
    theirs = az.from_dict(posterior=sampled, constant_data=given, dims=dims, coords=coords)
    assert _same(group(sampled, dims, coords), theirs.posterior)
    assert _same(group(given, dims, coords, sampled=False), theirs.constant_data)
    # the dimensions ArviZ names itself, and the attributes it writes
    assert group(sampled, dims, coords)["w"].dims == ("chain", "draw", "w_dim_0", "w_dim_1")
    assert set(group(sampled).attrs) == {"created_at", "arviz_version"}
    assert not _same(group(sampled, {}, coords), theirs.posterior)  # the comparison can fail: other dims


def test_a_fits_groups_are_those_arviz_from_dict_makes():
    rng = np.random.default_rng(4)
    posterior = {"b": rng.normal(size=(4, 20, 2)), "h0": rng.normal(size=(4, 20))}
    stats = {"energy": rng.normal(size=(4, 20)), "diverging": np.zeros((4, 20), bool)}
    ll, observed = rng.normal(size=(4, 20, 5)), rng.normal(size=5)
    constant = {"stage": rng.normal(size=5), "stage_offset": np.float64(0.2)}
    dims, coords = {"b": ["segment"], "stage": ["gauging"]}, {"segment": [1, 2], "gauging": np.arange(5)}
    ours = fit_data(posterior, stats, ll, observed, constant, dims, coords)
    theirs = az.from_dict(posterior=posterior, sample_stats=stats, log_likelihood={"log_discharge": ll},
                          observed_data={"log_discharge": observed}, constant_data=constant,
                          dims={"log_discharge": ["gauging"], **dims}, coords=coords)
    assert ours.groups() == theirs.groups()
    for name in ours.groups():
        assert _same(ours[name], theirs[name]), name
        assert list(ours[name].variables) == list(theirs[name].variables), name  # the order a file gets them in


def test_fit_data_reads_like_inference_data():
    rng = np.random.default_rng(2)
    posterior = group({"b": rng.normal(size=(2, 10))})
    data = FitData(attrs={"station": "s1"}, posterior=posterior)
    assert data.posterior is posterior and data["posterior"] is posterior and "posterior" in data
    assert data.groups() == ["posterior"] and "prior" not in data and data.attrs == {"station": "s1"}
    with pytest.raises(AttributeError, match="prior"):
        data.prior  # noqa: B018
    data.add_groups({"mixture_seg2": posterior, "constant_data": posterior, "prior": posterior})
    assert data.groups() == ["posterior", "prior", "constant_data", "mixture_seg2"]  # ArviZ's order, others last


def test_bfmi_is_arviz_bfmi():
    rng = np.random.default_rng(3)
    energy = np.cumsum(rng.normal(size=(4, 500)), axis=1) * 0.1 + rng.normal(size=(4, 500))
    np.testing.assert_allclose(bfmi(energy), az.bfmi(energy), rtol=1e-12)
    data = az.from_dict(sample_stats={"energy": energy})
    np.testing.assert_allclose(bfmi(data.sample_stats["energy"].values), az.bfmi(data), rtol=1e-12)


def test_the_jobs_that_read_fits_do_not_import_arviz():
    """Nor the fit job (its choice, PSIS-LOO and importance sampler): ArviZ's import took about 1.1 s of its start."""
    code = ("import sys; import ratingflow.summarise, ratingflow.discharge, ratingflow.compare, ratingflow.io, "
            "ratingflow.fit, ratingflow.importance, ratingflow.choice, ratingflow.psis; "
            "print(sorted(m for m in ('arviz', 'matplotlib', 'scipy.stats') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out
