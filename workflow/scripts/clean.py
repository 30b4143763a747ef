from ratingflow.runtime import logged

with logged(snakemake.log[0]):
    from ratingflow.clean import run_batch
    from ratingflow.io import station_files

    stations, folder = snakemake.params.stations, snakemake.output[0]
    run_batch(
        snakemake.params.specs,
        snakemake.params.paths,
        station_files(folder, stations, ".csv"),
        station_files(folder, stations, ".rejected.csv"),
        station_files(folder, stations, ".status.json"),
        snakemake.params.settings,
    )
