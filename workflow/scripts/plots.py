from ratingflow.runtime import configure_jax, logged

with logged(snakemake.log[0]):
    configure_jax(snakemake.threads)
    from ratingflow.plots import run

    run(snakemake.input.fit, snakemake.input.table, snakemake.output[0], snakemake.params.title)
