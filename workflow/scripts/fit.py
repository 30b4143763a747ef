from ratingflow.runtime import configure_jax, logged

with logged(snakemake.log[0]):
    configure_jax(snakemake.threads, snakemake.params.jax["cache"], snakemake.params.jax["device"])
    from ratingflow.fit import run_batch
    from ratingflow.io import station_files
    from ratingflow.candidates import ModelSettings, Priors
    from ratingflow.sampler import SamplerSettings

    stations, out = snakemake.params.stations, snakemake.output[0]
    run_batch(
        stations,
        station_files(snakemake.input.clean, stations, ".csv"),
        station_files(snakemake.input.prior, stations, ".nc"),
        station_files(out, stations, ".nc"),
        station_files(out, stations, ".models.csv"),
        snakemake.params.seed,
        SamplerSettings.from_config(snakemake.params.sampler),
        Priors.from_config(snakemake.params.priors),
        ModelSettings.from_config(snakemake.params.models),
        {"config_hash": snakemake.params.config_hash},
        snakemake.params.station_priors,
        station_files(snakemake.input.periods, stations, ".periods.csv"),
        station_files(snakemake.input.periods, stations, ".status.json"),
        station_files(snakemake.input.prior, stations, ".json"),
        snakemake.params.previous,
        snakemake.params.sampler.get("retry"),
        snakemake.params.gate,
        snakemake.params.sampler.get("retry_min_ess"),
    )
