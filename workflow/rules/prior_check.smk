rule prior_check:
    input:
        clean="results/clean/{station}.csv",
    output:
        nc="results/prior/{station}.nc",
        verdict="results/prior/{station}.json",
        plot=report(
            "results/prior/{station}.png",
            category="Prior predictive check",
            labels={"station": "{station}"},
        ),
    params:
        seed=config["seed"],
        settings=config["prior_check"],
        priors=config.get("priors", {}),
        jax=jax_params(),
    log:
        "logs/prior_check/{station}.log",
    script:
        "../scripts/prior_check.py"
