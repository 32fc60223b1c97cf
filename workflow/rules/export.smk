# Model bundles: the best-validation seed of each exported variant as
# models/<experiment>/<dataset>/<variant>/ (safetensors + config.json + metrics.json + model card),
# read by `grcf predict`.


rule export:
    input:
        features="features/{dataset}.parquet",
        models=runs_of_variant(RUN + "/stage2.pt"),
        predictions=runs_of_variant(RUN + "/predictions.csv"),
        metrics=runs_of_variant(RUN + "/metrics.json"),
    output:
        directory(MODELS),
    params:
        seeds=lambda w: as_json(config["run"]["seeds"]),
        predict=lambda w: as_json(config.get("predict", {})),
        code=code("export"),
    log:
        LOGS + "/export/{dataset}/{variant}.log",
    shell:
        f"grcf export runs/{EXP}/{{wildcards.dataset}}/{{wildcards.variant}} models/{EXP}/{{wildcards.dataset}}/{{wildcards.variant}}"
        " --params {PARAMS_FILE} --features {input.features} > {log} 2>&1"
