from ratingflow.runtime import configure_jax, logged

with logged(snakemake.log[0]):
    configure_jax(snakemake.threads)
    from ratingflow.io import station_files
    from ratingflow.plots import run_batch

    stations = snakemake.params.stations
    run_batch(station_files(snakemake.input.fit, stations, ".nc"), station_files(snakemake.input.tables, stations, ".csv"),
              station_files(snakemake.output[0], stations, ".png"), snakemake.params.titles)
