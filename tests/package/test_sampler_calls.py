"""How the sampler groups fits into calls of its compiled program."""
import jax
import pytest


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the CPU defaults")
def test_a_segmented_program_advances_fewer_chains_per_call_on_a_cpu():
    """On a CPU the plain power law's program runs 8 fits (32 chains) per call, a program with breakpoints
    2 fits (8 chains): its trees vary more between chains, and a call waits for the deepest one."""
    from ratingflow.candidates import Structure
    from ratingflow.sampler import (CPU_CHAINS_PER_STEP, CPU_SEGMENTED_CHAINS_PER_STEP, BatchedNUTS,
                                    SamplerSettings)

    settings = SamplerSettings(num_chains=4)
    assert BatchedNUTS(Structure(max_segments=1), settings).fits_per_call(100) == CPU_CHAINS_PER_STEP // 4 == 8
    assert BatchedNUTS(Structure(max_segments=3), settings).fits_per_call(100) == CPU_SEGMENTED_CHAINS_PER_STEP // 4 == 2
    assert BatchedNUTS(Structure(max_segments=3), SamplerSettings(num_chains=4, chains_per_step=16)).fits_per_call(100) == 4
