# Test metrics (valid beside them), predictions and the reproducibility record of one run.


rule evaluate:
    input:
        features="features/{dataset}.parquet",
        model=RUN + "/stage2.pt",
    output:
        metrics=RUN + "/metrics.json",
        predictions=RUN + "/predictions.csv",
        info=RUN + "/run_info.json",
    params:
        settings=lambda w: run_settings(w, "metrics", "modalities", "device", "model"),
        code=code("evaluate"),
    log:
        LOGS + "/{dataset}/{variant}/seed{seed}/evaluate.log",
    shell:
        "grcf evaluate --params {PARAMS_FILE} --dataset {wildcards.dataset} --variant {wildcards.variant}"
        " --seed {wildcards.seed} --features {input.features} --model {input.model}"
        f" --out-dir runs/{EXP}/{{wildcards.dataset}}/{{wildcards.variant}}/seed{{wildcards.seed}}"
        " > {log} 2>&1"
