"""The MMSA model zoo as backbones: one adapter from our batches to each model's forward.

`model.backbone: mmsa.<name>` builds MMSA's own class (through its `AMIO` registry) with the
package's per-dataset defaults from its `config_regression.json`, overridden by
`model.backbone_args`. The adapter standardises our padded features with train statistics,
shapes them as the model expects, and takes its fused output `M` as the score; the objective
(pointwise, pairwise, GRCF) is ours, so the models' own auxiliary losses (MISA's similarity /
difference / reconstruction terms, Self-MM's unimodal self-supervised labels) are not used: only
`M` is trained. MMSA (and with it pynvml, transformers) is imported only when a zoo backbone is
built.

Input shapes per family (MMSA's own data conventions):
- sequence models (MulT): text, audio, vision as padded sequences, each at its own length;
- aligned models (MFN, Graph-MFN, EF-LSTM): audio and vision resampled onto the text's steps
  (masked mean over equal bins of each row's valid steps), so all three share one length;
- utterance models (TFN, LMF, LF-DNN): text as a sequence, audio and vision as masked means;
- BERT models (MISA, Self-MM): BERT token ids [B, 3, L] (ids, mask, segments) from the raw text
  with a BERT-family encoder (offline all-MiniLM-L6-v2 by default, width set from its config);
  MISA reads the audio/vision steps at the text's token lengths, so they are resampled onto the
  tokens; Self-MM gets (sequence, lengths) pairs.
A modality a dataset lacks entirely is fed as one zero step of width 1; a row whose modality is
all padding gets zeros and length 1 (packed RNNs reject length 0).
"""

from __future__ import annotations

import copy
import json

import torch
from torch import nn

from grcf.errors import GrcfError
from grcf.training.spec import ZOO, backbone_spec  # noqa: F401 (ZOO: the supported models, for callers)

TOKENS = "text_tokens"  # features/masks key holding BERT token ids for the BERT backbones
MODALITIES = ("text", "audio", "vision")

# our own keys in backbone_args (the rest override MMSA's arguments)
OWN_ARGS = ("mmsa_dataset", "text_model", "max_length")


def mmsa_args(name: str, dims: dict, model_cfg: dict) -> dict:
    """MMSA's defaults for (model, dataset), our input sizes, then backbone_args on top."""
    from MMSA.config import get_config_regression  # (ZooRegressor checked that MMSA is installed)

    user = dict(model_cfg.get("backbone_args") or {})
    args = dict(get_config_regression(name, user.get("mmsa_dataset", "mosi")))
    dt, da, dv = (dims.get(m, 1) for m in MODALITIES)
    L = model_cfg.get("max_len") or {}
    args.update(feature_dims=[dt, da, dv], train_mode="regression", num_classes=1, device="cpu",
                need_model_aligned=False)  # alignment is done here, mask-aware (see resample)
    seq = [int(L.get("text", 64)), int(L.get("audio", 400)), int(L.get("vision", 100))]
    # aligned models run on the text's grid (EF-LSTM's BatchNorm needs its exact length)
    args["seq_lens"] = seq[0] if ZOO[name] == "aligned" else seq
    if ZOO[name] == "bert":
        from transformers import AutoConfig

        from grcf.data.extractors.text import resolve_model_name

        path = resolve_model_name(user.get("text_model", "default"))
        width = AutoConfig.from_pretrained(path).hidden_size
        args.update(transformers="bert", pretrained=path, feature_dims=[width, da, dv], text_out=width)
        args.setdefault("use_finetune", True)
    if name == "mult":
        args["use_bert"] = False
    theirs = {k: v for k, v in user.items() if k not in OWN_ARGS}
    unknown = sorted(set(theirs) - set(args))
    if unknown:  # the schema leaves backbone_args open (MMSA's keys): a typo is caught here
        import difflib

        k = unknown[0]
        near = difflib.get_close_matches(k, list(args) + list(OWN_ARGS), n=1)
        raise GrcfError(f"model.backbone_args.{k} is not an argument of MMSA's {name}"
                        + (f"; did you mean model.backbone_args.{near[0]}?" if near else
                           f"; its arguments are {sorted(args)}"))
    args.update(theirs)
    return json.loads(json.dumps(args))  # plain dicts (MMSA's are EasyDicts): checkpoints load with weights_only


def resample(x, lengths, out_lengths, width: int):
    """Masked mean of each row's first lengths[i] steps over out_lengths[i] equal bins -> [B, width, D].

    Bins past a row's out_length are zero; a row with no valid step gives zeros.
    """
    B, L, D = x.shape
    cs = torch.cat([x.new_zeros(B, 1, D), x.cumsum(1)], dim=1)
    b = torch.arange(width, device=x.device)[None, :]
    n = lengths.long()[:, None]
    m = out_lengths.long().clamp_min(1)[:, None]
    start = torch.div(b * n, m, rounding_mode="floor").clamp_max(L)
    end = torch.maximum(torch.div((b + 1) * n, m, rounding_mode="floor"), start + 1).clamp_max(L)
    start = start.clamp_max(end - 1).clamp_min(0)

    def at(i):
        return cs.gather(1, i[..., None].expand(B, width, D))

    out = (at(end) - at(start)) / (end - start).clamp_min(1)[..., None].to(x.dtype)
    keep = (b < m) & (n > 0)
    return out * keep[..., None].to(x.dtype)


class ZooRegressor(nn.Module):
    """An MMSA model behind grcf's model interface: score(features, masks) -> [B], calibrated forward."""

    def __init__(self, dims: dict[str, int], model_cfg: dict):
        super().__init__()
        try:
            from easydict import EasyDict  # MMSA's models read their arguments as attributes
            from MMSA.models.AMIO import AMIO
        except ImportError as e:
            raise GrcfError(f"model.backbone {model_cfg['backbone']!r} needs the MMSA package: "
                            f"pip install 'grcf[zoo]' ({e})") from e

        self.spec = backbone_spec(model_cfg)
        self.name = self.spec.zoo
        self.family = self.spec.family
        self.dims = dict(dims)
        self.modalities = list(dims)
        self.standardized = [m for m in dims if not (m == "text" and self.family == "bert")]
        for m in self.standardized:
            self.register_buffer(f"mean_{m}", torch.zeros(dims[m]))
            self.register_buffer(f"std_{m}", torch.ones(dims[m]))
        self.args = mmsa_args(self.name, dims, model_cfg)
        self.net = AMIO(EasyDict(copy.deepcopy(self.args)))
        if self.name == "misa":  # MISA hard-codes a 768-wide BERT; size its text projection to ours
            proj = self.net.Model.project_t.project_t
            self.net.Model.project_t.project_t = nn.Linear(self.args["feature_dims"][0], proj.out_features)
        self.register_buffer("scale", torch.ones(()))
        self.register_buffer("bias", torch.zeros(()))

    def set_input_stats(self, modality: str, mean: torch.Tensor, std: torch.Tensor) -> None:
        getattr(self, f"mean_{modality}").copy_(mean)
        getattr(self, f"std_{modality}").copy_(std.clamp_min(1e-6))

    def bert_parameters(self) -> list:
        for mod in self.net.modules():
            if type(mod).__name__ == "BertTextEncoder":
                return list(mod.model.parameters())
        return []

    def inputs(self, features: dict, masks: dict) -> tuple:
        """The model's (text, audio, video) forward arguments for one batch."""
        B = next(iter(masks.values())).shape[0]
        dev = next(iter(masks.values())).device
        seq, lens = {}, {}
        for m in MODALITIES:
            if m in self.standardized and m in features:
                x = (features[m] - getattr(self, f"mean_{m}")) / getattr(self, f"std_{m}")
                seq[m] = x * masks[m][..., None].to(x.dtype)
                lens[m] = masks[m].sum(1)
            elif m not in features:  # the dataset has no such modality at all
                seq[m] = torch.zeros(B, 1, 1, device=dev)
                lens[m] = torch.zeros(B, dtype=torch.long, device=dev)
        if self.family == "bert":
            ids, att = features[TOKENS], masks[TOKENS].long()
            text = torch.stack([ids.long(), att, torch.zeros_like(att)], dim=1).float()
            tok_len = att.sum(1)
            if self.name == "misa":  # MISA packs audio/vision at the text's token lengths
                a = resample(seq["audio"], lens["audio"], tok_len, ids.shape[1])
                v = resample(seq["vision"], lens["vision"], tok_len, ids.shape[1])
                return text, a, v
            return (text, (seq["audio"], lens["audio"].clamp_min(1).cpu()),
                    (seq["vision"], lens["vision"].clamp_min(1).cpu()))
        if self.family == "aligned":
            W = self.args["seq_lens"]
            t = nn.functional.pad(seq["text"], (0, 0, 0, max(W - seq["text"].shape[1], 0)))[:, :W]
            grid = lens["text"].clamp_max(W) if "text" in features else torch.full((B,), W, device=dev)
            return t, resample(seq["audio"], lens["audio"], grid, W), resample(seq["vision"], lens["vision"], grid, W)
        if self.family == "utterance":
            def mean(m):
                return (seq[m].sum(1) / lens[m].clamp_min(1)[:, None].to(seq[m].dtype))[:, None, :]
            return seq["text"], mean("audio"), mean("vision")
        # MulT's temporal convolutions need at least kernel-size steps: pad short batches with zeros
        k = {m: int(self.args.get(f"conv1d_kernel_size_{c}", 1)) for m, c in zip(MODALITIES, "lav")}
        return tuple(nn.functional.pad(seq[m], (0, 0, 0, max(k[m] - seq[m].shape[1], 0))) for m in MODALITIES)

    def score(self, features: dict, masks: dict) -> torch.Tensor:
        """The uncalibrated fused output M, [B]."""
        return self.net(*self.inputs(features, masks))["M"].reshape(-1)

    def forward(self, features: dict, masks: dict) -> torch.Tensor:
        return self.score(features, masks) * self.scale + self.bias
