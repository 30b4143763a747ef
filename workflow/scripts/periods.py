from ratingflow.runtime import logged

with logged(snakemake.log[0]):
    from ratingflow.io import station_files
    from ratingflow.periods import run_batch

    stations, folder, clean = snakemake.params.stations, snakemake.output[0], snakemake.input.clean
    run_batch(
        snakemake.params.specs,
        station_files(clean, stations, ".csv"),
        station_files(clean, stations, ".status.json"),
        snakemake.params.raw_dir,
        station_files(folder, stations, ".periods.csv"),
        station_files(folder, stations, ".shifts.csv"),
        station_files(folder, stations, ".status.json"),
        snakemake.params.settings,
        snakemake.params.seed,
    )
