from ratingflow.runtime import configure_jax, logged

with logged(snakemake.log[0]):
    configure_jax(snakemake.threads, snakemake.params.jax["cache"], snakemake.params.jax["device"])
    from ratingflow.model import Priors
    from ratingflow.prior_check import run

    run(
        snakemake.input.clean,
        snakemake.input.status,
        snakemake.output.nc,
        snakemake.output.verdict,
        snakemake.output.plot,
        snakemake.wildcards.station,
        snakemake.params.seed,
        snakemake.params.settings,
        Priors.from_config(snakemake.params.priors),
        snakemake.params.h0_range,
    )
