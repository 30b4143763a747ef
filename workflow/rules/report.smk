rule report:
    input:
        status=expand("results/clean/{station}.status.json", station=STATIONS),
        prior=expand("results/prior/{station}.json", station=STATIONS),
        fit=expand("results/fit/{station}.nc", station=STATIONS),
        diagnostics=expand("results/diagnostics/{station}.json", station=STATIONS),
    output:
        report("results/stations.csv", caption="../report/stations.rst", category="Stations"),
    params:
        specs=[SHEET[s] for s in STATIONS],
        strict=config.get("strict", False),
    log:
        "logs/report.log",
    script:
        "../scripts/report.py"
