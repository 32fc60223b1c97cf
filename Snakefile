# grcf pipeline: validate -> features -> stage 1 -> stage 2 -> evaluate -> summary -> report (+ export).
# Thin by design: every rule calls one `grcf` subcommand; all settings live in params.yaml,
# or in experiment files layered over it (`--configfile experiments/x.yaml`, `--config k=v`).
from snakemake.utils import min_version

min_version("9.0")

configfile: "params.yaml"

include: "workflow/rules/common.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/slurm.smk"
include: "workflow/rules/export.smk"


rule all:
    input:
        expand("results/{dataset}/summary.md", dataset=config["run"]["datasets"]),
        expand("results/{dataset}/report.html", dataset=config["run"]["datasets"]),
        exported_models(),
    default_target: True


# `snakemake <dataset>` builds one dataset's table and report, e.g. `snakemake urfunny`.
for _dataset in config["datasets"]:

    rule:
        name:
            _dataset
        input:
            f"results/{_dataset}/summary.md",
            f"results/{_dataset}/report.html",
        localrule: True

for _group in config.get("cv", {}):

    rule:
        name:
            _group
        input:
            f"results/{_group}/cv_summary.md",
        localrule: True
