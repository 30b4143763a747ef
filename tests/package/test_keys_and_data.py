"""Station keys and padding: what makes a station's draws independent of its batch."""
import numpy as np
import pytest

from ratingflow.data import StationData, bucket_size
from ratingflow.keys import station_keys, station_seed


def test_station_keys_are_fixed_values():
    """The seed of a station is SHA-256 of 'seed:id' (not Python's salted hash()): literals recorded on
    2026-12-01. A change here changes every station's draws; it must be deliberate."""
    assert station_seed(20261125, "green_channel") == 2137086656
    assert station_seed(1, "a") != station_seed(1, "b") != station_seed(2, "a")
    keys = station_keys(1, "a")
    assert list(keys) == ["prior", "init", "fit", "predict"]
    assert np.asarray(keys["fit"]).tolist() == [4228963687, 1751412842]
    assert len({tuple(np.asarray(k).tolist()) for k in keys.values()}) == len(keys)


def test_buckets_and_padding():
    assert [bucket_size(n) for n in (1, 64, 65, 100, 129)] == [64, 64, 128, 128, 256]
    assert bucket_size(3, minimum=16) == 16
    st = StationData("s", np.array([400.0, 401.0, 402.5]), np.array([1.0, 5.0, 20.0]), np.array([0.1, 0.2, 1.0]))
    p = st.padded(16)
    assert p["mask"].sum() == 3 and p["stage"].shape == (16,)
    np.testing.assert_allclose(p["stage"][:3], [0.0, 1.0, 2.5])
    assert st.stage_ref == pytest.approx(1.0)
    with pytest.raises(ValueError, match="at least 3"):
        StationData("s", np.array([1.0, 2.0]), np.ones(2), np.ones(2))
