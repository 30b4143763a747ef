for batch, members in BATCHES.items():

    rule:
        name:
            f"fit_{batch}"
        input:
            clean=per_station("results/clean/{station}.csv", members),
            prior=per_station("results/prior/{station}.nc", members),
        output:
            per_station("results/fit/{station}.nc", members),
        params:
            stations=members,
            seed=config["seed"],
            sampler=config["sampler"],
            priors=config.get("priors", {}),
            h0_ranges=h0_ranges(members),
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
