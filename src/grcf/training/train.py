"""The training loop for both stages, readable top to bottom.

Stage 1 ranks within groups (mini-batches) and keeps the epoch with the best validation
ranking score; stage 2 starts from stage 1's checkpoint and calibrates, keeping the epoch with
the best validation calibration score (or fits a least-squares map instead of training).
A disabled stage passes its input model through, so every run has the same files.
Every epoch ends with an atomic resumable checkpoint; a restarted step continues from it.
"""

from __future__ import annotations

import copy
import csv
import io
import logging
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from grcf.training import losses
from grcf.atomic import atomic_path, write_text
from grcf.device import pick_device
from grcf.training.eager import eager_optimizer
from grcf.errors import GrcfError
from grcf.training.metrics import compute as compute_metrics
from grcf.training.metrics import selection_score
from grcf.training.backbones import TOKENS
from grcf.training.model import build_model, encoder_parameters, masked_stats
from grcf.training.spec import backbone_spec
from grcf.data.tensor_cache import load_split_cached

log = logging.getLogger(__name__)


# ------------------------------------------------------------------ set-up


def seed_everything(seed: int, device: torch.device | None = None) -> None:
    """Seed every generator; on CUDA also make the kernels deterministic.

    On CPU the kernels this loop uses are deterministic for a fixed thread count (`threads` in
    params.yaml), so the seeds are all a run needs (tests/test_resume.py checks bit-identical
    runs). `torch.use_deterministic_algorithms` is only called for CUDA: it imports
    torch._inductor (with torch._dynamo), ~2 s of every job's start-up on CPU. On CUDA, cuBLAS
    needs a fixed workspace for reproducible GEMMs, set before its first use.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if device is not None and device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


@dataclass
class Tensors:
    """One split on the device: padded features and masks per modality, labels, ids."""

    ids: np.ndarray
    labels: torch.Tensor
    features: dict
    masks: dict

    def __len__(self):
        return len(self.ids)

    def take(self, idx):
        # float16 features (a float16 store: half the memory) become float32 one batch at a time
        return ({m: x[idx].float() if x.dtype == torch.float16 else x[idx] for m, x in self.features.items()},
                {m: k[idx] for m, k in self.masks.items()})


def load_tensors(features_path, split: str, cfg: dict, device) -> Tensors:
    """One split on `device`, through the padded-tensor cache beside the store (grcf.data.tensor_cache),
    its labels and features checked finite once (the training step does not check them)."""
    s = load_split_cached(features_path, split, modalities=cfg.get("modalities"), max_len=cfg["model"].get("max_len"))
    if len(s) == 0:  # an empty split cannot train, select or be evaluated: refuse it by name, before any output
        raise GrcfError(f"{features_path}: split {split!r} has no rows (training needs train and valid rows, evaluation"
                        " valid and test rows; a dataset's split comes from its source, e.g. label.csv's `mode` column)")
    features = {m: torch.from_numpy(x) for m, x in s.features.items()}
    masks = {m: torch.from_numpy(x) for m, x in s.masks.items()}
    spec = backbone_spec(cfg["model"])
    if spec.finetuned_text:  # the transformer reads token ids of the raw text instead of precomputed features
        features["text"], masks["text"] = tokenize(features_path, s, spec.finetuned_text)
    if spec.zoo_tokens:  # BERT zoo backbones read token ids beside the features
        features[TOKENS], masks[TOKENS] = tokenize(features_path, s, spec.zoo_tokens)
    return Tensors(
        ids=s.ids,
        labels=torch.from_numpy(s.labels).to(device),
        features={m: x.to(device) for m, x in features.items()},
        masks={m: x.to(device) for m, x in masks.items()},
    )


def tokenize(features_path, split, ft: dict):
    from transformers import AutoTokenizer

    from grcf.data.extractors.text import resolve_model_name

    missing = [i for i, t in zip(split.ids, split.texts) if not t]
    if missing:
        raise GrcfError(f"{features_path}: fine-tuning needs raw text, but sample {missing[0]} has none")
    tok = AutoTokenizer.from_pretrained(resolve_model_name(ft["name"]))
    enc = tok(list(split.texts), padding=True, truncation=True, max_length=ft.get("max_length", 64), return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"].bool()


def new_model(train: Tensors, cfg: dict, device):
    dims = {m: x.shape[-1] for m, x in train.features.items() if m != TOKENS}
    model = build_model(dims, cfg["model"])
    for m in model.standardized:  # standardise inputs with train statistics only
        mean, std = masked_stats(train.features[m].cpu(), train.masks[m].cpu())
        model.set_input_stats(m, mean, std)
    return model.to(device)


def save_checkpoint(path, model, cfg, info: dict) -> None:
    payload = {"state_dict": model.state_dict(), "dims": model.dims, "model_cfg": cfg["model"], **info}
    if backbone_spec(cfg["model"]).is_zoo:  # which MMSA built it, with what
        from importlib.metadata import version

        payload.update(mmsa_version=version("mmsa"), mmsa_args=model.args)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path, device):
    path = Path(path)
    if not path.exists():
        raise GrcfError(f"{path}: checkpoint not found")
    ckpt = torch.load(path, map_location=device, weights_only=True)
    model = build_model(ckpt["dims"], ckpt["model_cfg"])
    model.load_state_dict(ckpt["state_dict"])
    return model.to(device), ckpt


@torch.no_grad()
def predict(model, data: Tensors, batch_size: int = 512, raw: bool = False) -> np.ndarray:
    model.eval()
    out = []
    for start in range(0, len(data), batch_size):
        idx = torch.arange(start, min(start + batch_size, len(data)), device=data.labels.device)
        feats, masks = data.take(idx)
        with autocast(data.labels.device):
            out.append((model.score(feats, masks) if raw else model(feats, masks)).float().cpu())
    return torch.cat(out).numpy()


def make_optimizer(model, stage_cfg: dict):
    """One learning rate for the fusion model, `encoder_lr` for a fine-tuned transformer."""
    enc = encoder_parameters(model)
    enc_ids = {id(p) for p in enc}
    groups = [{"params": [p for p in model.parameters() if id(p) not in enc_ids]}]
    if enc:
        groups.append({"params": enc, "lr": stage_cfg.get("encoder_lr", stage_cfg["lr"])})
    kw = dict(lr=stage_cfg["lr"], weight_decay=stage_cfg["weight_decay"])
    name = stage_cfg["optimizer"]
    if name == "adamw":
        return eager_optimizer(torch.optim.AdamW)(groups, **kw)
    if name == "adam":
        return eager_optimizer(torch.optim.Adam)(groups, **kw)
    return eager_optimizer(torch.optim.SGD)(groups, momentum=0.9, **kw)


def autocast(device):
    # bf16 on CUDA (Ampere and newer); full precision on CPU, where reproducibility is tested
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


# ------------------------------------------------------------------ the loop


def train_step(model, opt, train: Tensors, idx, loss_fn, grad_clip=None) -> torch.Tensor:
    """One optimiser step on the group `idx`; returns the detached loss, still on the device.

    Nothing here reads a device value back to the host (tests/test_train_sync.py checks).
    """
    feats, masks = train.take(idx)
    with autocast(train.labels.device):
        pred = model(feats, masks).float()
    loss = loss_fn(pred, train.labels[idx])
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    opt.step()
    return loss.detach()


def fit(model, train: Tensors, valid: Tensors, *, stage_cfg, loss_fn, select, metrics_kind, seed, resume_path, desc):
    """Train with early stopping on the validation `select` score; return (best_info, log_rows)."""
    opt = make_optimizer(model, stage_cfg)
    order = torch.Generator().manual_seed(seed)  # batch order: same seed, same groups in every variant
    state = {"epoch": 0, "best_score": -float("inf"), "best_epoch": -1, "bad_epochs": 0, "rows": []}
    best_state = copy.deepcopy(model.state_dict())
    resume_path = Path(resume_path)
    if resume_path.exists():
        r = torch.load(resume_path, map_location=train.labels.device, weights_only=True)
        model.load_state_dict(r["model"])
        opt.load_state_dict(r["optimizer"])
        order.set_state(r["order_rng"])
        torch.set_rng_state(r["torch_rng"])
        best_state, state = r["best_state"], r["state"]
        log.warning("%s: resuming from %s at epoch %d", desc, resume_path, state["epoch"])
    n, bs = len(train), stage_cfg["batch_size"]
    bar = tqdm(range(state["epoch"], stage_cfg["epochs"]), desc=desc, unit="epoch", leave=False)
    for epoch in bar:
        if state["bad_epochs"] >= stage_cfg["patience"]:
            break
        t0 = time.perf_counter()
        model.train()
        perm = torch.randperm(n, generator=order).to(train.labels.device)
        # the running loss stays on the device (float64, as the Python float it replaces) and is
        # read once per epoch: no host sync inside the step
        total, count = torch.zeros((), dtype=torch.float64, device=train.labels.device), 0
        for start in range(0, n, bs):
            idx = perm[start : start + bs]
            if len(idx) < 2:  # a group of one has nothing to compare or calibrate against
                continue
            loss = train_step(model, opt, train, idx, loss_fn, stage_cfg.get("grad_clip"))
            total, count = total + loss.double() * len(idx), count + len(idx)
        train_loss = total.item() / max(count, 1)
        if not math.isfinite(train_loss):
            raise GrcfError(f"{desc}: the training loss is {train_loss} in epoch {epoch} (a NaN/inf prediction or "
                            f"gradient; try a lower lr or grad_clip)")
        pred = predict(model, valid)
        score = selection_score(select, pred, valid.labels.cpu().numpy())
        row = {"epoch": epoch, "train_loss": train_loss, f"valid_{select}": score}
        row.update({f"valid_{k}": v for k, v in compute_metrics(metrics_kind, pred, valid.labels.cpu().numpy()).items()})
        row["seconds"] = time.perf_counter() - t0
        state["rows"].append(row)
        if score > state["best_score"]:
            state.update(best_score=score, best_epoch=epoch, bad_epochs=0)
            best_state = copy.deepcopy(model.state_dict())
        else:
            state["bad_epochs"] += 1
        state["epoch"] = epoch + 1
        bar.set_postfix(loss=f"{row['train_loss']:.4f}", **{select: f"{score:.4f}"})
        with atomic_path(resume_path) as tmp:
            torch.save(
                {"model": model.state_dict(), "optimizer": opt.state_dict(), "order_rng": order.get_state(),
                 "torch_rng": torch.get_rng_state(), "best_state": best_state, "state": state},
                tmp,
            )
    model.load_state_dict(best_state)
    info = {"best_epoch": state["best_epoch"], "best_score": state["best_score"], "select": select,
            "epochs_run": state["epoch"]}
    return info, state["rows"]


def write_log(path, rows: list[dict]) -> None:
    cols = ["epoch", "train_loss"] + sorted({k for r in rows for k in r} - {"epoch", "train_loss"})
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols)
    w.writeheader()
    w.writerows(rows)
    write_text(path, buf.getvalue())


def resume_path_for(out) -> Path:
    # beside the output but not a declared output: Snakemake's incomplete-output cleanup keeps it
    return Path(str(out) + ".resume")


# ------------------------------------------------------------------ the stages


def _prepare(cfg, features, seed):
    device = pick_device(cfg["device"])
    seed_everything(seed, device)
    if cfg.get("threads"):
        torch.set_num_threads(cfg["threads"])
    train = load_tensors(features, "train", cfg, device)
    valid = load_tensors(features, "valid", cfg, device)
    return device, train, valid


def _objective(cfg) -> str:
    obj = cfg["stage2"]["objective"]
    return "mae_sigmoid" if (cfg["task"] == "classification" and obj == "mae") else obj


def train_stage1(cfg: dict, features, out, log_path, seed: int) -> dict:
    device, train, valid = _prepare(cfg, features, seed)
    model = new_model(train, cfg, device)  # built right after seeding: same init for every variant
    s1 = cfg["stage1"]
    if not s1["enabled"] or s1["epochs"] == 0:
        info, rows = {"best_epoch": -1, "best_score": None, "select": s1["select"], "epochs_run": 0}, []
    else:
        loss_cfg, objective = cfg["loss"], _objective(cfg)
        info, rows = fit(
            model, train, valid, stage_cfg=s1, select=s1["select"], metrics_kind=cfg["metrics"], seed=seed,
            loss_fn=lambda p, y: losses.stage1_loss(p, y, loss_cfg, objective, check=False),
            resume_path=resume_path_for(out), desc=f"stage1 {cfg['dataset']}/{cfg['variant']}/seed{seed}",
        )
    write_log(log_path, rows)
    save_checkpoint(out, model, cfg, {"stage": 1, **info, "device": str(device)})
    resume_path_for(out).unlink(missing_ok=True)
    return info


def train_stage2(cfg: dict, features, init, out, log_path, seed: int) -> dict:
    device, train, valid = _prepare(cfg, features, seed)
    model, _ = load_checkpoint(init, device)
    s2 = cfg["stage2"]
    if not s2["enabled"]:
        info, rows = {"best_epoch": -1, "best_score": None, "select": s2["select"], "epochs_run": 0}, []
    elif s2["method"] == "linear_map":
        info, rows = fit_linear_map(model, train, valid, cfg), []
    else:
        loss_cfg, objective = cfg["loss"], _objective(cfg)
        info, rows = fit(
            model, train, valid, stage_cfg=s2, select=s2["select"], metrics_kind=cfg["metrics"], seed=seed + 7919,
            loss_fn=lambda p, y: losses.stage2_loss(p, y, loss_cfg, objective, check=False),
            resume_path=resume_path_for(out), desc=f"stage2 {cfg['dataset']}/{cfg['variant']}/seed{seed}",
        )
    write_log(log_path, rows)
    save_checkpoint(out, model, cfg, {"stage": 2, **info, "device": str(device)})
    resume_path_for(out).unlink(missing_ok=True)
    return info


def fit_linear_map(model, train: Tensors, valid: Tensors, cfg: dict) -> dict:
    """Put stage-1 scores on the label scale with a map fitted on train only (no gradient steps)."""
    s = torch.from_numpy(predict(model, train, raw=True)).double()
    y = train.labels.double().cpu()
    if cfg["task"] == "classification":  # 1-D logistic regression on the score
        ab = torch.zeros(2, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS([ab], max_iter=100)

        def closure():
            opt.zero_grad()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(ab[0] * s + ab[1], y)
            loss.backward()
            return loss

        opt.step(closure)
        a, b = ab.detach().tolist()
    else:
        X = torch.stack([s, torch.ones_like(s)], dim=1)
        a, b = torch.linalg.lstsq(X, y[:, None]).solution.squeeze(1).tolist()
    model.scale.fill_(a)
    model.bias.fill_(b)
    pred = predict(model, valid)
    score = selection_score(cfg["stage2"]["select"], pred, valid.labels.cpu().numpy())
    return {"best_epoch": -1, "best_score": score, "select": cfg["stage2"]["select"], "epochs_run": 0,
            "linear_map": [a, b]}
