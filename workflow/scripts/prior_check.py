from ratingflow.runtime import configure_jax, logged

with logged(snakemake.log[0]):
    configure_jax(snakemake.threads, snakemake.params.jax["cache"], snakemake.params.jax["device"])
    from ratingflow.io import station_files
    from ratingflow.candidates import ModelSettings, Priors
    from ratingflow.prior_check import run_batch

    stations, clean, out = snakemake.params.stations, snakemake.input.clean, snakemake.output[0]
    run_batch(
        stations,
        {"clean": station_files(clean, stations, ".csv"), "status": station_files(clean, stations, ".status.json")},
        {"nc": station_files(out, stations, ".nc"), "verdict": station_files(out, stations, ".json"),
         "plot": station_files(out, stations, ".svg")},
        snakemake.params.seed,
        snakemake.params.settings,
        Priors.from_config(snakemake.params.priors),
        ModelSettings.from_config(snakemake.params.models),
        snakemake.params.station_priors,
        snakemake.params.previous,
    )
