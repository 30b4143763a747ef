from ratingflow.runtime import logged

with logged(snakemake.log[0]):
    from ratingflow.clean import run_batch

    run_batch(
        snakemake.params.specs,
        snakemake.params.paths,
        list(snakemake.output.clean),
        list(snakemake.output.rejected),
        list(snakemake.output.status),
        snakemake.params.settings,
    )
