from ratingflow.runtime import configure_jax, logged

with logged(snakemake.log[0]):
    configure_jax(snakemake.threads, snakemake.params.jax["cache"], snakemake.params.jax["device"])
    from ratingflow.fit import SamplerSettings, run
    from ratingflow.model import Priors

    run(
        snakemake.input.clean,
        snakemake.input.prior,
        snakemake.output[0],
        snakemake.wildcards.station,
        snakemake.params.seed,
        SamplerSettings.from_config(snakemake.params.sampler),
        Priors.from_config(snakemake.params.priors),
        {"config_hash": snakemake.params.config_hash},
        snakemake.params.h0_range,
    )
