"""A feature store must not depend on how many cores built it: a laptop, a 2-core CI runner and a
cluster node have to write the same floats for the same clip, or runs trained on their stores
drift apart (on a few hundred training clips, early stopping turns 1e-6 into a seed's worth)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

TESTS = Path(__file__).resolve().parent

AUDIO = """
import sys
import numpy as np
from grcf.data.extractors.audio import audio_features
from support.media import speech_like
wave, _ = speech_like(6.0, seed=3)
np.save(sys.argv[1], audio_features(wave, sample_rate=16000, hop_seconds=0.04, backend="librosa"))
"""


@pytest.mark.parametrize("threads", ["2", "4"])
def test_audio_features_are_bitwise_the_same_whatever_the_blas_threads(tmp_path, threads):
    out = {}
    for n in ("1", threads):
        # the BLAS libraries read their thread count when they load: set it before the interpreter starts
        env = {**os.environ, "OMP_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n, "MKL_NUM_THREADS": n,
               "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
        out[n] = tmp_path / f"audio{n}.npy"
        subprocess.run([sys.executable, "-c", AUDIO, str(out[n])], env=env, check=True, timeout=300)
    one, many = np.load(out["1"]), np.load(out[threads])
    assert one.shape == many.shape and one.shape[0] > 100
    assert one.tobytes() == many.tobytes(), f"max difference {np.abs(one - many).max():.3g}"
