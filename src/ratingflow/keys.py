"""Random keys: one seed in config, one key per station, one split per use.

A station's key depends only on the seed and its id (SHA-256, not Python's salted ``hash()``),
so results do not depend on run order, batch composition or process.
"""
from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import jax

#: every use of randomness for a station, in a fixed order; never reorder, only append
USES = ("prior", "init", "fit", "predict")


def station_seed(seed: int, station_id: str) -> int:
    digest = hashlib.sha256(f"{int(seed)}:{station_id}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def station_keys(seed: int, station_id: str) -> dict[str, jax.Array]:
    """The station's keys, one per use in :data:`USES`."""
    import jax  # here, so that stages without JAX (rating periods) can take station seeds

    key = jax.random.PRNGKey(station_seed(seed, station_id))
    return dict(zip(USES, jax.random.split(key, len(USES))))


def discharge_key(seed: int, station_id: str) -> jax.Array:
    """The key of a station's discharge series (kept apart from :data:`USES`, whose split it would change)."""
    import jax

    return jax.random.PRNGKey(station_seed(seed, f"{station_id}:discharge"))
