from ratingflow.runtime import configure_jax, logged

with logged(snakemake.log[0]):
    # avx2_sorts: NumPy's AVX2 sorts on AMD Zen 4, three times faster there for the bands (runtime.prefer_avx2_sort)
    configure_jax(snakemake.threads, snakemake.params.jax["cache"], snakemake.params.jax["device"], avx2_sorts=True)
    from ratingflow.discharge import run_batch
    from ratingflow.io import station_files
    from ratingflow.candidates import Priors

    specs = snakemake.params.specs
    stations = [s.station_id for s in specs]
    run_batch(specs, snakemake.params.raw_dir, station_files(snakemake.input.fit, stations, ".nc"),
              station_files(snakemake.input.clean, stations, ".csv"), snakemake.output[0], snakemake.params.settings,
              snakemake.params.seed, Priors.from_config(snakemake.params.priors), snakemake.params.titles,
              snakemake.params.previous)
