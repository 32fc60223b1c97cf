import os
import pickle

import numpy as np
import pytest

from grcf.errors import DataError
from grcf.data.safe_pickle import safe_load


class _RunsCommand:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


class _MakesCode:
    def __reduce__(self):  # a pickle that rebuilds a code object via builtins.compile
        return (compile, ("1+1", "<x>", "eval"))


@pytest.mark.parametrize("payload", [_RunsCommand(), _MakesCode()], ids=["os.system", "code"])
def test_refuses_code(tmp_path, payload):
    p = tmp_path / "evil.pkl"
    p.write_bytes(pickle.dumps({"train": payload}))
    with pytest.raises(DataError) as e:
        safe_load(p)
    assert str(p) in str(e.value) and "refusing" in str(e.value)


def test_loads_numpy_and_builtins(tmp_path):
    data = {"train": {"id": np.array(["a$_$1", "b$_$2"], dtype=object), "x": np.arange(6, dtype=np.float32).reshape(2, 3),
                      "lens": [1, 2], "t": ("a", 1.5)}}
    p = tmp_path / "ok.pkl"
    p.write_bytes(pickle.dumps(data, protocol=4))
    out = safe_load(p)
    np.testing.assert_array_equal(out["train"]["x"], data["train"]["x"])
    assert out["train"]["x"].dtype == np.float32
    assert list(out["train"]["id"]) == ["a$_$1", "b$_$2"]
    assert out["train"]["lens"] == [1, 2]


def test_corrupt_and_missing(tmp_path):
    p = tmp_path / "bad.pkl"
    p.write_bytes(b"\x80\x04not a pickle")
    with pytest.raises(DataError, match="bad.pkl"):
        safe_load(p)
    with pytest.raises(DataError, match="not found"):
        safe_load(tmp_path / "nope.pkl")
