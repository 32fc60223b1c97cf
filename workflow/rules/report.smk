# One table per dataset (mean +- std over seeds, paired comparisons) and an HTML report, in
# results/<experiment>/<dataset>/; summary.json there is the DVC headline metrics (kept in git).


rule summarize:
    input:
        metrics=runs_of(RUN + "/metrics.json"),
        predictions=runs_of(RUN + "/predictions.csv"),  # the test labels of the majority/chance rows
        info=runs_of(RUN + "/run_info.json"),  # each run's backbone
    output:
        csv=RESULTS + "/summary.csv",
        md=RESULTS + "/summary.md",
        json=RESULTS + "/summary.json",
        tex=RESULTS + "/summary.tex",
        comparisons=RESULTS + "/comparisons.csv",
    params:
        run=lambda w: as_json(config["run"]),
        code=code("summarize"),
    log:
        LOGS + "/summarize/{dataset}.log",
    shell:
        f"grcf summarize --params {{PARAMS_FILE}} --dataset {{wildcards.dataset}} --runs runs/{EXP}"
        f" --out-dir results/{EXP}/{{wildcards.dataset}} > {{log}} 2>&1"


rule report:
    input:
        summary=RESULTS + "/summary.csv",
        comparisons=RESULTS + "/comparisons.csv",
        predictions=runs_of(RUN + "/predictions.csv"),
        logs1=runs_of(RUN + "/stage1_log.csv"),
        logs2=runs_of(RUN + "/stage2_log.csv"),
    output:
        RESULTS + "/report.html",
    params:
        run=lambda w: as_json(config["run"]),
        code=code("report"),
    log:
        LOGS + "/report/{dataset}.log",
    shell:
        f"grcf report --params {{PARAMS_FILE}} --dataset {{wildcards.dataset}} --runs runs/{EXP}"
        f" --summary-dir results/{EXP}/{{wildcards.dataset}} --out {{output}} > {{log}} 2>&1"


# Cross-validation groups (params.yaml `cv`): mean ± std over folds; on demand, e.g. `snakemake mustard_5fold`.
rule summarize_cv:
    input:
        metrics=lambda w: expand(RUN + "/metrics.json", dataset=config["cv"][w.cv],
                                 variant=config["run"]["variants"], seed=config["run"]["seeds"]),
        predictions=lambda w: expand(RUN + "/predictions.csv", dataset=config["cv"][w.cv],
                                     variant=config["run"]["variants"], seed=config["run"]["seeds"]),
    output:
        csv=f"results/{EXP}/{{cv}}/cv_summary.csv",
        md=f"results/{EXP}/{{cv}}/cv_summary.md",
        tex=f"results/{EXP}/{{cv}}/cv_summary.tex",
        folds=f"results/{EXP}/{{cv}}/cv_folds.csv",
    params:
        run=lambda w: as_json(config["run"]),
        code=code("summarize_cv"),
    log:
        LOGS + "/summarize_cv/{cv}.log",
    shell:
        f"grcf summarize-cv --params {{PARAMS_FILE}} --cv {{wildcards.cv}} --runs runs/{EXP}"
        f" --out-dir results/{EXP}/{{wildcards.cv}} > {{log}} 2>&1"
