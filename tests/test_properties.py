"""Property tests: the GRCF losses on random groups and switches, the feature store round trip."""

import math

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from grcf.errors import DataError
from grcf.training.losses import calibration_loss, group_ranking_loss
from grcf.data.store import SPLITS, load_split, write_store
from support.hypothesis_strategies import SETTINGS, groups, switches

# ---------------------------------------------------------------- losses


def _loss_and_grad(fn, pred, target, **kw):
    pred = pred.clone().requires_grad_(True)
    loss = fn(pred, target, **kw)
    assert loss.dim() == 0
    loss.backward()
    return loss, pred.grad


@SETTINGS
@given(groups(), switches)
def test_ranking_loss_finite_with_finite_gradient(group, sw):
    pred, target = group
    loss, grad = _loss_and_grad(group_ranking_loss, pred, target, **sw)
    assert torch.isfinite(loss), (loss, sw)
    assert loss.item() >= 0
    assert grad is not None and grad.shape == pred.shape and torch.isfinite(grad).all(), sw


@SETTINGS
@given(groups(), switches)
def test_ranking_loss_zero_without_comparable_pairs(group, sw):
    pred, target = group
    if pred.numel() >= 1:
        target = torch.full_like(target, float(target[0]))  # all ties
    loss, grad = _loss_and_grad(group_ranking_loss, pred, target, **sw)
    assert loss.item() == 0.0 and torch.count_nonzero(grad) == 0


@SETTINGS
@given(groups(), st.sampled_from(["mae", "bce", "mae_sigmoid"]))
def test_calibration_loss_finite_with_finite_gradient(group, objective):
    pred, target = group
    if objective != "mae":
        target = (target > target.median()).to(pred.dtype) if target.numel() else target
    loss, grad = _loss_and_grad(calibration_loss, pred, target, objective=objective)
    assert torch.isfinite(loss) and loss.item() >= 0
    assert torch.isfinite(grad).all()


@SETTINGS
@given(groups(), switches, st.data())
def test_nan_or_inf_raises_value_error(group, sw, data):
    pred, target = group
    assume(pred.numel() >= 1)
    bad = data.draw(st.sampled_from([math.nan, math.inf, -math.inf]))
    where = data.draw(st.sampled_from(["pred", "target"]))
    i = data.draw(st.integers(0, pred.numel() - 1))
    (pred if where == "pred" else target)[i] = bad
    with pytest.raises(ValueError, match=rf"^{where} contains NaN or inf \(1 of {pred.numel()} values\)$"):
        group_ranking_loss(pred, target, **sw)
    with pytest.raises(ValueError, match=rf"^{where} contains NaN or inf"):
        calibration_loss(pred, target)


@pytest.mark.parametrize("kw, message", [
    ({"margin": "big"}, "margin must be"),
    ({"weighting": "rank"}, "weighting must be"),
    ({"tau": 0.0}, "tau must be > 0"),
])
def test_bad_switches_are_explained(kw, message):
    with pytest.raises(ValueError, match=message):
        group_ranking_loss(torch.zeros(3), torch.arange(3.0), **kw)


def test_mismatched_shapes_are_explained():
    with pytest.raises(ValueError, match="pred has 3 values, target 2"):
        group_ranking_loss(torch.zeros(3), torch.zeros(2))



def test_small_tau_does_not_overflow():
    # exp(-(A_i + A_j) / (2 tau)) exceeds float32 at tau=0.005; the weights are computed stably
    for pred, target in [(torch.tensor([0.0, 1.0, 2.0]), torch.tensor([2.0, 1.0, 0.0])),
                         (torch.arange(64.0), torch.arange(64.0).flip(0))]:
        loss, grad = _loss_and_grad(group_ranking_loss, pred, target, tau=0.005)
        assert torch.isfinite(loss) and torch.isfinite(grad).all()


# ---------------------------------------------------------------- feature store


@st.composite
def datasets(draw):
    n = draw(st.integers(0, 10))
    ids = [f"id{i}" for i in range(n)]
    splits = draw(st.lists(st.sampled_from(SPLITS), min_size=n, max_size=n))
    labels = draw(st.lists(st.floats(-3, 3, allow_nan=False), min_size=n, max_size=n))
    texts = draw(st.lists(st.one_of(st.none(), st.text(max_size=8)), min_size=n, max_size=n))
    mods, dims = {}, {}
    for m in draw(st.lists(st.sampled_from(["text", "audio", "vision"]), min_size=1, max_size=3, unique=True)):
        d = draw(st.integers(1, 5))
        dims[m] = d
        seqs = []
        for _ in range(n):
            if draw(st.integers(0, 4)) == 0:
                seqs.append(None)  # modality missing for this sample
                continue
            length = draw(st.integers(0, 7))  # zero-length arrays are allowed
            seqs.append(draw(hnp.arrays(np.float32, (length, d),
                                        elements=st.floats(allow_nan=False, allow_infinity=False, width=32))))
        mods[m] = seqs
    return ids, splits, labels, texts, mods, dims


def _bits(a):
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)


@SETTINGS
@given(datasets())
def test_store_round_trips_ragged_sequences_exactly(tmp_path_factory, ds):
    ids, splits, labels, texts, mods, dims = ds
    path = tmp_path_factory.mktemp("store") / "f.parquet"
    meta = {"dataset": "prop", "task": "regression", "label_range": [-3, 3],
            "modalities": {m: {"dim": d} for m, d in dims.items()}}
    write_store(path, ids=ids, splits=splits, labels=labels, modalities=mods, meta=meta, texts=texts)
    table = pq.read_table(path)
    assert table.column("id").to_pylist() == ids
    for m, seqs in mods.items():
        stored = table.column(f"{m}_feat").to_pylist()
        lens = table.column(f"{m}_len").to_pylist()
        for s, got, n in zip(seqs, stored, lens):
            if s is None:
                assert got is None and n == 0
            else:
                # format 2: the [L, D] float32 array as raw little-endian bytes; zero length stays b"" (not null)
                assert n == len(s) and got == np.asarray(s, dtype="<f4").tobytes()
    for split in SPLITS:
        sp = load_split(path, split)
        want = [i for i, s in enumerate(splits) if s == split]
        assert list(sp.ids) == [ids[i] for i in want]
        assert np.array_equal(sp.labels, np.asarray([labels[i] for i in want], dtype=np.float32))
        assert sp.texts == [texts[i] for i in want]
        for m, seqs in mods.items():
            feats, mask = sp.features[m], sp.masks[m]
            assert feats.shape[0] == len(want) and feats.shape[2] == dims[m]
            for row, i in enumerate(want):
                s = seqs[i]
                k = 0 if s is None else len(s)
                assert mask[row].sum() == k and mask[row, :k].all()
                assert np.array_equal(_bits(feats[row, :k]), _bits(s if k else np.zeros((0, dims[m]))))
                assert not feats[row, k:].any()  # padding is zeros


@SETTINGS
@given(datasets(), st.data())
def test_store_refuses_nan_and_leaves_no_file(tmp_path_factory, ds, data):
    ids, splits, labels, texts, mods, dims = ds
    cells = [(m, i) for m, seqs in mods.items() for i, s in enumerate(seqs) if s is not None and s.size]
    where = data.draw(st.sampled_from(["label", "feature"] if cells else ["label"]))
    assume(ids)
    if where == "label":
        i = data.draw(st.integers(0, len(ids) - 1))
        labels = list(labels)
        labels[i] = data.draw(st.sampled_from([math.nan, math.inf]))
    else:
        m, i = data.draw(st.sampled_from(cells))
        arr = mods[m][i].copy()
        arr.flat[data.draw(st.integers(0, arr.size - 1))] = data.draw(st.sampled_from([np.nan, np.inf, -np.inf]))
        mods = {**mods, m: [arr if k == i else s for k, s in enumerate(mods[m])]}
    folder = tmp_path_factory.mktemp("nan")
    path = folder / "f.parquet"
    meta = {"dataset": "prop", "label_range": [-3, 3], "modalities": {m: {"dim": d} for m, d in dims.items()}}
    with pytest.raises(DataError) as err:
        write_store(path, ids=ids, splits=splits, labels=labels, modalities=mods, meta=meta, texts=texts)
    assert err.value.record == ids[i]
    assert f"[{ids[i]}]" in str(err.value) and "NaN or inf" in str(err.value)
    assert list(folder.iterdir()) == []  # neither the file nor a temp file
