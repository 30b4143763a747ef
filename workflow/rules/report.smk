rule report:
    input:
        status=expand("results/clean/{station}.status.json", station=STATIONS),
        prior=expand("results/prior/{station}.json", station=STATIONS),
        diagnostics=expand("results/diagnostics/{station}.json", station=STATIONS),
        models=expand("results/fit/{station}.models.csv", station=STATIONS),
        unassigned="results/clean/unassigned_rows.csv",
        changes="results/changes.csv",
    output:
        stations=report("results/stations.csv", caption="../report/stations.rst", category="Stations"),
        models=report("results/models.csv", caption="../report/models.rst", category="Stations"),
    params:
        specs=[SHEET[s] for s in STATIONS],
    log:
        "logs/report.log",
    benchmark:
        "benchmarks/report/report.tsv"
    script:
        "../scripts/report.py"


# strict: true in the config -> the run fails at the end when any station is not ok
rule strict_gate:
    input:
        "results/stations.csv",
    output:
        "results/strict.ok",
    log:
        "logs/strict_gate.log",
    script:
        "../scripts/strict_gate.py"


# what changed since the previous run: each station's new table against its latest archived one
rule changes:
    input:
        tables=expand("results/tables/{station}.csv", station=STATIONS),
        clean=expand("results/clean/{station}.csv", station=STATIONS),
    output:
        report("results/changes.csv", caption="../report/changes.rst", category="Stations"),
    params:
        stations=STATIONS,
        history="results/history",
    log:
        "logs/changes.log",
    benchmark:
        "benchmarks/report/changes.tsv"
    script:
        "../scripts/changes.py"


# after the report: keep every new rating table (and its gaugings) in results/history/{station}/{stamp}/
rule archive:
    input:
        report="results/stations.csv",
        tables=expand("results/tables/{station}.csv", station=STATIONS),
        clean=expand("results/clean/{station}.csv", station=STATIONS),
    output:
        "results/history/last_archive.txt",
    params:
        stations=STATIONS,
        history="results/history",
    log:
        "logs/archive.log",
    script:
        "../scripts/archive.py"
