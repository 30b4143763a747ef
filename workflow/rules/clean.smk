for batch, members in BATCHES.items():

    rule:
        name:
            f"clean_{batch}"
        input:
            raw_files(members),
        output:
            clean=per_station("results/clean/{station}.csv", members),
            rejected=per_station("results/clean/{station}.rejected.csv", members),
            status=per_station("results/clean/{station}.status.json", members),
        params:
            specs=[SHEET[s] for s in members],
            paths=[f"{config['raw_dir']}/{SHEET[s].file}" for s in members],
            settings=clean_settings(),
        threads: stage_threads("clean")
        resources:
            **stage_resources("clean"),
        log:
            f"logs/clean/{batch}.log",
        benchmark:
            f"benchmarks/clean/{batch}.tsv"
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
