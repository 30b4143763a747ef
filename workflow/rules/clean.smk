rule clean:
    input:
        raw=raw_file,
    output:
        clean="results/clean/{station}.csv",
        rejected="results/clean/{station}.rejected.csv",
    params:
        spec=lambda wc: SHEET[wc.station],
        default_uncertainty=config["default_uncertainty"],
    log:
        "logs/clean/{station}.log",
    script:
        "../scripts/clean.py"
