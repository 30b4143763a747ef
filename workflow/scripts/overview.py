from ratingflow.runtime import logged

with logged(snakemake.log[0]):
    from ratingflow.overview import run

    run(snakemake.input.stations, snakemake.output[0])
