for batch, members in BATCHES.items():

    rule:
        name:
            f"prior_check_{batch}"
        input:
            clean=per_station("results/clean/{station}.csv", members),
            status=per_station("results/clean/{station}.status.json", members),
        output:
            nc=per_station("results/prior/{station}.nc", members),
            verdict=per_station("results/prior/{station}.json", members),
            plot=[
                report(p, category="Prior predictive check", labels={"station": s})
                for p, s in zip(per_station("results/prior/{station}.png", members), members)
            ],
        params:
            stations=members,
            seed=config["seed"],
            settings=config["prior_check"],
            priors=config.get("priors", {}),
            models=config["models"],
            station_priors=station_priors(members),
            jax=jax_params(),
        threads: stage_threads("prior_check")
        resources:
            **stage_resources("prior_check"),
        log:
            f"logs/prior_check/{batch}.log",
        benchmark:
            f"benchmarks/prior_check/{batch}.tsv"
        script:
            "../scripts/prior_check.py"
