# rating periods per station: the sheet's known shift dates and shifts detected in the dated gaugings
rule periods:
    input:
        clean=rules.clean.output[0],
        shifts=get_shift_files,
    output:
        batch_folder("periods"),
    params:
        stations=members,
        specs=get_specs,
        raw_dir=config["raw_dir"],
        settings=config.get("periods", {}),
        seed=config["seed"],
    priority: batch_priority
    log:
        "logs/periods/{batch}.log",
    benchmark:
        "benchmarks/periods/{batch}.tsv"
    script:
        "../scripts/periods.py"
