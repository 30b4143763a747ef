# discharge series: each station's stage record through its ratings (the period valid at each time), with bands,
# daily/monthly/annual aggregates, gaps and flags, and the hydrograph. A station whose stage record and fit are those
# of its published series is linked, not recomputed, so appending stage at one station recomputes that station only.
rule discharge:
    input:
        fit=rules.fit.output[0],
        clean=rules.clean.output[0],
        stage=get_stage_files,
    output:
        batch_folder("discharge"),
    params:
        specs=get_specs,
        raw_dir=config["raw_dir"],
        titles=get_titles,
        settings=config.get("discharge", {}),
        seed=config["seed"],
        priors=config.get("priors", {}),
        previous="results/discharge",
        jax=jax_params(),
    log:
        "logs/discharge/{batch}.log",
    benchmark:
        "benchmarks/discharge/{batch}.tsv"
    script:
        "../scripts/discharge.py"
