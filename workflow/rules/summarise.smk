rule summarise:
    input:
        "results/fit/{station}.nc",
    output:
        table=report(
            "results/tables/{station}.csv",
            category="Rating tables",
            labels={"station": "{station}"},
        ),
        nc="results/tables/{station}.nc",
        diagnostics="results/diagnostics/{station}.json",
    params:
        seed=config["seed"],
        table=config["table"],
        thresholds=config["diagnostics"],
        priors=config.get("priors", {}),
        jax=jax_params(),
    log:
        "logs/summarise/{station}.log",
    script:
        "../scripts/summarise.py"
