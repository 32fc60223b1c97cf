# One table per dataset (mean +- std over seeds, paired comparisons) and an HTML report.


rule summarize:
    input:
        metrics=runs_of(RUN + "/metrics.json"),
        predictions=runs_of(RUN + "/predictions.csv"),  # the test labels of the majority/chance rows
        info=runs_of(RUN + "/run_info.json"),  # each run's backbone
    output:
        csv="results/{dataset}/summary.csv",
        md="results/{dataset}/summary.md",
        json="results/{dataset}/summary.json",
        tex="results/{dataset}/summary.tex",
        comparisons="results/{dataset}/comparisons.csv",
    params:
        run=lambda w: as_json(config["run"]),
        code=code("summarize"),
    log:
        "logs/summarize/{dataset}.log",
    shell:
        "grcf summarize --params {PARAMS_FILE} --dataset {wildcards.dataset} --runs runs"
        " --out-dir results/{wildcards.dataset} > {log} 2>&1"


rule report:
    input:
        summary="results/{dataset}/summary.csv",
        comparisons="results/{dataset}/comparisons.csv",
        predictions=runs_of(RUN + "/predictions.csv"),
        logs1=runs_of(RUN + "/stage1_log.csv"),
        logs2=runs_of(RUN + "/stage2_log.csv"),
    output:
        "results/{dataset}/report.html",
    params:
        run=lambda w: as_json(config["run"]),
        code=code("report"),
    log:
        "logs/report/{dataset}.log",
    shell:
        "grcf report --params {PARAMS_FILE} --dataset {wildcards.dataset} --runs runs"
        " --summary-dir results/{wildcards.dataset} --out {output} > {log} 2>&1"


# Cross-validation groups (params.yaml `cv`): mean ± std over folds; on demand, e.g. `snakemake mustard_5fold`.
rule summarize_cv:
    input:
        metrics=lambda w: expand(RUN + "/metrics.json", dataset=config["cv"][w.cv],
                                 variant=config["run"]["variants"], seed=config["run"]["seeds"]),
        predictions=lambda w: expand(RUN + "/predictions.csv", dataset=config["cv"][w.cv],
                                     variant=config["run"]["variants"], seed=config["run"]["seeds"]),
    output:
        csv="results/{cv}/cv_summary.csv",
        md="results/{cv}/cv_summary.md",
        tex="results/{cv}/cv_summary.tex",
        folds="results/{cv}/cv_folds.csv",
    params:
        run=lambda w: as_json(config["run"]),
        code=code("summarize_cv"),
    log:
        "logs/summarize_cv/{cv}.log",
    shell:
        "grcf summarize-cv --params {PARAMS_FILE} --cv {wildcards.cv} --runs runs"
        " --out-dir results/{wildcards.cv} > {log} 2>&1"
