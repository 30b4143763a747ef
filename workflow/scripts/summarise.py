from ratingflow.runtime import configure_jax, logged

with logged(snakemake.log[0]):
    configure_jax(snakemake.threads, snakemake.params.jax["cache"], snakemake.params.jax["device"])
    from ratingflow.io import station_files
    from ratingflow.model import Priors
    from ratingflow.summarise import run_batch

    stations, tables, diagnostics = snakemake.params.stations, snakemake.output.tables, snakemake.output.diagnostics
    run_batch(
        station_files(snakemake.input.fit, stations, ".nc"),
        {"table": station_files(tables, stations, ".csv"), "nc": station_files(tables, stations, ".nc"),
         "diagnostics": station_files(diagnostics, stations, ".json")},
        snakemake.params.seed,
        snakemake.params.table,
        snakemake.params.thresholds,
        Priors.from_config(snakemake.params.priors),
    )
