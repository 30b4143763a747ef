from ratingflow.runtime import logged

with logged(snakemake.log[0]):
    from ratingflow.clean import clean_to_files

    clean_to_files(
        snakemake.params.spec,
        snakemake.input.raw,
        snakemake.output.clean,
        snakemake.output.rejected,
        snakemake.params.default_uncertainty,
    )
