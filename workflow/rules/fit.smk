rule fit:
    input:
        clean="results/clean/{station}.csv",
        prior="results/prior/{station}.nc",
    output:
        "results/fit/{station}.nc",
    params:
        seed=config["seed"],
        sampler=config["sampler"],
        priors=config.get("priors", {}),
        h0_range=lambda wc: h0_range(wc.station),
        config_hash=CONFIG_HASH,
        jax=jax_params(),
    log:
        "logs/fit/{station}.log",
    script:
        "../scripts/fit.py"
