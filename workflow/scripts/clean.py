from ratingflow.runtime import logged

with logged(snakemake.log[0]):
    from ratingflow.clean import run

    run(
        snakemake.params.spec,
        snakemake.params.path,
        snakemake.output.clean,
        snakemake.output.rejected,
        snakemake.output.status,
        snakemake.params.settings,
    )
