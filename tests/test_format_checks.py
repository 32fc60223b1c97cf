"""One parser per format: a builder stops on a malformed source with the error `grcf validate` reports first."""

import numpy as np
import pytest

from grcf.data.datasets import mmsa_pickle, mmsa_raw, mustard, urfunny
from grcf.errors import DataError
from grcf.data.store import load_split
from grcf.data.validate import validate_path
from support import mmsa as mmsa_src, mustard as mustard_src, urfunny as urfunny_src


def _mmsa_pickle(d):
    data = mmsa_src.make_mmsa(False)
    data["valid"]["vision_lengths"][2] = 999
    return mmsa_src.write_pickle(d, data, "bad.pkl"), lambda src, out: mmsa_pickle.build(src, out, {})


def _mmsa_raw(d):
    root = mmsa_src.write_raw(d / "raw", mmsa_src.GOOD_ROWS + [("vidA", "3", "too happy", "4.5", "Positive", "train")])
    return root, lambda src, out: mmsa_raw.build(src, out, {"modalities": ["text"], "progress": False})


def _urfunny(d):
    urfunny_src.make_release(d)
    urfunny_src.label_not_binary(d)
    return d, lambda src, out: urfunny.build(src, out, {}, text_encoder=urfunny_src.FakeEncoder())


def _mustard_record(d):
    mustard_src.sarcasm_not_bool(d)
    return d / "sarcasm_data.json", lambda src, out: mustard.build(src, out, {}, text_encoder=mustard_src.fake_encoder)


def _mustard_fold(d):
    mustard_src.fold_index_out_of_range(d)
    return d / "sarcasm_data.json", lambda src, out: mustard.build(src, out, {"split": "fold1"},
                                                                   text_encoder=mustard_src.fake_encoder)


@pytest.mark.parametrize("make", [_mmsa_pickle, _mmsa_raw, _urfunny, _mustard_record, _mustard_fold])
def test_builder_stops_with_the_error_validate_reports(tmp_path, make):
    src_dir = tmp_path / "src"
    src_dir.mkdir()
    src, build = make(src_dir)
    first = next(p for p in validate_path(src) if p.severity == "error")
    out = tmp_path / "out.parquet"
    with pytest.raises(DataError) as e:
        build(src, out)
    assert e.value.file == first.file and str(e.value).endswith(": " + first.message), (str(e.value), first.line())
    # the builder names the record, or the split/fold when the problem has no record
    assert str(e.value.record) == (first.record or first.split)
    assert not out.exists()


def test_builder_accepts_what_validate_passes(tmp_path):
    data = mmsa_src.make_mmsa(True)
    src = mmsa_src.write_pickle(tmp_path, data, "good.pkl")
    assert not [p for p in validate_path(src) if p.severity == "error"]
    out = mmsa_pickle.build(src, tmp_path / "good.parquet", {})
    assert not [p for p in validate_path(out) if p.severity == "error"]
    assert np.isfinite(load_split(out, "train").features["audio"]).all()
