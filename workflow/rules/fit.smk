# NUTS fits of every candidate model, one chosen per station by PSIS-LOO
rule fit:
    input:
        clean=rules.clean.output[0],
        prior=rules.prior_check.output[0],
        periods=rules.periods.output[0],
    output:
        batch_folder("fit"),
    params:
        stations=members,
        seed=config["seed"],
        sampler=config["sampler"],
        gate=config["diagnostics"],
        priors=config.get("priors", {}),
        models=config["models"],
        station_priors=get_station_priors,
        config_hash=CONFIG_HASH,
        jax=jax_params(),
        previous="results/fit",
    priority: fit_priority
    log:
        "logs/fit/{batch}.log",
    benchmark:
        "benchmarks/fit/{batch}.tsv"
    script:
        "../scripts/fit.py"
