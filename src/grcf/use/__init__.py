"""Use layer: bundles, `grcf predict`, speech recognition, the Python API and the web demo.
Imports results (plots), training, data and the base."""
