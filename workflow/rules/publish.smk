# every batch's files at the per-station paths README.md lists: results/{clean,periods,prior,fit,tables,diagnostics,plots,discharge}/
# One cheap local job for the whole run (a file already linked is left as it is), not one per batch:
# a job costs Snakemake milliseconds to plan, which add up at 10 000 stations.
localrules:
    publish,


rule publish:
    input:
        all_batches(rules.clean.output[0]),
        all_batches(rules.periods.output[0]),
        all_batches(rules.prior_check.output[0]),
        all_batches(rules.fit.output[0]),
        all_batches(rules.summarise.output.tables),
        all_batches(rules.summarise.output.diagnostics),
        all_batches(rules.summarise.output.plots),
        all_batches(rules.discharge.output[0]),
    output:
        "results/published.tsv",
    params:
        results="results",
    log:
        "logs/publish.log",
    benchmark:
        "benchmarks/report/publish.tsv"
    script:
        "../scripts/publish.py"
