for batch, members in BATCHES.items():

    rule:
        name:
            f"summarise_{batch}"
        input:
            per_station("results/fit/{station}.nc", members),
        output:
            table=[
                report(p, category="Rating tables", labels={"station": s})
                for p, s in zip(per_station("results/tables/{station}.csv", members), members)
            ],
            nc=per_station("results/tables/{station}.nc", members),
            diagnostics=per_station("results/diagnostics/{station}.json", members),
        params:
            seed=config["seed"],
            table=config["table"],
            thresholds=config["diagnostics"],
            priors=config.get("priors", {}),
            jax=jax_params(),
        threads: stage_threads("summarise")
        resources:
            **stage_resources("summarise"),
        log:
            f"logs/summarise/{batch}.log",
        benchmark:
            f"benchmarks/summarise/{batch}.tsv"
        script:
            "../scripts/summarise.py"
