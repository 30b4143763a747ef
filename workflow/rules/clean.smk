rule clean:
    input:
        # a missing file is reported as the station's status, not as a failed DAG
        raw=raw_file,
    output:
        clean="results/clean/{station}.csv",
        rejected="results/clean/{station}.rejected.csv",
        status="results/clean/{station}.status.json",
    params:
        spec=lambda wc: SHEET[wc.station],
        path=lambda wc: f"{config['raw_dir']}/{SHEET[wc.station].file}",
        settings=clean_settings(),
    log:
        "logs/clean/{station}.log",
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
    script:
        "../scripts/unassigned_rows.py"
