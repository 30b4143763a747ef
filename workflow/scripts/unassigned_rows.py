from ratingflow.runtime import logged

with logged(snakemake.log[0]):
    from ratingflow.clean import unassigned_rows

    table = unassigned_rows(snakemake.params.specs, snakemake.params.raw_dir)
    table.to_csv(snakemake.output[0], index=False)
    print(f"{len(table)} row(s) of long-format files belong to no station")
