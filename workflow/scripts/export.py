from ratingflow.runtime import logged

with logged(snakemake.log[0]):
    from ratingflow.export import run

    run(snakemake.params.specs, snakemake.params.tables, snakemake.params.clean, snakemake.output.xml,
        snakemake.output.csv, snakemake.params.cache, snakemake.threads)
