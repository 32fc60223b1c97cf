"""The backbone spec: `model.backbone` (+ `model.text_encoder`) resolved once into what every
other module asks of it. Nobody re-decides from strings whether a model is an MMSA zoo backbone,
whether it reads token ids of the raw text, or which of its parameters are the text encoder's.
"""

from __future__ import annotations

from dataclasses import dataclass

from grcf.errors import GrcfError

# family of each supported MMSA model (see grcf.training.backbones); others are left out
ZOO = {
    "mult": "sequence",
    "mfn": "aligned",
    "graph_mfn": "aligned",
    "ef_lstm": "aligned",
    "lf_dnn": "utterance",
    "tfn": "utterance",
    "lmf": "utterance",
    "misa": "bert",
    "self_mm": "bert",
}
FUSION = "fusion"


def zoo_name(backbone: str | None) -> str | None:
    """'mmsa.mult' -> 'mult'; 'fusion' -> None."""
    if backbone in (None, FUSION):
        return None
    if not backbone.startswith("mmsa."):
        raise GrcfError(f"model.backbone {backbone!r}: expected 'fusion' or 'mmsa.<name>'")
    name = backbone[len("mmsa."):]
    if name not in ZOO:
        raise GrcfError(f"model.backbone {backbone!r}: supported MMSA models are {sorted(ZOO)}")
    return name


@dataclass(frozen=True)
class BackboneSpec:
    backbone: str  # as in params.yaml: "fusion" or "mmsa.<name>"
    zoo: str | None  # the MMSA model name; None for grcf's own fusion model
    family: str | None  # the zoo model's input family (sequence / aligned / utterance / bert)
    finetuned_text: dict | None  # {name, max_length, ...}: grcf's text transformer is trained end to end
    zoo_tokens: dict | None  # {name, max_length}: a BERT zoo backbone reads token ids beside the features

    @property
    def is_zoo(self) -> bool:
        return self.zoo is not None

    @property
    def text_is_tokens(self) -> bool:
        """The text input is token ids of the raw text, not the store's text vectors (their dim does not matter)."""
        return self.finetuned_text is not None

    def encoder_parameters(self, model) -> list:
        """Parameters of a trained transformer (they get their own learning rate); empty otherwise."""
        if self.family == "bert":
            return model.bert_parameters()
        if self.finetuned_text and "text" in model.encoders:
            return list(model.encoders["text"].transformer.parameters())
        return []


def backbone_spec(model_cfg: dict) -> BackboneSpec:
    backbone = model_cfg.get("backbone") or FUSION
    name = zoo_name(backbone)
    family = ZOO[name] if name else None
    text = model_cfg.get("text_encoder") or {}
    zoo_tokens = None
    if family == "bert":
        args = model_cfg.get("backbone_args") or {}
        zoo_tokens = {"name": args.get("text_model", "default"), "max_length": args.get("max_length", text.get("max_length", 64))}
    finetuned = dict(text) if text.get("finetune") else None
    return BackboneSpec(backbone, name, family, finetuned, zoo_tokens)
