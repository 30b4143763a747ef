from ratingflow.runtime import logged

with logged(snakemake.log[0]):
    from ratingflow.changes import run_changes

    run_changes(snakemake.params.stations, list(snakemake.params.tables), list(snakemake.params.clean),
                snakemake.params.history, snakemake.output[0], list(snakemake.params.shifts))
