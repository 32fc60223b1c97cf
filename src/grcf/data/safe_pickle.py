"""A restricted unpickler for users' data files: numpy arrays and builtin containers only.

Plain `pickle.load` runs whatever code a file names; research pickles only need numpy arrays,
dtypes and builtins, so anything else is refused with an error naming the file and the global.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

from grcf.errors import DataError

_ALLOWED = {
    ("builtins", "dict"), ("builtins", "list"), ("builtins", "tuple"), ("builtins", "set"),
    ("builtins", "frozenset"), ("builtins", "str"), ("builtins", "bytes"), ("builtins", "int"),
    ("builtins", "float"), ("builtins", "bool"), ("builtins", "complex"), ("builtins", "bytearray"),
    ("builtins", "slice"), ("builtins", "range"),
    ("collections", "OrderedDict"), ("collections", "defaultdict"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy.ma.core", "_mareconstruct"), ("numpy.ma.core", "MaskedArray"),
    ("_codecs", "encode"),  # numpy arrays pickled by Python 2 come through latin1 re-encoding
}
# Python 2 pickles name builtins as __builtin__
_ALIASES = {"__builtin__": "builtins", "copy_reg": "copyreg"}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, source, **kw):
        super().__init__(file, **kw)
        self._source = source

    def find_class(self, module, name):
        module = _ALIASES.get(module, module)
        if (module, name) in _ALLOWED or (module.startswith("numpy") and name.endswith("DType")):
            return super().find_class(module, name)
        raise DataError(self._source, f"refusing to unpickle {module}.{name}: only numpy arrays and builtin containers are allowed")


def safe_load(path, encoding: str = "ASCII"):
    """Load a pickle file admitting only numpy arrays/dtypes and builtin containers."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, "file not found")
    with open(path, "rb") as f:
        data = f.read()
    return safe_loads(data, source=path, encoding=encoding)


def safe_loads(data: bytes, source="<bytes>", encoding: str = "ASCII"):
    try:
        return _RestrictedUnpickler(io.BytesIO(data), source, encoding=encoding).load()
    except DataError:
        raise
    except Exception as e:
        raise DataError(source, f"corrupt or unreadable pickle ({type(e).__name__}: {e})") from None
