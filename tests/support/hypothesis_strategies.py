"""Hypothesis strategies for the GRCF losses (random groups of predictions and targets, loss switches)."""

from __future__ import annotations

import torch
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

MAG = 1e6  # "extreme" but realistic magnitudes; float32 squares stay finite


@st.composite
def groups(draw, max_b=64):
    """(pred, target, dtype): B = 0..64; targets random, all equal, or extreme."""
    b = draw(st.one_of(st.sampled_from([0, 1, 2, 3, 64]), st.integers(0, max_b)))
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    mag = draw(st.sampled_from([1.0, 1e3, MAG]))
    values = st.floats(-mag, mag, allow_nan=False, allow_infinity=False, width=32)
    pred = draw(st.lists(values, min_size=b, max_size=b))
    kind = draw(st.sampled_from(["random", "equal", "extreme", "binary"]))
    if kind == "equal":
        target = [draw(st.floats(-3, 3, width=32))] * b
    elif kind == "extreme":
        target = draw(st.lists(values, min_size=b, max_size=b))
    elif kind == "binary":
        target = draw(st.lists(st.sampled_from([0.0, 1.0]), min_size=b, max_size=b))
    else:
        target = draw(st.lists(st.floats(-3, 3, width=32), min_size=b, max_size=b))
    return torch.tensor(pred, dtype=dtype), torch.tensor(target, dtype=dtype)


switches = st.fixed_dictionaries({
    "margin": st.sampled_from(["dynamic", "static"]),
    "weighting": st.sampled_from(["advantage", "uniform"]),
    "standardize": st.booleans(),
    "tie": st.sampled_from([0.0, 0.1, 2.0]),
    "tau": st.floats(1e-3, 10.0),
    "gamma": st.floats(0.0, 5.0),
    "static_margin": st.floats(0.0, 5.0),
})
