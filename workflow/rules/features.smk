# Check the source cheaply first (a bad dataset fails in seconds, before any GPU job),
# then build the Parquet feature store. Both read the dataset's files through one manifest
# (dataset_sources): a failure prints one input path, not one per clip.


rule validate:
    input:
        sources=dataset_sources,
    output:
        "features/{dataset}.validation.json",
    params:
        settings=dataset_settings,
        code=code("validate"),
    log:
        "logs/validate/{dataset}.log",
    shell:
        "grcf validate --params {PARAMS_FILE} --dataset {wildcards.dataset} --out {output} > {log} 2>&1"


# the longest job on real clips: its progress bars reach the console as a line every 20 s
rule features:
    input:
        validation="features/{dataset}.validation.json",
        sources=dataset_sources,
    output:
        "features/{dataset}.parquet",
    params:
        settings=dataset_settings,
        code=code("features"),
    threads: config.get("features", {}).get("workers", 1)
    resources:
        mem_mb=8000,
    log:
        "logs/features/{dataset}.log",
    shell:
        "grcf features build --params {PARAMS_FILE} --dataset {wildcards.dataset} --out {output} "
        + progress("features {wildcards.dataset}")
