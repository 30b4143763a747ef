for batch, members in BATCHES.items():

    rule:
        name:
            f"plots_{batch}"
        input:
            fit=per_station("results/fit/{station}.nc", members),
            table=per_station("results/tables/{station}.csv", members),
        output:
            [
                report(p, caption="../report/plot.rst", category="Rating curves", labels={"station": s})
                for p, s in zip(per_station("results/plots/{station}.png", members), members)
            ],
        params:
            titles=[f"{s}: {SHEET[s].name}" for s in members],
        threads: stage_threads("plots")
        resources:
            **stage_resources("plots"),
        log:
            f"logs/plots/{batch}.log",
        benchmark:
            f"benchmarks/plots/{batch}.tsv"
        script:
            "../scripts/plots.py"
