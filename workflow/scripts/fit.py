from ratingflow.runtime import configure_jax, logged

with logged(snakemake.log[0]):
    configure_jax(snakemake.threads, snakemake.params.jax["cache"], snakemake.params.jax["device"])
    from ratingflow.fit import SamplerSettings, run_batch
    from ratingflow.model import ModelSettings, Priors

    run_batch(
        snakemake.params.stations,
        list(snakemake.input.clean),
        list(snakemake.input.prior),
        list(snakemake.output.fit),
        list(snakemake.output.models),
        snakemake.params.seed,
        SamplerSettings.from_config(snakemake.params.sampler),
        Priors.from_config(snakemake.params.priors),
        ModelSettings.from_config(snakemake.params.models),
        {"config_hash": snakemake.params.config_hash},
        snakemake.params.station_priors,
    )
