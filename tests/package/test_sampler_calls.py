"""How the sampler groups fits into calls of its compiled program."""
import jax
import pytest


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the CPU defaults")
def test_a_segmented_program_advances_fewer_chains_per_call_on_a_cpu():
    """On a CPU the plain power law's program runs 8 fits (32 chains) per call, a program with breakpoints
    2 fits (8 chains): its trees vary more between chains, and a call waits for the deepest one. The BaRatin form's
    (each control its own offset) runs each fit alone, and so does the retry (its settings from ``replaced``), in
    every program; an explicit ``chains_per_step`` still wins, and the first round's key does not change."""
    from ratingflow.candidates import Structure
    from ratingflow.sampler import (CPU_CHAINS_PER_STEP, CPU_OFFSETS_CHAINS_PER_STEP, CPU_SEGMENTED_CHAINS_PER_STEP,
                                    BatchedNUTS, SamplerSettings)

    settings = SamplerSettings(num_chains=4)
    assert BatchedNUTS(Structure(max_segments=1), settings).fits_per_call(100) == CPU_CHAINS_PER_STEP // 4 == 8
    assert BatchedNUTS(Structure(max_segments=3), settings).fits_per_call(100) == CPU_SEGMENTED_CHAINS_PER_STEP // 4 == 2
    assert BatchedNUTS(Structure(max_segments=3), SamplerSettings(num_chains=4, chains_per_step=16)).fits_per_call(100) == 4
    baratin = Structure(max_segments=3, segment_offsets=True)
    assert BatchedNUTS(baratin, settings).fits_per_call(100) == CPU_OFFSETS_CHAINS_PER_STEP // 4 == 1
    retry = settings.replaced(num_warmup=1000, num_samples=2000, target_accept=0.99)
    for structure in (Structure(max_segments=1), Structure(max_segments=3), baratin):
        assert BatchedNUTS(structure, retry).fits_per_call(100) == 1
    assert BatchedNUTS(Structure(max_segments=1), settings.replaced(chains_per_step=16)).fits_per_call(100) == 4
    assert settings.replaced().key() == {**settings.key(), "max_tree_depth_by_form": ()}


def test_the_gpu_profile_gives_a_fit_job_the_stations_to_fill_one_vectorised_call():
    """On a GPU a narrower call is not proportionally faster (docs/gpu.md): the slurm-gpu profile's
    config, merged over the default one as Snakemake merges it, is valid and gives a fit job at least
    GPU_CHAINS_PER_STEP chains."""
    from pathlib import Path

    import jsonschema
    import yaml

    from ratingflow.config import load_config, merged
    from ratingflow.sampler import GPU_CHAINS_PER_STEP

    root = Path(__file__).resolve().parents[2]
    schema = yaml.safe_load((root / "workflow" / "schemas" / "config.schema.yaml").read_text())
    config = merged(load_config(root / "config" / "config.yaml", schema),
                    load_config(root / "profiles" / "slurm-gpu" / "jax.yaml"))
    jsonschema.validate(config, schema)
    assert config["jax"]["device"] == "gpu"
    assert config["batch_size"] * config["sampler"]["num_chains"] >= GPU_CHAINS_PER_STEP
    assert yaml.safe_load((root / "profiles" / "slurm-gpu" / "config.yaml").read_text())["configfile"] \
        == "profiles/slurm-gpu/jax.yaml"
