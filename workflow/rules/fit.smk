for batch, members in BATCHES.items():

    rule:
        name:
            f"fit_{batch}"
        input:
            clean=per_station("results/clean/{station}.csv", members),
            prior=per_station("results/prior/{station}.nc", members),
        output:
            fit=per_station("results/fit/{station}.nc", members),
            models=per_station("results/fit/{station}.models.csv", members),
        params:
            stations=members,
            seed=config["seed"],
            sampler=config["sampler"],
            priors=config.get("priors", {}),
            models=config["models"],
            station_priors=station_priors(members),
            config_hash=CONFIG_HASH,
            jax=jax_params(),
        threads: stage_threads("fit")
        resources:
            **stage_resources("fit"),
        log:
            f"logs/fit/{batch}.log",
        benchmark:
            f"benchmarks/fit/{batch}.tsv"
        script:
            "../scripts/fit.py"
