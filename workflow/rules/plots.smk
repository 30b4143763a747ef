rule plots:
    input:
        fit="results/fit/{station}.nc",
        table="results/tables/{station}.csv",
    output:
        report(
            "results/plots/{station}.png",
            caption="../report/plot.rst",
            category="Rating curves",
            labels={"station": "{station}"},
        ),
    params:
        title=lambda wc: f"{wc.station}: {SHEET[wc.station].name}",
    log:
        "logs/plots/{station}.log",
    script:
        "../scripts/plots.py"
