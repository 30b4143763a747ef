# a batch's files at the per-station paths README.md lists: results/{clean,prior,fit,tables,diagnostics,plots}/
localrules:
    publish,


rule publish:
    input:
        rules.clean.output[0],
        rules.prior_check.output[0],
        rules.fit.output[0],
        rules.summarise.output.tables,
        rules.summarise.output.diagnostics,
        rules.plots.output[0],
    output:
        "results/batches/{batch}/published.tsv",
    params:
        results="results",
    log:
        "logs/publish/{batch}.log",
    benchmark:
        "benchmarks/publish/{batch}.tsv"
    script:
        "../scripts/publish.py"
