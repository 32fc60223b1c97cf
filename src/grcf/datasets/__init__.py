"""Dataset builders: each turns one source format into a grcf Parquet feature store."""

from .. import MODALITIES
from ..errors import DataError


def requested_modalities(src, options: dict) -> list[str]:
    """`options["modalities"]` (default: all three), refused with a DataError if it names another."""
    modalities = list(options.get("modalities") or MODALITIES)
    unknown = [m for m in modalities if m not in MODALITIES]
    if unknown:
        raise DataError(src, f"unknown modalities {unknown}; expected a subset of {list(MODALITIES)}")
    return modalities
