from ratingflow.runtime import logged

with logged(snakemake.log[0]):
    from ratingflow.report import INPUTS, run

    inputs = {k: list(snakemake.params[k]) for k in INPUTS}
    run(snakemake.params.specs, inputs, snakemake.output.stations, snakemake.input.unassigned, snakemake.input.changes,
        snakemake.output.models, snakemake.output.periods)
