# raw gaugings -> SI gaugings, rejected rows with reasons, and a status per station
rule clean:
    input:
        get_raw_files,
    output:
        batch_folder("clean"),
    params:
        stations=members,
        specs=get_specs,
        paths=get_raw_paths,
        settings=clean_settings(),
    priority: batch_priority
    log:
        "logs/clean/{batch}.log",
    benchmark:
        "benchmarks/clean/{batch}.tsv"
    script:
        "../scripts/clean.py"


# rows of long-format files (sheet column station_column) that belong to no station in the sheet
rule unassigned_rows:
    input:
        long_format_files(),
    output:
        "results/clean/unassigned_rows.csv",
    params:
        specs=list(SHEET.values()),
        raw_dir=config["raw_dir"],
    log:
        "logs/clean/unassigned_rows.log",
    benchmark:
        "benchmarks/clean/unassigned_rows.tsv"
    script:
        "../scripts/unassigned_rows.py"
