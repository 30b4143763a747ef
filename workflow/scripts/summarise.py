from ratingflow.runtime import configure_jax, logged

with logged(snakemake.log[0]):
    configure_jax(snakemake.threads, snakemake.params.jax["cache"], snakemake.params.jax["device"])
    from ratingflow.model import Priors
    from ratingflow.summarise import run_batch

    run_batch(
        list(snakemake.input),
        {k: list(snakemake.output[k]) for k in ("table", "nc", "diagnostics")},
        snakemake.params.seed,
        snakemake.params.table,
        snakemake.params.thresholds,
        Priors.from_config(snakemake.params.priors),
    )
