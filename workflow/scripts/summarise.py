from ratingflow.runtime import configure_jax, logged

with logged(snakemake.log[0]):
    # avx2_sorts: NumPy's AVX2 sorts on AMD Zen 4, three times faster there for the bands (runtime.prefer_avx2_sort)
    configure_jax(snakemake.threads, snakemake.params.jax["cache"], snakemake.params.jax["device"], avx2_sorts=True)
    from ratingflow.io import station_files
    from ratingflow.candidates import Priors
    from ratingflow.summarise import run_batch

    stations, out = snakemake.params.stations, snakemake.output
    run_batch(
        station_files(snakemake.input.fit, stations, ".nc"),
        {"table": station_files(out.tables, stations, ".csv"), "nc": station_files(out.tables, stations, ".nc"),
         "diagnostics": station_files(out.diagnostics, stations, ".json"),
         "plot": station_files(out.plots, stations, ".svg")},
        snakemake.params.seed,
        snakemake.params.table,
        snakemake.params.thresholds,
        Priors.from_config(snakemake.params.priors),
        snakemake.params.titles,
        station_files(snakemake.input.clean, stations, ".csv"),
        snakemake.params.history,
        {kind: f"results/{folder}" for kind, folder in snakemake.params.previous.items()},
    )
