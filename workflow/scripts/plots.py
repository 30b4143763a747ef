from ratingflow.runtime import configure_jax, logged

with logged(snakemake.log[0]):
    configure_jax(snakemake.threads)
    from ratingflow.plots import run_batch

    run_batch(list(snakemake.input.fit), list(snakemake.input.table), list(snakemake.output), snakemake.params.titles)
