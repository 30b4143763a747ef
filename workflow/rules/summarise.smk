# rating tables with HPDI bands, and convergence diagnostics
rule summarise:
    input:
        fit=rules.fit.output[0],
    output:
        tables=batch_folder("tables"),
        diagnostics=batch_folder("diagnostics"),
    params:
        stations=members,
        seed=config["seed"],
        table=config["table"],
        thresholds=config["diagnostics"],
        priors=config.get("priors", {}),
        jax=jax_params(),
    log:
        "logs/summarise/{batch}.log",
    benchmark:
        "benchmarks/summarise/{batch}.tsv"
    script:
        "../scripts/summarise.py"
