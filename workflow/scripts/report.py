from ratingflow.runtime import configure_jax, logged

with logged(snakemake.log[0]):
    configure_jax(snakemake.threads)
    from ratingflow.report import INPUTS, run

    inputs = {k: list(snakemake.input[k]) for k in INPUTS}
    run(snakemake.params.specs, inputs, snakemake.output.stations, snakemake.input.unassigned, snakemake.input.changes,
        snakemake.output.models)
