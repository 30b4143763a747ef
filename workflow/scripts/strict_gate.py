from ratingflow.runtime import logged

with logged(snakemake.log[0]):
    from ratingflow.report import strict_gate

    strict_gate(snakemake.input[0], snakemake.output[0])
