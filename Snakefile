# grcf pipeline: validate -> features -> stage 1 -> stage 2 -> evaluate -> summary -> report (+ export).
# Thin by design: every rule calls one `grcf` subcommand; all settings live in params.yaml,
# or in experiment files layered over it (`--configfile experiments/x.yaml`, `--config k=v`).
# Outputs go to runs/, results/ and models/<experiment>/ (params.yaml alone: `default`).
from snakemake.utils import min_version

from grcf.config import load_yaml

min_version("9.0")

# A YAML error in params.yaml names the file and line here, not as Snakemake's "Config file is
# not valid JSON or YAML" (an experiment file given with --configfile is read by Snakemake before
# this file: `make run EXPERIMENT=...` checks it first, with `python -m grcf.config`).
load_yaml("params.yaml")

configfile: "params.yaml"

include: "workflow/rules/common.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/slurm.smk"
include: "workflow/rules/export.smk"
include: "workflow/rules/pretrained.smk"

# Snakemake keeps one onstart hook: the last registered. Ours checks that the rules' `grcf` is on
# PATH (else every job fails with exit 127), then runs the one an included file registered.
_included_onstart = globals().get("onstart")


onstart:
    require_grcf_on_path()
    if _included_onstart is not None:
        _included_onstart()


rule all:
    input:
        expand(RESULTS + "/summary.md", dataset=config["run"]["datasets"]),
        expand(RESULTS + "/report.html", dataset=config["run"]["datasets"]),
        exported_models(),
    default_target: True


# `snakemake <dataset>` builds one dataset's table and report, e.g. `snakemake urfunny`.
for _dataset in config["datasets"]:

    rule:
        name:
            _dataset
        input:
            f"results/{EXP}/{_dataset}/summary.md",
            f"results/{EXP}/{_dataset}/report.html",
        localrule: True

for _group in config.get("cv", {}):

    rule:
        name:
            _group
        input:
            f"results/{EXP}/{_group}/cv_summary.md",
        localrule: True
