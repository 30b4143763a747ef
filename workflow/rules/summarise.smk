# rating tables with HPDI bands, convergence diagnostics and the rating figure of each station
rule summarise:
    input:
        fit=rules.fit.output[0],
        clean=rules.clean.output[0],
    output:
        tables=batch_folder("tables"),
        diagnostics=batch_folder("diagnostics"),
        plots=report(batch_folder("plots"), patterns=["{station}.svg"], caption="../report/plot.rst",
                     category="Rating curves"),
    params:
        stations=members,
        titles=get_titles,
        seed=config["seed"],
        table=config["table"],
        thresholds=config["diagnostics"],
        priors=config.get("priors", {}),
        history="results/history",
        previous={"table": "tables", "nc": "tables", "diagnostics": "diagnostics", "plot": "plots"},
        jax=jax_params(),
    priority: summary_priority
    log:
        "logs/summarise/{batch}.log",
    benchmark:
        "benchmarks/summarise/{batch}.tsv"
    script:
        "../scripts/summarise.py"
