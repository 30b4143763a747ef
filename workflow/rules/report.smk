# whole-run steps over the published per-station files: changes, the stations table, the archive


rule changes:
    input:
        rules.publish.output[0],
    output:
        report("results/changes.csv", caption="../report/changes.rst", category="Stations"),
    params:
        stations=STATIONS,
        tables=per_station("results/tables/{station}.csv"),
        clean=per_station("results/clean/{station}.csv"),
        shifts=per_station("results/periods/{station}.shifts.csv"),
        history="results/history",
    log:
        "logs/changes.log",
    benchmark:
        "benchmarks/report/changes.tsv"
    script:
        "../scripts/changes.py"


rule report:
    input:
        rules.publish.output[0],
        unassigned=rules.unassigned_rows.output[0],
        changes=rules.changes.output[0],
    output:
        stations=report("results/stations.csv", caption="../report/stations.rst", category="Stations"),
        models=report("results/models.csv", caption="../report/models.rst", category="Stations"),
        periods=report("results/periods.csv", caption="../report/periods.rst", category="Stations"),
    params:
        specs=list(SHEET.values()),
        status=per_station("results/clean/{station}.status.json"),
        prior=per_station("results/prior/{station}.json"),
        diagnostics=per_station("results/diagnostics/{station}.json"),
        models=per_station("results/fit/{station}.models.csv"),
        periods_status=per_station("results/periods/{station}.status.json"),
        periods=per_station("results/periods/{station}.periods.csv"),
        shifts=per_station("results/periods/{station}.shifts.csv"),
        discharge=per_station("results/discharge/{station}.status.json"),
    log:
        "logs/report.log",
    benchmark:
        "benchmarks/report/report.tsv"
    script:
        "../scripts/report.py"


# results/report.html: the overview of every station, the page a hydrographer opens first (a local job: cheap,
# and on a cluster not worth a queue wait)
localrules:
    overview,


rule overview:
    input:
        stations=rules.report.output.stations,
    output:
        "results/report.html",
    log:
        "logs/overview.log",
    benchmark:
        "benchmarks/report/overview.tsv"
    script:
        "../scripts/overview.py"


# strict: true in the config -> the run fails at the end when any station is not ok
rule strict_gate:
    input:
        rules.report.output.stations,
    output:
        "results/strict.ok",
    log:
        "logs/strict_gate.log",
    script:
        "../scripts/strict_gate.py"


# after the report: keep every new rating table (and its gaugings) in results/history/{station}/{stamp}/
rule archive:
    input:
        rules.report.output.stations,
    output:
        "results/history/last_archive.txt",
    params:
        stations=STATIONS,
        tables=per_station("results/tables/{station}.csv"),
        clean=per_station("results/clean/{station}.csv"),
        shifts=per_station("results/periods/{station}.shifts.csv"),
        history="results/history",
    log:
        "logs/archive.log",
    script:
        "../scripts/archive.py"
