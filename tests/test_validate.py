"""`grcf validate`: one synthetic bad case per check, each asserting the exact report line and exit code."""

import argparse
import fractions
import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from grcf.data.store import write_store
from grcf.data.validate import Problem, main, validate_path
from support.mmsa import GOOD_ROWS, write_raw

REPO = Path(__file__).resolve().parents[1]
SHARED_MOSI = REPO / ".." / "shared" / "data" / "mosi"


def grcf(*args):
    """Run the real CLI; returns (exit code, stdout lines, stderr)."""
    exe = shutil.which("grcf") or str(Path(sys.executable).with_name("grcf"))
    r = subprocess.run([exe, "validate", *map(str, args)], capture_output=True, text=True, timeout=120)
    assert "Traceback" not in r.stderr, r.stderr
    return r.returncode, r.stdout.splitlines(), r.stderr


def lines(problems):
    return [p.line() for p in problems]


# ---------------------------------------------------------------- media helpers


def make_mp4(path, *, video=True, audio=True, seconds=1.0, fps=10, w=64, h=48, seed=0):
    """A small real MP4 of noise frames (no face) and/or noise audio, written with PyAV."""
    import av

    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as c:
        vs = a_s = None
        if video:
            vs = c.add_stream("mpeg4", rate=fps)
            vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        if audio:
            a_s = c.add_stream("aac", rate=16000)
            a_s.layout = "mono"
        if video:
            for _ in range(int(seconds * fps)):
                frame = av.VideoFrame.from_ndarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), format="rgb24")
                for p in vs.encode(frame):
                    c.mux(p)
            for p in vs.encode():
                c.mux(p)
        if audio:
            n = int(16000 * seconds)
            wave = (rng.standard_normal((1, n)) * 0.1).astype(np.float32)
            for s in range(0, n, 1024):
                f = av.AudioFrame.from_ndarray(np.ascontiguousarray(wave[:, s:s + 1024]), format="fltp", layout="mono")
                f.sample_rate, f.pts, f.time_base = 16000, s, fractions.Fraction(1, 16000)
                for p in a_s.encode(f):
                    c.mux(p)
            for p in a_s.encode():
                c.mux(p)
    return path


# ---------------------------------------------------------------- MMSA raw folder (label.csv: support.mmsa)


def test_raw_good_folder_text_only_rows_are_info(tmp_path):
    root = write_raw(tmp_path / "raw")
    make_mp4(root / "Raw" / "vidA" / "1.mp4")
    problems = validate_path(root)
    csv = root / "label.csv"
    clip = root / "Raw" / "vidA" / "1.mp4"
    # the noise clip has no face: a warning, never an error; the 3 rows without MP4 are not problems
    assert lines(problems) == [f"WARNING {clip} [split=train id=vidA$_$1 field=vision]: "
                               "no face in any of 3 sampled frames (vision features will be missing)"]
    assert problems.info["text_only_rows"] == 3 and problems.info["clips_found"] == 1
    rc, out, _ = grcf(root)
    assert rc == 0
    assert out[-1] == (f"validate {root} [mmsa_raw]: 0 error(s), 1 warning(s) (4 rows, 1 with an MP4, "
                       "3 text-only (no MP4); 1 clips decoded; 1 without a face)")
    assert str(csv) not in "\n".join(out[:-1])


@pytest.mark.parametrize("row, field, message", [
    (("vidA", "3", "too happy", "4.5", "Positive", "train"), "label", "label 4.5 outside -3..3"),
    (("vidA", "3", "not a number", "nan", "Positive", "train"), "label", "label is NaN"),
    (("vidA", "3", "no label", "", "Positive", "train"), "label", "label missing"),
    (("vidA", "3", "huh", "abc", "Positive", "train"), "label", "label 'abc' is not a number"),
    (("vidA", "3", " ", "1.0", "Positive", "train"), "text", "line 6: empty text"),
    (("vidA", "3", "odd fold", "1.0", "Positive", "dev"), "mode", "line 6: mode 'dev' is not one of train, valid, test"),
    (("vidA", "3", "mislabelled", "1.0", "Negative", "train"), "annotation",
     "line 6: annotation 'Negative' disagrees with label 1"),
])
def test_raw_row_errors(tmp_path, row, field, message):
    root = write_raw(tmp_path / "raw", GOOD_ROWS + [row])
    csv = root / "label.csv"
    split = row[5]
    severity = "WARNING" if field == "annotation" else "ERROR"
    expected = f"{severity} {csv} [split={split} id=vidA$_$3 field={field}]: {message}"
    assert expected in lines(validate_path(root))
    rc, out, _ = grcf(root)
    assert expected in out
    assert rc == (0 if severity == "WARNING" else 1)


def test_raw_duplicate_and_leaking_ids(tmp_path):
    rows = GOOD_ROWS + [("vidA", "1", "again", "1.0", "Positive", "train"), ("vidB", "1", "leak", "1.0", "Positive", "test")]
    root = write_raw(tmp_path / "raw", rows)
    csv = root / "label.csv"
    got = lines(validate_path(root))
    assert f"ERROR {csv} [split=train id=vidA$_$1 field=id]: duplicate id (2 rows)" in got
    assert f"ERROR {csv} [split=test id=vidB$_$1 field=id]: id in several splits: valid, test" in got
    assert grcf(root)[0] == 1


def test_raw_missing_split(tmp_path):
    root = write_raw(tmp_path / "raw", [r for r in GOOD_ROWS if r[5] != "valid"])
    expected = f"ERROR {root / 'label.csv'} [field=mode]: missing split(s) ['valid']; expected ['train', 'valid', 'test']"
    assert lines(validate_path(root)) == [expected]
    rc, out, _ = grcf(root)
    assert (rc, out[0]) == (1, expected)


def test_raw_unparseable_csv_is_one_line(tmp_path):
    root = tmp_path / "raw"
    root.mkdir()
    (root / "label.csv").write_text("video_id,clip_id,text,label,annotation,mode\n"
                                    "a,1,x,1,Positive,train\na,2,x,1,Positive,train,9,9\n")
    rc, out, err = grcf(root)
    assert rc == 1 and len(out) == 2
    assert out[0].startswith(f"ERROR {root / 'label.csv'}: cannot read CSV (ParserError: ")
    assert "Expected 6 fields in line 3, saw 8" in out[0]


def test_raw_missing_columns(tmp_path):
    root = write_raw(tmp_path / "raw", [("a", "1", "x")], header="video_id,clip_id,text")
    assert lines(validate_path(root)) == [
        f"ERROR {root / 'label.csv'}: missing column(s) ['label', 'mode']; "
        "expected MMSA layout video_id,clip_id,text,label,annotation,mode"]


@pytest.mark.parametrize("case", ["zero_byte", "random_bytes", "no_audio", "no_video"])
def test_raw_bad_media(tmp_path, case):
    root = write_raw(tmp_path / "raw")
    clip = root / "Raw" / "vidB" / "1.mp4"
    clip.parent.mkdir(parents=True)
    if case == "zero_byte":
        clip.write_bytes(b"")
        field, message = "media", "zero-byte MP4"
    elif case == "random_bytes":
        clip.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
        field, message = "media", "undecodable MP4 ("
    elif case == "no_audio":
        make_mp4(clip, audio=False)
        field, message = "audio", "no audio track"
    else:
        make_mp4(clip, video=False)
        field, message = "vision", "no video track"
    prefix = f"ERROR {clip} [split=valid id=vidB$_$1 field={field}]: {message}"
    got = lines(validate_path(root))
    assert any(g.startswith(prefix) for g in got), got
    rc, out, _ = grcf(root)
    assert rc == 1 and any(o.startswith(prefix) for o in out)
    # only the media problem (and, with a video track, the no-face warning): the csv is fine
    assert all(str(clip) in g for g in got)


def test_raw_unlisted_mp4_is_a_warning(tmp_path):
    root = write_raw(tmp_path / "raw")
    extra = make_mp4(root / "Raw" / "vidZ" / "9.mp4", audio=True)
    got = lines(validate_path(root, check_media=False))
    assert got == [f"WARNING {extra} [field=media]: MP4 not listed in label.csv (ignored by the builder)"]


# ---------------------------------------------------------------- MMSA pickle

SIZES = {"train": 4, "valid": 2, "test": 3}


def make_mmsa(L=6, Da=3, Dv=4, seed=0):
    rng = np.random.default_rng(seed)
    data = {}
    for split, n in SIZES.items():
        data[split] = {
            "id": np.array([f"v{split}$_${i}" for i in range(n)], dtype=object),
            "raw_text": np.array([f"text {i}" for i in range(n)], dtype=object),
            "text": rng.standard_normal((n, L, 8)).astype(np.float32),
            "audio": rng.standard_normal((n, L, Da)).astype(np.float32),
            "vision": rng.standard_normal((n, L, Dv)).astype(np.float32),
            "audio_lengths": [L] * n,
            "vision_lengths": [L] * n,
            "regression_labels": rng.uniform(-3, 3, n).astype(np.float32),
        }
    return data


def write_pickle(path, obj):
    path.write_bytes(pickle.dumps(obj, protocol=4))
    return path


def test_mmsa_pickle_good(tmp_path):
    p = write_pickle(tmp_path / "mosi.pkl", make_mmsa())
    assert lines(validate_path(p)) == []
    rc, out, _ = grcf(p)
    assert rc == 0 and out == [f"validate {p} [mmsa_pickle]: 0 error(s), 0 warning(s)"]


def _mutate(data, case):
    t = data["train"]
    if case == "missing_split":
        del data["valid"]
    elif case == "extra_split":
        data["dev"] = data["valid"]
    elif case == "duplicate_id":
        t["id"][2] = t["id"][1]
    elif case == "leak":
        data["test"]["id"][0] = t["id"][3]
    elif case == "nan_label":
        t["regression_labels"][1] = np.nan
    elif case == "range":
        t["regression_labels"][2] = 3.5
    elif case == "nan_text":
        t["text"][1, 2, 3] = np.nan
        t["text"][3, 0, 0] = np.inf
    elif case == "neg_inf_audio":
        t["audio"][1, 0, :] = -np.inf
    elif case == "pos_inf_audio":
        t["audio"][2, 0, 0] = np.inf
    elif case == "length_beyond":
        t["vision_lengths"][1] = 9
    elif case == "length_zero":
        t["audio_lengths"][3] = 0
    elif case == "dims_differ":
        data["test"]["vision"] = np.zeros((3, 6, 5), np.float32)
    elif case == "empty_text":
        t["raw_text"][0] = "  "
    elif case == "padding_nan_ignored":
        t["audio_lengths"][1] = 2
        t["audio"][1, 4, 0] = np.nan
    return data


@pytest.mark.parametrize("case, expected", [
    ("missing_split", "ERROR {p} [field=split]: missing split(s) ['valid']; expected ['train', 'valid', 'test']"),
    ("extra_split", "WARNING {p} [field=split]: unexpected split(s) ['dev']; expected ['train', 'valid', 'test']"),
    ("duplicate_id", "ERROR {p} [split=train id=vtrain$_$1 field=id]: duplicate id (2 rows)"),
    ("leak", "ERROR {p} [split=test id=vtrain$_$3 field=id]: id in several splits: train, test"),
    ("nan_label", "ERROR {p} [split=train id=vtrain$_$1 field=regression_labels]: label is NaN"),
    ("range", "ERROR {p} [split=train id=vtrain$_$2 field=regression_labels]: label 3.5 outside -3..3"),
    ("nan_text", "ERROR {p} [split=train id=vtrain$_$1 field=text]: 1 NaN, 1 +inf values in 2 samples (first shown)"),
    ("neg_inf_audio", "WARNING {p} [split=train field=audio]: 3 -inf values in 1 samples (first: vtrain$_$1); "
                      "MMSA and the grcf builder replace them with 0"),
    ("pos_inf_audio", "ERROR {p} [split=train id=vtrain$_$2 field=audio]: 1 +inf values in 1 samples (first shown)"),
    ("length_beyond", "ERROR {p} [split=train id=vtrain$_$1 field=vision_lengths]: "
                      "length 9 outside 0..6 (the padded vision sequence)"),
    ("length_zero", "WARNING {p} [split=train id=vtrain$_$3 field=audio_lengths]: length 0: the sample has no audio"),
    ("dims_differ", "ERROR {p} [split=test field=vision]: feature dim 5 differs from 4 in split train"),
    ("empty_text", "WARNING {p} [split=train id=vtrain$_$0 field=raw_text]: empty text"),
    ("padding_nan_ignored", None),
])
def test_mmsa_pickle_cases(tmp_path, case, expected):
    p = write_pickle(tmp_path / "mosi.pkl", _mutate(make_mmsa(), case))
    got = lines(validate_path(p))
    if expected is None:
        assert got == []
        return
    expected = expected.format(p=p)
    assert got == [expected]
    rc, out, _ = grcf(p)
    assert out[0] == expected
    assert rc == (1 if expected.startswith("ERROR") else 0)


def test_sims_range_guessed_from_extra_labels(tmp_path):
    data = make_mmsa()
    for part in data.values():
        n = len(part["id"])
        part["regression_labels"] = np.linspace(-1, 1, n).astype(np.float32)
        part["regression_labels_T"] = np.zeros(n, np.float32)
    data["valid"]["regression_labels_T"][1] = 1.5
    p = write_pickle(tmp_path / "sims.pkl", data)
    assert lines(validate_path(p)) == [
        f"ERROR {p} [split=valid id=vvalid$_$1 field=regression_labels_T]: label 1.5 outside -1..1"]


@pytest.mark.parametrize("content, message", [
    (b"\x80\x04not really a pickle", "corrupt or unreadable pickle"),
    (pickle.dumps(__import__("collections").Counter(a=1)), "refusing to unpickle collections.Counter"),
    (pickle.dumps([1, 2, 3]), "expected a dict with train/valid/test, got list"),
])
def test_mmsa_pickle_unreadable_is_one_line(tmp_path, content, message):
    p = tmp_path / "bad.pkl"
    p.write_bytes(content)
    rc, out, _ = grcf(p)
    assert rc == 1 and len(out) == 2
    assert out[0].startswith(f"ERROR {p}: ") and message in out[0]


def test_many_bad_rows_are_folded(tmp_path):
    data = make_mmsa()
    n = 30
    data["train"] = {**make_mmsa()["train"]}
    t = data["train"]
    t["id"] = np.array([f"x$_${i}" for i in range(n)], dtype=object)
    t["raw_text"] = np.array(["t"] * n, dtype=object)
    for m, d in (("text", 8), ("audio", 3), ("vision", 4)):
        t[m] = np.zeros((n, 6, d), np.float32)
    t["audio_lengths"] = t["vision_lengths"] = [6] * n
    t["regression_labels"] = np.full(n, 9.0, np.float32)
    p = write_pickle(tmp_path / "m.pkl", data)
    got = lines(validate_path(p))
    assert len(got) == 21
    assert got[-1] == f"ERROR {p} [split=train field=regression_labels]: ... and 10 more like: label out of range"


# ---------------------------------------------------------------- UR-FUNNY


def make_urfunny(root, *, audio=True):
    root.mkdir(parents=True, exist_ok=True)
    ids = list(range(10, 19))
    folds = {"train": ids[:5], "dev": ids[5:7], "test": ids[7:]}
    lang = {k: {"punchline_sentence": f"punch {k}", "context_sentences": [f"ctx {k}"]} for k in ids}
    labels = {k: k % 2 for k in ids}
    write_pickle(root / "language_sdk.pkl", lang)
    write_pickle(root / "humor_label_sdk.pkl", labels)
    write_pickle(root / "data_folds.pkl", folds)
    feats = {k: {"punchline_features": np.ones((3, 4), np.float32), "context_features": [np.ones((2, 4), np.float32)]}
             for k in ids}
    if audio:
        write_pickle(root / "covarep_features_sdk.pkl", feats)
    return root, folds, lang, labels, feats


def test_urfunny_good(tmp_path):
    root, *_ = make_urfunny(tmp_path / "uf")
    assert lines(validate_path(root)) == []
    rc, out, _ = grcf(root)
    assert rc == 0 and out[-1].startswith(f"validate {root} [urfunny]: 0 error(s), 0 warning(s)")


@pytest.mark.parametrize("case, expected", [
    ("no_label", "ERROR {root}/humor_label_sdk.pkl [split=train id=12 field=label]: id listed in data_folds.pkl has no label"),
    ("label_2", "ERROR {root}/humor_label_sdk.pkl [split=train id=12 field=label]: label 2 outside 0..1"),
    ("label_half", "ERROR {root}/humor_label_sdk.pkl [split=train id=12 field=label]: humor label must be 0 or 1, got 0.5"),
    ("leak", "ERROR {root}/data_folds.pkl [split=test id=12 field=id]: id in several splits: train, test"),
    ("no_dev", "ERROR {root}/data_folds.pkl [field=split]: missing split(s) ['dev']; expected ['train', 'dev', 'test']"),
    ("empty_text", "ERROR {root}/language_sdk.pkl [split=train id=12 field=punchline_sentence]: "
                   "empty text (no punchline or context words)"),
    ("nan_feats", "WARNING {root}/covarep_features_sdk.pkl [split=train id=12 field=audio]: "
                  "2 NaN/inf values in 1 samples (first shown); the builder replaces them with 0"),
    ("dim_differs", "ERROR {root}/covarep_features_sdk.pkl [split=train id=12 field=audio]: "
                    "feature dim 5 differs from 4 (id 10)"),
])
def test_urfunny_cases(tmp_path, case, expected):
    root, folds, lang, labels, feats = make_urfunny(tmp_path / "uf")
    if case == "no_label":
        del labels[12]
    elif case == "label_2":
        labels[12] = 2
    elif case == "label_half":
        labels[12] = 0.5
    elif case == "leak":
        folds["test"].append(12)
    elif case == "no_dev":
        del folds["dev"]
    elif case == "empty_text":
        lang[12] = {"punchline_sentence": " ", "context_sentences": []}
    elif case == "nan_feats":
        feats[12]["punchline_features"][0, 0] = np.nan
        feats[12]["punchline_features"][1, 1] = np.inf
    elif case == "dim_differs":
        feats[12]["punchline_features"] = np.ones((3, 5), np.float32)
    write_pickle(root / "language_sdk.pkl", lang)
    write_pickle(root / "humor_label_sdk.pkl", labels)
    write_pickle(root / "data_folds.pkl", folds)
    write_pickle(root / "covarep_features_sdk.pkl", feats)
    expected = expected.format(root=root)
    assert expected in lines(validate_path(root))
    rc, out, _ = grcf(root)
    assert expected in out and rc == (1 if expected.startswith("ERROR") else 0)


def test_urfunny_corrupt_pickle(tmp_path):
    root, *_ = make_urfunny(tmp_path / "uf")
    (root / "data_folds.pkl").write_bytes(b"garbage")
    rc, out, _ = grcf(root)
    assert rc == 1 and out[0].startswith(f"ERROR {root / 'data_folds.pkl'}: corrupt or unreadable pickle")


# ---------------------------------------------------------------- MUStARD


def mustard_record(i, show="BBT", sarcasm=True):
    return {"utterance": f"utt {i}", "speaker": "A", "context": ["c1", "c2"], "context_speakers": ["B", "C"],
            "show": show, "sarcasm": sarcasm}


def make_mustard(root, n=6):
    root.mkdir(parents=True, exist_ok=True)
    data = {f"1_{i}": mustard_record(i, "FRIENDS" if i % 3 == 0 else "BBT", i % 2 == 0) for i in range(n)}
    p = root / "sarcasm_data.json"
    p.write_text(json.dumps(data))
    return p, data


def test_mustard_good_with_folds(tmp_path):
    p, _ = make_mustard(tmp_path / "ms")
    write_pickle(p.with_name("split_indices.p"), [(np.array([0, 1, 2, 3]), np.array([4, 5]))] * 5)
    assert lines(validate_path(p)) == []
    assert grcf(p)[0] == 0


@pytest.mark.parametrize("case, expected", [
    ("sarcasm", "ERROR {p} [id=1_2 field=sarcasm]: sarcasm must be true/false, got 'yes'"),
    ("empty", "ERROR {p} [id=1_2 field=utterance]: empty text (utterance)"),
    ("missing", "ERROR {p} [id=1_2 field=show]: missing key 'show'"),
    ("ctx", "ERROR {p} [id=1_2 field=context_speakers]: 2 context lines but 1 context speakers"),
    ("duplicate", "ERROR {p} [id=1_2 field=id]: duplicate id (the JSON object repeats the key; only the last is kept)"),
    ("folds", "ERROR {f} [split=fold0 field=test]: 1 indices in both train and test (first 3)"),
    ("fold_range", "ERROR {f} [split=fold0 field=test]: 1 test indices out of range 0..5 (first 6)"),
])
def test_mustard_cases(tmp_path, case, expected):
    p, data = make_mustard(tmp_path / "ms")
    f = p.with_name("split_indices.p")
    text = None
    if case == "sarcasm":
        data["1_2"]["sarcasm"] = "yes"
    elif case == "empty":
        data["1_2"]["utterance"] = "  "
    elif case == "missing":
        del data["1_2"]["show"]
    elif case == "ctx":
        data["1_2"]["context_speakers"] = ["B"]
    elif case == "duplicate":
        body = json.dumps(data)
        text = body[:-1] + ', "1_2": ' + json.dumps(mustard_record(2)) + "}"
    elif case == "folds":
        write_pickle(f, [(np.array([0, 1, 2, 3]), np.array([3, 4, 5]))] * 5)
    elif case == "fold_range":
        write_pickle(f, [(np.array([0, 1, 2, 3]), np.array([4, 6]))] * 5)
    p.write_text(text if text is not None else json.dumps(data))
    expected = expected.format(p=p, f=f)
    assert expected in lines(validate_path(p))
    rc, out, _ = grcf(p)
    assert rc == 1 and expected in out


def test_mustard_bad_json_is_one_line(tmp_path):
    p = tmp_path / "sarcasm_data.json"
    p.write_text('{"a": {"utterance": ')
    rc, out, _ = grcf(p)
    assert rc == 1 and len(out) == 2 and out[0].startswith(f"ERROR {p}: not valid JSON (")


# ---------------------------------------------------------------- Parquet feature store


def write_good_store(path, n=9, seed=0):
    rng = np.random.default_rng(seed)
    ids = [f"s{i}" for i in range(n)]
    splits = (["train", "valid", "test"] * n)[:n]
    return write_store(
        path, ids=ids, splits=splits, labels=rng.uniform(-3, 3, n), texts=[f"t {i}" for i in ids],
        modalities={"text": [rng.standard_normal((int(rng.integers(1, 5)), 4)).astype(np.float32) for _ in ids],
                    "audio": [None if i % 4 == 0 else rng.standard_normal((3, 2)).astype(np.float32) for i in range(n)]},
        meta={"dataset": "t", "task": "regression", "label_range": [-3, 3]},
    )


def test_parquet_written_by_write_store_passes(tmp_path):
    p = write_good_store(tmp_path / "f.parquet")
    assert lines(validate_path(p)) == []
    rc, out, _ = grcf(p)
    assert rc == 0 and out[-1] == f"validate {p} [parquet]: 0 error(s), 0 warning(s) (9 rows; 3 rows without audio)"


def _rewrite(src, dst, fn):
    t = pq.read_table(src)
    t = fn(t).replace_schema_metadata(t.schema.metadata)
    pq.write_table(t, dst)
    return dst


def _set_column(t, name, arr):
    return t.set_column(t.column_names.index(name), name, arr)


def _nan_in_text(t):
    vals = t.column("text_feat").to_pylist()  # format 2: raw float32 bytes per row
    a = np.frombuffer(vals[4], "<f4").copy()
    a[1] = np.nan
    vals[4] = a.tobytes()
    return _set_column(t, "text_feat", pa.array(vals, t.schema.field("text_feat").type))


@pytest.mark.parametrize("case, expected", [
    ("nan_feat", "ERROR {p} [split=valid id=s4 field=text_feat]: 1 NaN values in 1 samples (first shown)"),
    ("bad_len", "ERROR {p} [split=test id=s2 field=text_len]: text_len is 99 but the sequence has {n} steps"),
    ("dup", "ERROR {p} [split=train id=s0 field=id]: duplicate id (2 rows)"),
    ("label", "ERROR {p} [split=valid id=s1 field=label]: label -7 outside -3..3"),
    ("split", "ERROR {p} [field=split]: missing split(s) ['test']; expected ['train', 'valid', 'test']"),
])
def test_parquet_cases(tmp_path, case, expected):
    good = write_good_store(tmp_path / "good.parquet")
    p = tmp_path / "bad.parquet"
    n = None
    if case == "nan_feat":
        _rewrite(good, p, _nan_in_text)
    elif case == "bad_len":
        n = pq.read_table(good).column("text_len")[2].as_py()
        _rewrite(good, p, lambda t: _set_column(t, "text_len", pa.array([99 if i == 2 else v for i, v in
                                                                           enumerate(t.column("text_len").to_pylist())],
                                                                          pa.int32())))
    elif case == "dup":
        _rewrite(good, p, lambda t: _set_column(t, "id", pa.array(["s0" if i == 3 else v for i, v in
                                                                   enumerate(t.column("id").to_pylist())])))
    elif case == "label":
        _rewrite(good, p, lambda t: _set_column(t, "label", pa.array([-7.0 if i == 1 else v for i, v in
                                                                      enumerate(t.column("label").to_pylist())])))
    elif case == "split":
        _rewrite(good, p, lambda t: _set_column(t, "split", pa.array(["valid" if v == "test" else v for v in
                                                                      t.column("split").to_pylist()])))
    expected = expected.format(p=p, n=n)
    got = lines(validate_path(p))
    assert expected in got, got
    rc, out, _ = grcf(p)
    assert rc == 1 and expected in out


@pytest.mark.parametrize("kind", ["random", "foreign"])
def test_parquet_unreadable_or_foreign(tmp_path, kind):
    p = tmp_path / "x.parquet"
    if kind == "random":
        p.write_bytes(b"not parquet at all")
        msg = "not a readable Parquet file"
    else:
        pq.write_table(pa.table({"a": [1, 2]}), p)
        msg = "no grcf metadata: not written by the grcf feature store"
    rc, out, _ = grcf(p)
    assert rc == 1 and len(out) == 2 and out[0].startswith(f"ERROR {p}: {msg}")


# ---------------------------------------------------------------- CLI: --params/--dataset, --out, guessing


def _params_file(tmp_path, datasets):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["datasets"].update(datasets)
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump(params))
    return p


def _ns(**kw):
    base = dict(path=None, kind=None, params=None, dataset=None, out=None)
    return argparse.Namespace(**{**base, **kw})


def test_embedded_dataset_reports_zero_problems(tmp_path, capsys):
    out = tmp_path / "features" / "embedded.validation.json"
    assert main(_ns(params=str(REPO / "params.yaml"), dataset="embedded", out=out)) == 0
    report = json.loads(out.read_text())
    assert report["ok"] is True and report["errors"] == 0 and report["problems"] == []
    assert report["kind"] == "embedded"
    assert "0 error(s), 0 warning(s)" in capsys.readouterr().out


def test_dataset_from_params_writes_json(tmp_path, capsys):
    root = write_raw(tmp_path / "raw", GOOD_ROWS + [("vidA", "3", "bad", "7", "Positive", "train")])
    params = _params_file(tmp_path, {"tiny": {"source": "mmsa_raw", "path": str(root), "task": "regression",
                                              "modalities": ["text"]}})
    out = tmp_path / "tiny.validation.json"
    assert main(_ns(params=str(params), dataset="tiny", out=out)) == 1
    report = json.loads(out.read_text())
    assert report["errors"] == 1 and report["ok"] is False and report["check_media"] is False
    assert report["problems"] == [{"severity": "error", "file": str(root / "label.csv"), "record": "vidA$_$3",
                                   "split": "train", "field": "label", "message": "label 7 outside -3..3"}]
    assert f"ERROR {root / 'label.csv'} [split=train id=vidA$_$3 field=label]: label 7 outside -3..3" in \
        capsys.readouterr().out


def test_cli_out_json_and_dataset_path_given(tmp_path):
    root = write_raw(tmp_path / "raw")
    params = _params_file(tmp_path, {"tiny": {"source": "mmsa_raw", "path": str(root), "task": "regression"}})
    out = tmp_path / "v.json"
    rc, lines_, _ = grcf(root, "--params", params, "--dataset", "tiny", "--out", out)
    assert rc == 0 and json.loads(out.read_text())["ok"] is True


def test_cli_dataset_without_path(tmp_path):
    from grcf.cli import build_parser

    try:
        build_parser().parse_args(["validate", "--dataset", "embedded"])
    except SystemExit:
        pytest.skip("cli: `grcf validate` still requires the positional path (lead: make it nargs='?')")
    out = tmp_path / "e.json"
    rc, lines_, _ = grcf("--params", REPO / "params.yaml", "--dataset", "embedded", "--out", out)
    assert rc == 0 and json.loads(out.read_text())["errors"] == 0


def test_unguessable_and_missing_paths(tmp_path):
    (tmp_path / "empty").mkdir()
    got = lines(validate_path(tmp_path / "empty"))
    assert len(got) == 1 and got[0].startswith(f"ERROR {tmp_path / 'empty'}: cannot guess the dataset kind")
    assert lines(validate_path(tmp_path / "nope.pkl")) == [f"ERROR {tmp_path / 'nope.pkl'}: not found"]
    assert grcf(tmp_path / "nope.pkl")[0] == 1


def test_problem_line_format():
    assert Problem("error", "f", None, None, None, "m").line() == "ERROR f: m"
    assert Problem("warning", "f", "i", "train", "x", "m").line() == "WARNING f [split=train id=i field=x]: m"


# ---------------------------------------------------------------- the real shared MOSI folder


@pytest.mark.shared_data
def test_shared_mosi_passes():
    if not (SHARED_MOSI / "label.csv").exists():
        pytest.skip(f"shared data absent: {SHARED_MOSI.resolve()} (../shared/data relative to the repo root)")
    problems = validate_path(SHARED_MOSI)
    assert lines(problems) == []
    assert problems.info["rows"] == 2197 and problems.info["clips_found"] == 27
    assert problems.info["no_face_clips"] == 0 and problems.info["media_checked"] == 27
    rc, out, _ = grcf(SHARED_MOSI)
    assert rc == 0 and "2170 text-only (no MP4)" in out[-1]
