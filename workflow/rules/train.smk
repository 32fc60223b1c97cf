# The two training stages, one job per dataset x variant x seed (GPU rules on a cluster).


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
        "logs/" + RUN + "/stage1.log",
    shell:
        "grcf train-stage1 --params {PARAMS_FILE} --dataset {wildcards.dataset} --variant {wildcards.variant}"
        " --seed {wildcards.seed} --features {input.features} --out {output.model} --log {output.log} > {log} 2>&1"


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
        "logs/" + RUN + "/stage2.log",
    shell:
        "grcf train-stage2 --params {PARAMS_FILE} --dataset {wildcards.dataset} --variant {wildcards.variant}"
        " --seed {wildcards.seed} --features {input.features} --init {input.init} --out {output.model}"
        " --log {output.log} > {log} 2>&1"
