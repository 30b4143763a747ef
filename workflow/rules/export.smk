# every station's ratings with their periods of applicability: WaterML 2.0 Part 2 XML and a plain CSV
rule export:
    input:
        rules.publish.output[0],
    output:
        xml="results/export/ratings.wml2.xml",
        csv="results/export/ratings.csv",
    params:
        specs=list(SHEET.values()),
        tables=per_station("results/tables/{station}.csv"),
        clean=per_station("results/clean/{station}.csv"),
        # each station's checked part of both exports, rebuilt only when its table or gaugings change
        cache="results/export/stations",
    log:
        "logs/export.log",
    benchmark:
        "benchmarks/report/export.tsv"
    script:
        "../scripts/export.py"
