rule prior_check:
    input:
        clean="results/clean/{station}.csv",
        status="results/clean/{station}.status.json",
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
        h0_range=lambda wc: h0_range(wc.station),
        jax=jax_params(),
    log:
        "logs/prior_check/{station}.log",
    script:
        "../scripts/prior_check.py"
