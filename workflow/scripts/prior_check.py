from ratingflow.runtime import configure_jax, logged

with logged(snakemake.log[0]):
    configure_jax(snakemake.threads, snakemake.params.jax["cache"], snakemake.params.jax["device"])
    from ratingflow.model import ModelSettings, Priors
    from ratingflow.prior_check import run_batch

    run_batch(
        snakemake.params.stations,
        {k: list(snakemake.input[k]) for k in ("clean", "status")},
        {k: list(snakemake.output[k]) for k in ("nc", "verdict", "plot")},
        snakemake.params.seed,
        snakemake.params.settings,
        Priors.from_config(snakemake.params.priors),
        ModelSettings.from_config(snakemake.params.models),
        snakemake.params.station_priors,
    )
