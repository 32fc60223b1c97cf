"""Every object of the params schema is closed: a typo is an error naming the key and the closest
setting, in params.yaml, in a variant, and in a Snakemake --configfile. Fast."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from grcf.config import deep_merge, load_params, validate_params
from grcf.errors import GrcfError
from grcf.schema import is_object_node, load_schema, visits

REPO = Path(__file__).resolve().parents[1]
UNKNOWN = "zz_not_a_setting"


@pytest.fixture(scope="module")
def params() -> dict:
    return load_params(REPO / "params.yaml")


def set_key(params: dict, dotted: str, value) -> dict:
    out = copy.deepcopy(params)
    *parents, last = dotted.split(".")
    node = out
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return out


@pytest.mark.parametrize("dotted, value, suggestion", [
    ("stage1.grad_clp", 0.5, "stage1.grad_clip"),
    ("model.hiden", 128, "model.hidden"),
    ("features.audio.sample_rat", 8000, "features.audio.sample_rate"),
    ("variants.grcf.model.dropuot", 0.3, "variants.grcf.model.dropout"),
    ("stage3", {"epochs": 3}, "stage2"),
    ("loss.gama", 1.0, "loss.gamma"),  # rejected before this change too
])
def test_typo_is_rejected_with_the_closest_setting(params, dotted, value, suggestion):
    with pytest.raises(GrcfError) as e:
        validate_params(set_key(params, dotted, value), "params.yaml")
    assert str(e.value) == f"params.yaml: {dotted} is not a setting; did you mean {suggestion}?"


def test_source_specific_keys(params):
    """A dataset takes the keys of its own `source` only."""
    validate_params(set_key(params, "datasets.mustard.valid_fraction", 0.2))
    with pytest.raises(GrcfError, match=r"datasets\.embedded\.valid_fraction is not a setting"):
        validate_params(set_key(params, "datasets.embedded.valid_fraction", 0.2))
    with pytest.raises(GrcfError, match=r"datasets\.urfunny\.generator is not a setting"):
        validate_params(set_key(params, "datasets.urfunny.generator", {"seed": 1}))
    # a bad value of a valid key is a value error, not an unknown key
    with pytest.raises(GrcfError, match=r"invalid at datasets/mustard/split"):
        validate_params(set_key(params, "datasets.mustard.split", "fold_x"))


def test_load_params_names_the_file(params, tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(set_key(params, "stage2.objectiv", "mae")))
    with pytest.raises(GrcfError, match=rf"^{path}: stage2\.objectiv is not a setting; did you mean stage2\.objective\?$"):
        load_params(path)


def test_layers_name_the_file_holding_the_typo(params):
    """Snakemake merges params.yaml, --configfile files and --config: the message names the layer."""
    layer = {"stage1": {"grad_clp": 0.5}}
    merged = set_key(params, "stage1.grad_clp", 0.5)
    with pytest.raises(GrcfError, match=r"^experiments/x\.yaml: stage1\.grad_clp is not a setting"):
        validate_params(merged, "params.yaml", layers=[("params.yaml", params), ("experiments/x.yaml", layer)])


# ------------------------------------------------------------------ every object is closed

def full_params(params: dict) -> dict:
    """params.yaml plus one example of each optional object the schema knows (every source, a
    variant and a dataset override setting every section), so the walk reaches them all."""
    p = copy.deepcopy(params)
    every_section = {"model": {"hidden": 8, "max_len": {"text": 8}, "text_encoder": {"finetune": False},
                               "backbone": "fusion", "backbone_args": {"mmsa_dataset": "mosi"}},
                     "loss": {"gamma": 1.0}, "stage1": {"lr": 0.01}, "stage2": {"method": "train"}}
    p["variants"]["every_section"] = every_section
    p["datasets"]["pickle"] = {"source": "mmsa_pickle", "path": "x.pkl", "label_range": [-3, 3],
                               "overrides": every_section}
    p["datasets"]["store"] = {"source": "parquet", "path": "x.parquet"}
    return p


def schema_object_nodes(schema: dict) -> set[str]:
    """JSON pointers of every schema node describing an object's keys (not the `if` conditions)."""
    found = set()

    def walk(node, pointer):
        if isinstance(node, dict):
            if is_object_node(node):
                found.add(pointer)
            for k, v in node.items():
                if k != "if":
                    walk(v, f"{pointer}/{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{pointer}/{i}")

    walk(schema, "#")
    return found


def test_unknown_key_rejected_at_every_object_of_the_schema(params):
    p = full_params(params)
    validate_params(p)
    seen = list(visits(p))
    unreached = schema_object_nodes(load_schema()) - {pointer for pointer, _, _ in seen}
    assert not unreached, (f"schema objects no example reaches: {sorted(unreached)}; "
                           "add a value for them to full_params() in this test")
    # `x-open` objects (MMSA's own arguments) are checked where they are used: test_backbones
    places = {path for _, path, node in seen if "x-open" not in node}
    assert len(places) > 30, sorted(places)
    for path in sorted(places, key=str):
        bad = copy.deepcopy(p)
        node = bad
        for key in path:
            node = node[key]
        node[UNKNOWN] = 1
        with pytest.raises(GrcfError) as e:
            validate_params(bad, "params.yaml")
        assert UNKNOWN in str(e.value), (path, str(e.value))


@pytest.mark.parametrize("experiment", sorted((REPO / "experiments").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_experiments_are_valid(params, experiment):
    """Each experiments/*.yaml, layered over params.yaml as `--configfile` does, is a valid config."""
    layer = yaml.safe_load(experiment.read_text())
    validate_params(deep_merge(params, layer), "params.yaml", layers=[(experiment.name, layer)])
