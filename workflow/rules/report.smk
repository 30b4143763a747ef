rule report:
    input:
        status=expand("results/clean/{station}.status.json", station=STATIONS),
        prior=expand("results/prior/{station}.json", station=STATIONS),
        diagnostics=expand("results/diagnostics/{station}.json", station=STATIONS),
        unassigned="results/clean/unassigned_rows.csv",
    output:
        report("results/stations.csv", caption="../report/stations.rst", category="Stations"),
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
