from ratingflow.runtime import logged

with logged(snakemake.log[0]):
    from ratingflow.publish import publish

    table = publish(list(snakemake.input), snakemake.params.results, snakemake.output[0])
    print(f"published {len(table)} file(s): {table['how'].value_counts().to_dict()}")
