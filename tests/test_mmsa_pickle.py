import logging

import numpy as np
import pyarrow.parquet as pq
import pytest

from grcf.data.datasets.mmsa_pickle import build
from grcf.errors import DataError
from grcf.data.store import load_split, read_meta
from support.mmsa import SIZES, make_mmsa, write_pickle


@pytest.mark.parametrize("aligned", [True, False], ids=["aligned", "unaligned"])
def test_round_trip(tmp_path, aligned, caplog):
    data = make_mmsa(aligned)
    src = write_pickle(tmp_path, data)
    with caplog.at_level(logging.WARNING):
        out = build(src, tmp_path / "out.parquet", {"dataset": "mosi"})
    assert "-inf" in caplog.text
    meta = read_meta(out)
    assert meta["producer"] == "mmsa_pickle" and meta["dataset"] == "mosi" and meta["label_range"] == [-3.0, 3.0]
    assert {m: meta["modalities"][m]["dim"] for m in ("text", "audio", "vision")} == {"text": 768, "audio": 5, "vision": 7}
    total_ninf = 0
    for split, n in SIZES.items():
        d = data[split]
        s = load_split(out, split)
        assert len(s) == n
        assert list(s.ids) == list(d["id"])
        np.testing.assert_allclose(s.labels, d["regression_labels"], rtol=1e-6)
        assert s.texts == list(d["raw_text"])
        tl = d["text_bert"][:, 1].sum(1).astype(int)
        al = np.array(d["audio_lengths"]) if not aligned else np.full(n, d["audio"].shape[1])
        vl = np.array(d["vision_lengths"]) if not aligned else np.full(n, d["vision"].shape[1])
        np.testing.assert_array_equal(s.masks["text"].sum(1), tl)
        np.testing.assert_array_equal(s.masks["audio"].sum(1), al)
        np.testing.assert_array_equal(s.masks["vision"].sum(1), vl)
        for i in range(n):
            np.testing.assert_array_equal(s.features["text"][i, : tl[i]], d["text"][i, : tl[i]])
            np.testing.assert_array_equal(s.features["vision"][i, : vl[i]], d["vision"][i, : vl[i]])
            a = d["audio"][i, : al[i]]
            total_ninf += int(np.isneginf(a).sum())
            np.testing.assert_array_equal(s.features["audio"][i, : al[i]], np.where(np.isneginf(a), 0, a))
        assert np.isfinite(s.features["audio"]).all()
    assert total_ninf > 0 and meta["aligned"] is aligned
    t = pq.read_table(out, columns=["video_id", "clip_id", "classification_label", "annotation"])
    assert t.column("video_id")[0].as_py() == "vidtrain0" and t.column("clip_id")[1].as_py() == "1"
    assert t.column("annotation")[0].as_py() == "Positive"


def test_sims_extra_labels_and_range(tmp_path):
    data = make_mmsa(aligned=False, sims=True, Da=33, Dv=709)
    out = build(write_pickle(tmp_path, data), tmp_path / "sims.parquet", {"dataset": "sims"})
    assert read_meta(out)["label_range"] == [-1.0, 1.0]
    t = pq.read_table(out, columns=["split", "label_T", "label_A", "label_V"]).to_pandas()
    tr = t[t.split == "train"]
    for m in "TAV":
        np.testing.assert_allclose(tr[f"label_{m}"].to_numpy(), data["train"][f"regression_labels_{m}"], rtol=1e-6)
    # an explicit range wins
    out2 = build(write_pickle(tmp_path, data), tmp_path / "sims3.parquet", {"label_range": [-3, 3]})
    assert read_meta(out2)["label_range"] == [-3.0, 3.0]


def test_modalities_subset(tmp_path):
    data = make_mmsa(aligned=True)
    for split in data:
        del data[split]["vision"]  # not needed when not asked for
    out = build(write_pickle(tmp_path, data), tmp_path / "ta.parquet", {"modalities": ["text", "audio"]})
    assert set(load_split(out, "train").features) == {"text", "audio"}


def _expect_error(tmp_path, data, *needles):
    src = write_pickle(tmp_path, data, "bad.pkl")
    out = tmp_path / "bad.parquet"
    with pytest.raises(DataError) as e:
        build(src, out, {})
    msg = str(e.value)
    assert str(src) in msg and "\n" not in msg
    for needle in needles:
        assert needle in msg, msg
    assert not out.exists()
    assert not list(tmp_path.glob("*.tmp"))


def test_missing_split(tmp_path):
    data = make_mmsa(True)
    del data["valid"]
    _expect_error(tmp_path, data, "valid")


def test_missing_key(tmp_path):
    data = make_mmsa(True)
    del data["test"]["audio"]
    _expect_error(tmp_path, data, "test", "'audio'")


def test_wrong_n(tmp_path):
    data = make_mmsa(True)
    data["train"]["vision"] = data["train"]["vision"][:-1]
    _expect_error(tmp_path, data, "train", "vision")


def test_wrong_ndim(tmp_path):
    data = make_mmsa(True)
    data["train"]["audio"] = data["train"]["audio"][:, :, 0]
    _expect_error(tmp_path, data, "train", "audio", "(N, L, D)")


def test_length_beyond_sequence(tmp_path):
    data = make_mmsa(False)
    data["valid"]["vision_lengths"][2] = 999
    _expect_error(tmp_path, data, "valid", "vision_lengths", str(data["valid"]["id"][2]))


def test_negative_length(tmp_path):
    data = make_mmsa(False)
    data["test"]["audio_lengths"][1] = -1
    _expect_error(tmp_path, data, "test", str(data["test"]["id"][1]))


def test_nan_feature(tmp_path):
    data = make_mmsa(True)
    data["train"]["vision"][3, 0, 0] = np.nan
    _expect_error(tmp_path, data, "NaN", str(data["train"]["id"][3]))


def test_label_out_of_range(tmp_path):
    data = make_mmsa(True)
    data["test"]["regression_labels"][0] = 4.0
    _expect_error(tmp_path, data, str(data["test"]["id"][0]))


def test_not_a_dict(tmp_path):
    _expect_error(tmp_path, [1, 2, 3], "dict")
