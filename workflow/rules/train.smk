# The two training stages, one job per dataset x variant x seed (GPU rules on a cluster).
# Their epoch bars reach the console as a short line every 20 s (long on real data).


rule train_stage1:
    input:
        features="features/{dataset}.parquet",
    output:
        model=RUN + "/stage1.pt",
        log=RUN + "/stage1_log.csv",
    params:
        settings=stage1_settings,
        code=code("train_stage1"),
    threads: config.get("threads", 1)
    log:
        LOGS + "/{dataset}/{variant}/seed{seed}/stage1.log",
    shell:
        "grcf train-stage1 --params {PARAMS_FILE} --dataset {wildcards.dataset} --variant {wildcards.variant}"
        " --seed {wildcards.seed} --features {input.features} --out {output.model} --log {output.log} "
        + progress("stage 1 {wildcards.dataset}/{wildcards.variant}/seed{wildcards.seed}")


rule train_stage2:
    input:
        features="features/{dataset}.parquet",
        init=RUN + "/stage1.pt",
    output:
        model=RUN + "/stage2.pt",
        log=RUN + "/stage2_log.csv",
    params:
        settings=lambda w: run_settings(w, "model", "loss", "stage2", "task", "metrics", "modalities", "device"),
        code=code("train_stage2"),
    threads: config.get("threads", 1)
    log:
        LOGS + "/{dataset}/{variant}/seed{seed}/stage2.log",
    shell:
        "grcf train-stage2 --params {PARAMS_FILE} --dataset {wildcards.dataset} --variant {wildcards.variant}"
        " --seed {wildcards.seed} --features {input.features} --init {input.init} --out {output.model}"
        " --log {output.log} "
        + progress("stage 2 {wildcards.dataset}/{wildcards.variant}/seed{wildcards.seed}")
