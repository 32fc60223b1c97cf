# The model the project ships (`snakemake pretrained`): GRCF on MOSEI's text, trained on its train
# fold with the seed and epochs chosen on valid (the ordinary runs of `mosei_text`/`grcf` over
# run.seeds), tested on MOSEI test and on MOSI test (a dataset it never saw), written to
# models/pretrained/<name>/ with its model card. The folder is committed: `grcf predict` without a
# bundle, `grcf.load_model()` and `grcf demo` use it.
from grcf.use.api import PRETRAINED_NAME

PRETRAINED = {"dataset": "mosei_text", "variant": "grcf", "transfer": ["mosi_text"]}


def _pretrained_runs(name):
    return expand(RUN + "/" + name, dataset=PRETRAINED["dataset"], variant=PRETRAINED["variant"],
                  seed=config["run"]["seeds"])


rule pretrained:
    input:
        features=f"features/{PRETRAINED['dataset']}.parquet",
        transfer=[f"features/{d}.parquet" for d in PRETRAINED["transfer"]],
        models=_pretrained_runs("stage2.pt"),
        predictions=_pretrained_runs("predictions.csv"),
        metrics=_pretrained_runs("metrics.json"),
    output:
        directory(f"models/pretrained/{PRETRAINED_NAME}"),
    params:
        seeds=as_json(config["run"]["seeds"]),
        predict=as_json(config.get("predict", {})),
        transfer=" ".join(f"--transfer {d}=features/{d}.parquet" for d in PRETRAINED["transfer"]),
        code=code("pretrained"),
    log:
        LOGS + "/pretrained.log",
    shell:
        f"grcf pretrained runs/{EXP}/{PRETRAINED['dataset']}/{PRETRAINED['variant']} {{output}}"
        " --params {PARAMS_FILE} --features {input.features} {params.transfer} > {log} 2>&1"
