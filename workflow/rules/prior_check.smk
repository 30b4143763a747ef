# prior predictive draws, the verdict and the prior figure of each station
rule prior_check:
    input:
        clean=rules.clean.output[0],
    output:
        batch_folder("prior"),
    params:
        stations=members,
        seed=config["seed"],
        settings=config["prior_check"],
        priors=config.get("priors", {}),
        models=config["models"],
        station_priors=get_station_priors,
        jax=jax_params(),
        previous="results/prior",
    priority: batch_priority
    log:
        "logs/prior_check/{batch}.log",
    benchmark:
        "benchmarks/prior_check/{batch}.tsv"
    script:
        "../scripts/prior_check.py"
