"""Every object of the params schema is closed: a typo is an error naming the key and the closest
setting, in params.yaml, in a variant, and in a Snakemake --configfile. Fast."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from grcf.config import check_experiment_files, deep_merge, experiment_name, load_params, load_yaml, validate_params
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
    # it names itself after its file: its outputs live apart (runs/, results/, models/<name>/)
    check_experiment_files([("params.yaml", params), (str(experiment), layer)])
    assert experiment_name(deep_merge(params, layer)) == experiment.stem


def test_params_yaml_is_the_default_experiment_and_names_are_checked(params):
    assert experiment_name(params) == "default"
    for bad in ("a/b", "../x", ""):
        with pytest.raises(GrcfError, match="experiment"):
            validate_params({**params, "experiment": bad}, "params.yaml")
    with pytest.raises(GrcfError, match=r"exp/x.yaml: an experiment file names its experiment \(add `experiment: x`\)"):
        check_experiment_files([("params.yaml", params), ("exp/x.yaml", {"run": {"seeds": [0]}})])


@pytest.mark.parametrize("section, key, name, closest", [
    ("run", "datasets", "mosi_txt", "mosi_text"),
    ("run", "variants", "pointwse", "pointwise"),
    ("export", "variants", "grfc", "grcf"),
])
def test_unknown_names_in_lists_name_the_closest(params, section, key, name, closest):
    layer = {section: {**params[section], key: [name]}}
    with pytest.raises(GrcfError) as e:
        validate_params(deep_merge(params, layer), "params.yaml", layers=[("experiments/x.yaml", layer)])
    assert str(e.value).startswith(f"experiments/x.yaml: {section}.{key} names unknown")
    assert f"{name!r}; did you mean {closest!r}?" in str(e.value)


def test_params_yaml_survives_a_dvc_set(tmp_path):
    """`dvc exp run -S stage2.lr=...` rewrites params.yaml: with no YAML anchors or merge keys it
    changes that one line and nothing else (anchors were expanded, +72/-22 lines)."""
    from dvc.utils.serialize import modify_yaml

    text = (REPO / "params.yaml").read_text()
    events = list(yaml.parse(text))
    assert not [e for e in events if getattr(e, "anchor", None)], "params.yaml has YAML anchors or aliases"
    copy_ = tmp_path / "params.yaml"
    copy_.write_text(text)
    with modify_yaml(copy_) as d:
        d["stage2"]["lr"] = 0.0002
    before, after = text.splitlines(), copy_.read_text().splitlines()
    assert len(before) == len(after)
    changed = [(a, b) for a, b in zip(before, after) if a != b]
    assert len(changed) == 1 and changed[0][1].strip().startswith("lr: 0.0002"), changed


def test_yaml_error_names_the_file_and_line(tmp_path):
    bad = tmp_path / "x.yaml"
    bad.write_text("experiment: x\nrun:\n  datasets: [mosi_text\n  seeds: [0]\n")
    with pytest.raises(GrcfError, match=r"x\.yaml:4:\d+: not valid YAML: .*flow sequence at line 3"):
        load_yaml(bad)
    bad.write_text("a: 1\n\tb: 2\n")
    with pytest.raises(GrcfError, match=r"x\.yaml:2:1: not valid YAML"):
        load_params(bad)
