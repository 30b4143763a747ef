# the rating figure of each station
rule plots:
    input:
        fit=rules.fit.output[0],
        tables=rules.summarise.output.tables,
    output:
        report(batch_folder("plots"), patterns=["{station}.png"], caption="../report/plot.rst",
               category="Rating curves"),
    params:
        stations=members,
        titles=get_titles,
    log:
        "logs/plots/{batch}.log",
    benchmark:
        "benchmarks/plots/{batch}.tsv"
    script:
        "../scripts/plots.py"
