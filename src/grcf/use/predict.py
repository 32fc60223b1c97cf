"""`grcf predict`: score new media, folders, or datasets with a bundle (see grcf.use.bundle).

Features come from the same code as training, with the settings stored in the bundle: a dataset
input (MMSA raw root, MMSA pickle, UR-FUNNY, MUStARD, Parquet store) goes through its
`grcf.data.datasets` builder into a temporary feature store; a loose media file goes through the
same `grcf.data.extractors` extractors (`extract_audio`, `extract_vision`, `encode_texts`) into a
temporary store. Either store is then read by the training code's `load_tensors`.

Text for a media file comes from `--transcript FILE`, a sidecar `<media>.txt`/`.srt`, or offline
speech recognition (grcf.use.asr). A file longer than `max_segment_seconds` is scored per utterance
(recognizer segments or .srt cues) plus a duration-weighted whole-file row.
"""

from __future__ import annotations

import logging
import math
import multiprocessing as mp
import re
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from grcf import MODALITIES
from grcf.data import datasets
from grcf.data.extractors import canonical, extractable, producer
from grcf.training.spec import backbone_spec
from grcf.errors import DataError, GrcfError

log = logging.getLogger(__name__)

VIDEO_EXT = {".mp4", ".mkv", ".webm", ".avi", ".mov"}
AUDIO_EXT = {".wav", ".mp3"}
MEDIA_EXT = VIDEO_EXT | AUDIO_EXT
SILENT_PEAK = 1e-4  # a waveform whose peak stays below this is silent


class PredictError(GrcfError):
    """Nothing could be scored."""


# ------------------------------------------------------------------ inputs


@dataclass
class Source:
    kind: str  # media | mmsa_raw | mmsa_pickle | urfunny | mustard | parquet
    path: Path
    from_folder: bool = False


def detect_inputs(paths) -> list[Source]:
    """Each input by kind (the dataset registry's formats, or media); a plain folder expands to
    the media files in it (recursively, sorted)."""
    out = []
    for p in map(Path, paths):
        if not p.exists():
            raise DataError(p, "input not found")
        if p.is_dir():
            kind = datasets.sniff(p)
            if kind:
                out.append(Source(kind, p))
                continue
            media = sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in MEDIA_EXT)
            if not media:
                raise DataError(p, f"empty folder: no media files ({', '.join(sorted(MEDIA_EXT))})"
                                f" and not a dataset (a folder with {datasets.folder_markers()})")
            out += [Source("media", q, from_folder=True) for q in media]
            continue
        if p.suffix.lower() in MEDIA_EXT:
            out.append(Source("media", p))
            continue
        kind = datasets.sniff(p)
        if kind is None:
            raise DataError(p, f"not a supported input: media ({', '.join(sorted(MEDIA_EXT))}), a folder, or a dataset: "
                            + "; ".join(f.describes for f in datasets.FORMATS.values() if f.name != "embedded"))
        # a dataset's marker file (label.csv) stands for its folder
        out.append(Source(kind, p.parent if datasets.get(kind).filename == p.name else p))
    return out


# ------------------------------------------------------------------ transcripts


@dataclass
class Segment:
    start: float
    end: float
    text: str


def read_transcript(path) -> tuple[str | None, list[Segment] | None]:
    """(plain text, None) for a .txt; (joined text, cues) for an .srt."""
    path = Path(path)
    try:
        raw = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(path, f"cannot read transcript ({type(e).__name__}: {e})") from None
    if path.suffix.lower() == ".srt":
        cues = parse_srt(raw, path)
        return " ".join(c.text for c in cues), cues
    text = " ".join(raw.split())
    if not text:
        raise DataError(path, "transcript is empty")
    return text, None


_SRT_TIME = re.compile(r"(\d+):(\d{2}):(\d{2})[,.](\d{1,3})\s*-->\s*(\d+):(\d{2}):(\d{2})[,.](\d{1,3})")


def parse_srt(raw: str, path) -> list[Segment]:
    cues = []
    for block in re.split(r"\n\s*\n", raw.strip()):
        lines = [ln.strip() for ln in block.splitlines() if ln.strip()]
        for k, ln in enumerate(lines):
            m = _SRT_TIME.search(ln)
            if m:
                g = [int(x) for x in m.groups()]
                start = g[0] * 3600 + g[1] * 60 + g[2] + g[3] / 10 ** len(m.group(4))
                end = g[4] * 3600 + g[5] * 60 + g[6] + g[7] / 10 ** len(m.group(8))
                text = " ".join(re.sub(r"<[^>]+>", "", t) for t in lines[k + 1:]).strip()
                if text and end > start:
                    cues.append(Segment(start, end, text))
                break
    if not cues:
        raise DataError(path, "no subtitle cues with text")
    return sorted(cues, key=lambda c: c.start)


def sidecar(media: Path) -> Path | None:
    for cand in (media.with_suffix(".srt"), media.with_suffix(".txt"), Path(f"{media}.srt"), Path(f"{media}.txt")):
        if cand.is_file():
            return cand
    return None


# ------------------------------------------------------------------ one media file (a worker job)


@dataclass
class MediaJob:
    path: Path
    text: str | None
    cues: list | None
    text_source: str
    need_text: bool
    modalities: list  # audio / vision to extract
    audio_opts: dict
    vision_opts: dict
    asr_model: str
    max_segment_seconds: float


@dataclass
class MediaResult:
    path: Path
    duration: float = 0.0
    text_source: str = ""
    utterances: list = field(default_factory=list)  # dicts: start, end, text, audio, vision, warnings
    warnings: list = field(default_factory=list)
    error: str | None = None


def _probe(path: Path) -> tuple[bool, bool, float]:
    from grcf.data.extractors.audio import open_media

    container = open_media(path)
    try:
        has_audio, has_video = bool(container.streams.audio), bool(container.streams.video)
        duration = container.duration / 1e6 if container.duration else 0.0
    finally:
        container.close()
    if not has_audio and not has_video:
        raise DataError(path, "no audio or video track: not a media file")
    return has_audio, has_video, duration


def extract_media(job: MediaJob) -> MediaResult:
    """Audio/vision features, text and utterance cuts of one file; errors become `error`."""
    res = MediaResult(job.path, text_source=job.text_source)
    try:
        _extract_media(job, res)
    except GrcfError as e:
        res.error = str(e)
    except Exception as e:  # an odd file must not kill the batch
        res.error = f"{job.path}: {type(e).__name__}: {e}"
    return res


def _extract_media(job: MediaJob, res: MediaResult) -> None:
    from grcf.use import asr
    from grcf.data.extractors.audio import audio_features, decode_audio
    from grcf.data.extractors.vision import MOTION, extract_vision

    path = job.path
    has_audio, has_video, duration = _probe(path)
    sr = int(job.audio_opts["sample_rate"])
    wave = decode_audio(path, sr) if has_audio and ("audio" in job.modalities or (job.need_text and job.text is None)) else None
    if wave is not None:
        duration = wave.size / sr
        if float(np.abs(wave).max()) < SILENT_PEAK:
            res.warnings.append("silent audio")
    res.duration = duration
    text, cues = job.text, job.cues
    if job.need_text and text is None:
        if not has_audio:
            raise DataError(path, "no audio track and no transcript: give --transcript FILE or a sidecar .txt/.srt")
        if not asr.available():
            raise asr.AsrUnavailable(asr.install_hint(path))
        wave16 = wave if sr == asr.SAMPLE_RATE else decode_audio(path, asr.SAMPLE_RATE)
        segs = asr.transcribe(wave16, model=job.asr_model)
        if not segs:
            raise DataError(path, "speech recognition found no speech: give --transcript FILE or a sidecar .txt/.srt")
        cues = [Segment(s.start, s.end, s.text) for s in segs]
        text = " ".join(s.text for s in segs)
        res.text_source = "asr"
    if duration > job.max_segment_seconds and cues:
        cuts = [(c.start, min(c.end, duration), c.text) for c in cues if c.start < duration]
    else:
        if duration > job.max_segment_seconds:
            res.warnings.append(f"longer than {job.max_segment_seconds:g} s but no segment times (plain transcript):"
                                " scored as one utterance")
        cuts = [(0.0, duration, text)]
    whole = len(cuts) == 1

    vision = times = None
    if "vision" in job.modalities:
        if has_video:
            vision, info = extract_vision(path, fps=float(job.vision_opts["fps"]), with_times=True)
            times = info["times"]
        else:
            res.warnings.append("no video track: vision absent")
    if "audio" in job.modalities and wave is None:
        res.warnings.append("no audio track: audio absent")
    for start, end, utt_text in cuts:
        u = {"start": start, "end": end, "text": utt_text, "audio": None, "vision": None, "warnings": []}
        if wave is not None and "audio" in job.modalities:
            piece = wave if whole else wave[int(start * sr):int(math.ceil(end * sr))]
            if piece.size:
                u["audio"] = audio_features(piece, sample_rate=sr, hop_seconds=float(job.audio_opts["hop_seconds"]),
                                            backend=job.audio_opts["backend"], source=path)
        if vision is not None:
            v = vision if whole else vision[(times >= start) & (times < end)].copy()
            if not whole and len(v):
                v[0, MOTION] = 0.0  # a sequence's first face frame has no predecessor, as in training
            if len(v):
                u["vision"] = v
            else:
                u["warnings"].append("no face found")
        res.utterances.append(u)


def _init_worker():
    import cv2

    cv2.setNumThreads(1)


def run_jobs(jobs: list[MediaJob], workers: int, progress: bool = True):
    """Yield MediaResults in job order (a process pool when workers > 1)."""
    from tqdm.auto import tqdm

    bar = tqdm(total=len(jobs), desc="items", unit="item", disable=not progress)
    try:
        if workers <= 1 or len(jobs) <= 1:
            for job in jobs:
                yield extract_media(job)
                bar.update(1)
            return
        # spawn, as in grcf.data.datasets.mmsa_raw: forking a process that runs torch threads can deadlock
        with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=mp.get_context("spawn"),
                                 initializer=_init_worker) as pool:
            for res in pool.map(extract_media, jobs, chunksize=1):
                yield res
                bar.update(1)
    finally:
        bar.close()


# ------------------------------------------------------------------ scoring


@dataclass
class Options:
    output: Path
    json: Path | None = None
    transcript: Path | None = None
    asr_model: str = "default"
    workers: int = 1
    on_error: str | None = None  # None: skip for folders / several inputs, fail for one input
    expect: str | None = None
    plot: bool = False
    max_segment_seconds: float | None = None
    progress: bool = True


def predict(bundle_path, inputs, opts: Options) -> dict:
    """Score every input; write the CSV (and JSON) unless `opts.output` is None; return {"rows": DataFrame,
    "failed": [...], "metrics": {...}}. `bundle_path` may be an already loaded Bundle (the Python API and
    the demo load it once)."""
    import pandas as pd

    from grcf.use.bundle import Bundle, load_bundle

    sources = detect_inputs(inputs)
    bundle = bundle_path if isinstance(bundle_path, Bundle) else load_bundle(bundle_path)
    if opts.expect and bundle.task != opts.expect:
        raise GrcfError(f"{bundle_path}: bundle is a {bundle.task} model, but --expect {opts.expect} was asked")
    on_error = opts.on_error or ("skip" if len(sources) > 1 or any(s.from_folder for s in sources) else "fail")
    if opts.transcript and (len(sources) != 1 or sources[0].kind != "media"):
        raise GrcfError("--transcript applies to a single media file input")
    frames, failed, metrics = [], [], {}
    media = [s for s in sources if s.kind == "media"]
    with tempfile.TemporaryDirectory(prefix="grcf-predict-") as tmp:
        tmp = Path(tmp)
        for k, s in enumerate(s for s in sources if s.kind != "media"):
            try:
                df, m = _score_dataset(bundle, s, tmp / f"dataset{k}.parquet", opts)
            except GrcfError as e:
                _skip_or_raise(e, s.path, on_error, failed)
                continue
            frames.append(df)
            metrics[str(s.path)] = m
        if media:
            df, fails = _score_media(bundle, media, tmp / "media.parquet", opts, on_error)
            failed += fails
            if df is not None:
                frames.append(df)
    if not frames:
        why = failed[0][1] if len(failed) == 1 else f"all {len(failed)} inputs failed"
        raise PredictError(f"nothing could be scored: {why}")
    rows = pd.concat(frames, ignore_index=True)
    if opts.output is None:  # the Python API: rows only, no files
        return {"rows": rows, "failed": failed, "metrics": metrics, "bundle": bundle}
    _write_outputs(rows, opts)
    if opts.plot:
        for path, g in rows[rows["kind"] == "media"].groupby("input", sort=False):
            plot_timeline(g, _plot_path(opts.output, path), bundle)
    return {"rows": rows, "failed": failed, "metrics": metrics, "bundle": bundle}


def _write_outputs(rows, opts: Options) -> None:
    from grcf.atomic import write_text

    write_text(opts.output, rows.drop(columns=["kind"]).to_csv(index=False))
    if opts.json:
        write_text(opts.json, rows.drop(columns=["kind"]).to_json(orient="records", indent=2) + "\n")


def _plot_path(output: Path, media) -> Path:
    return Path(output).with_name(f"{Path(output).stem}.{Path(media).stem}.png")


def check_features(bundle, store_meta: dict, where) -> None:
    """A store's features must be those the bundle was trained on (dims and producers)."""
    trained = bundle.config["store_meta"].get("modalities", {})
    for m in bundle.modalities:
        got = store_meta.get("modalities", {}).get(m)
        if got is None:
            continue  # absent modality: zeros and a presence flag, as in training
        want = trained.get(m, {})
        if int(got.get("dim", -1)) != int(bundle.config["dims"][m]) and not _finetuned_text(bundle, m):
            raise GrcfError(f"{where}: {m} features have dim {got.get('dim')}, the bundle was trained on {bundle.config['dims'][m]}")
        if want.get("producer") and got.get("producer") and canonical(want["producer"]) != canonical(got["producer"]):
            raise GrcfError(f"{where}: {m} features come from {canonical(got['producer'])!r}, the bundle was trained on"
                            f" {canonical(want['producer'])!r}")


def trained_producer(bundle, m) -> str:
    """The canonical producer of the bundle's training features of modality m."""
    return canonical((bundle.config["store_meta"].get("modalities", {}).get(m) or {}).get("producer"))


def check_producers(bundle, planned: dict, where) -> None:
    """Before any extraction: the features grcf would extract (`planned`, modality -> settings) must
    be those the bundle was trained on; a fine-tuned text encoder reads raw text, not features."""
    for m, settings in planned.items():
        if _finetuned_text(bundle, m):
            continue
        want = trained_producer(bundle, m)
        if not extractable(want):
            raise GrcfError(f"{where}: the bundle's {m} features come from {want!r}, which grcf cannot extract from"
                            " media; score that kind of data as a dataset (pickle/store) instead")
        got = producer(m, settings)
        if got != want:
            raise GrcfError(f"{where}: {m} features would come from {got!r}, the bundle was trained on {want!r}")


def _finetuned_text(bundle, m):
    return m == "text" and backbone_spec(bundle.config["model_cfg"]).text_is_tokens


def dataset_options(bundle, kind: str, opts: Options) -> dict:
    """Builder options from the bundle's stored feature settings (the training store's)."""
    f = bundle.config["features"]
    options = {"modalities": [m for m in bundle.modalities], "workers": opts.workers, "on_error": opts.on_error or "skip",
               "progress": opts.progress, "device": "cpu", "dataset": "predict", "scoring": True}
    if "text" in f:
        options["text"] = {"model": _text_model(bundle), "max_length": int(f["text"].get("max_length") or 64)}
    if "audio" in f:
        options["audio"] = {k: f["audio"][k] for k in ("sample_rate", "hop_seconds", "backend") if f["audio"].get(k) is not None}
    if "vision" in f and f["vision"].get("fps") is not None:
        options["vision"] = {"fps": f["vision"]["fps"]}
    if bundle.config.get("label_range"):  # a format without a label range ignores it
        options["label_range"] = bundle.config["label_range"]
    return options


def _text_model(bundle) -> str:
    """The text encoder of the bundle's training features (its canonical producer names it)."""
    f = bundle.config["features"].get("text") or {}
    want = trained_producer(bundle, "text")
    return f.get("model") or (want.split(":", 1)[1] if want.startswith("transformers:") else "default")


def _planned(bundle, options: dict, modalities) -> dict:
    """modality -> the extraction settings a build with `options` would use (as the builders default them)."""
    defaults = {"text": {"model": "default"}, "audio": {"backend": "librosa", "hop_seconds": 0.04}, "vision": {"fps": 5}}
    return {m: {**defaults[m], **(options.get(m) or {})} for m in modalities if m in bundle.modalities}


def _score_dataset(bundle, src: Source, store: Path, opts: Options):
    """Every row of a dataset, whatever its split (the split matters for training, not for scoring);
    metrics per split present and over all rows, from the rows that have a label."""
    import pandas as pd

    from grcf.data.store import SPLITS, read_meta

    fmt = datasets.get(src.kind)
    if fmt.is_store:
        store = src.path
    else:
        options = dataset_options(bundle, src.kind, opts)
        check_producers(bundle, _planned(bundle, options, fmt.extracts), src.path)
        datasets.build(src.kind, src.path, store, options)
    meta = read_meta(store)
    check_features(bundle, meta, src.path)
    splits, has_label = _split_and_labelled(store)
    frames = []
    for split in SPLITS:
        if not (splits == split).any():
            continue  # an absent split is no error here: a user's folder is often all one split
        t = _tensors(bundle, store, split)
        pred = _predict(bundle, t)
        labels = np.where(has_label[splits == split], t.labels.numpy().astype(np.float64), np.nan)
        frames.append(pd.DataFrame({"input": str(src.path), "id": list(t.ids), "split": split, "label": labels,
                                    **_score_columns(bundle, pred),
                                    "transcript": _texts(store, split), "modalities": _present(t), "_pred": pred}))
    if not frames:
        raise DataError(store, "no rows to score")
    df = pd.concat(frames, ignore_index=True)
    metrics = _metrics(bundle, df)
    df = df.drop(columns=["_pred"])
    df.insert(0, "kind", "dataset")
    return df, metrics


def _split_and_labelled(store):
    """(split of each row, whether it has a label), in store order (which load_split keeps within a
    split); a store without a `has_label` column (every training store) is all labelled."""
    import pyarrow.parquet as pq

    names = pq.read_schema(store).names
    cols = ["split"] + (["has_label"] if "has_label" in names else [])
    table = pq.read_table(store, columns=cols)
    splits = table.column("split").to_numpy(zero_copy_only=False).astype(str)
    has = (table.column("has_label").to_numpy(zero_copy_only=False).astype(bool) if "has_label" in cols
           else np.ones(len(splits), dtype=bool))
    return splits, has


def _metrics(bundle, df) -> dict:
    """{split: metrics} for each split with at least two labelled rows, and "all" over every labelled
    row when more than one split is present; {} without labels (scores only)."""
    from grcf.training.metrics import compute

    out = {}
    lab = df[np.isfinite(df["label"].to_numpy(dtype=np.float64))]
    for split, g in lab.groupby("split", sort=False):
        if len(g) > 1:
            out[split] = compute(bundle.config["metrics_kind"], g["_pred"].to_numpy(), g["label"].to_numpy())
    if df["split"].nunique() > 1 and len(lab) > 1:
        out["all"] = compute(bundle.config["metrics_kind"], lab["_pred"].to_numpy(), lab["label"].to_numpy())
    return out


def _texts(store, split):
    from grcf.data.store import load_split

    return load_split(store, split, modalities=[]).texts


def _tensors(bundle, store, split):
    """The training code's tensors for one split; modalities the store lacks are marked absent."""
    import torch

    from grcf.training.train import load_tensors

    cfg = {"modalities": bundle.modalities, "model": bundle.config["model_cfg"]}
    t = load_tensors(store, split, cfg, torch.device("cpu"))
    n = len(t.ids)
    for m in bundle.modalities:
        if m not in t.features:
            t.features[m] = torch.zeros(n, 1, int(bundle.config["dims"][m]))
            t.masks[m] = torch.zeros(n, 1, dtype=torch.bool)
    return t


def _predict(bundle, t):
    from grcf.training.train import predict

    return predict(bundle.model, t)


def _present(t) -> list[str]:
    flags = {m: t.masks[m].any(dim=1).numpy() for m in t.masks}
    return ["+".join(m for m in MODALITIES if m in flags and flags[m][i]) or "none" for i in range(len(t.ids))]


def _score_columns(bundle, pred: np.ndarray) -> dict:
    pred = np.asarray(pred, dtype=np.float64)
    if bundle.task == "classification":
        prob = 1.0 / (1.0 + np.exp(-pred))
        return {"score": pred, "probability": prob, "predicted_label": (prob > 0.5).astype(int)}
    lo, hi = bundle.config.get("label_range") or (-3.0, 3.0)
    cols = {"score": pred, "polarity": np.where(pred > 0, "positive", np.where(pred < 0, "negative", "neutral"))}
    # MMSA's 7-class label: rounded (half to even, as numpy and MMSA) and clipped to the label range
    cols["class7"] = np.clip(np.round(pred), lo, hi).astype(int) if (lo, hi) == (-3.0, 3.0) else np.full(len(pred), None)
    return cols


def _score_media(bundle, media: list[Source], store: Path, opts: Options, on_error: str):
    import pandas as pd

    f = bundle.config["features"]
    mods = bundle.modalities
    need_text = "text" in mods
    extract = [m for m in ("audio", "vision") if m in mods]
    if not extract:
        log.warning("the bundle uses %s only: audio and vision of the inputs are not used", "+".join(mods))
    max_seg = float(opts.max_segment_seconds or bundle.config.get("predict", {}).get("max_segment_seconds", 30.0))
    audio_opts = {"sample_rate": 16000, "hop_seconds": 0.04, "backend": "librosa",
                  **{k: v for k, v in (f.get("audio") or {}).items() if k in ("sample_rate", "hop_seconds", "backend") and v is not None}}
    vision_opts = {"fps": (f.get("vision") or {}).get("fps") or 5}
    # before any clip is opened: what would be extracted must be what the bundle was trained on
    check_producers(bundle, {m: s for m, s in (("text", {"model": _text_model(bundle)}), ("audio", audio_opts),
                                               ("vision", vision_opts)) if m in mods}, bundle.path)
    jobs, failed = [], []
    for s in media:
        try:
            tpath = opts.transcript or sidecar(s.path)
            text, cues = read_transcript(tpath) if tpath else (None, None)
            source = "transcript" if opts.transcript else ("sidecar" if tpath else "asr")
        except GrcfError as e:
            _skip_or_raise(e, s.path, on_error, failed)
            continue
        jobs.append(MediaJob(s.path, text, cues, source, need_text, extract, audio_opts, vision_opts, opts.asr_model, max_seg))
    results = []
    for res in run_jobs(jobs, opts.workers, opts.progress):
        if res.error:
            _skip_or_raise(PredictError(res.error), res.path, on_error, failed)
            continue
        results.append(res)
    if not results:
        return None, failed

    utts = [(r, u) for r in results for u in r.utterances]
    texts = [u["text"] for _, u in utts]
    pred, present = _score_utterances(bundle, store, texts, {m: [u[m] for _, u in utts] for m in extract},
                                      encode=need_text, progress=opts.progress, source="transcripts")
    rows = []
    for (r, u), p, pres in zip(utts, pred, present):
        warn = r.warnings + u["warnings"]
        rows.append({"input": str(r.path), "id": r.path.stem, "segment": "", "start": u["start"], "end": u["end"],
                     "score_raw": float(p), "transcript": u["text"], "transcript_source": r.text_source,
                     "modalities": pres, "warning": "; ".join(dict.fromkeys(warn))})
    df = pd.DataFrame(rows)
    out = []
    for path, g in df.groupby("input", sort=False):
        g = g.copy()
        if len(g) > 1:  # one row per utterance, then the whole file: duration-weighted mean
            g["segment"] = [str(i) for i in range(len(g))]
            w = (g["end"] - g["start"]).clip(lower=1e-6).to_numpy()
            whole = {"input": path, "id": g["id"].iloc[0], "segment": "all", "start": g["start"].min(),
                     "end": g["end"].max(), "score_raw": float(np.average(g["score_raw"], weights=w)),
                     "transcript": " ".join(g["transcript"]), "transcript_source": g["transcript_source"].iloc[0],
                     "modalities": "+".join(m for m in MODALITIES if any(m in s.split("+") for s in g["modalities"])),
                     "warning": "; ".join(dict.fromkeys(x for s in g["warning"] if s for x in s.split("; ")))}
            g = pd.concat([g, pd.DataFrame([whole])], ignore_index=True)
        else:
            g["segment"] = "all"
        out.append(g)
    df = pd.concat(out, ignore_index=True)
    scores = _score_columns(bundle, df.pop("score_raw").to_numpy())
    for k, v in reversed(list(scores.items())):
        df.insert(5, k, v)
    df.insert(0, "kind", "media")
    return df, failed


def predict_texts(bundle, texts, progress: bool = False):
    """Score raw texts (no media) with a loaded bundle: one row per text (id, score columns, transcript,
    modalities); the same store and tensors as a media file's text, audio and vision marked absent."""
    import pandas as pd

    if isinstance(texts, str):
        texts = [texts]
    texts = list(texts)
    if not texts:
        raise GrcfError("no texts to score")
    if "text" not in bundle.modalities:
        raise GrcfError(f"{bundle.path}: the bundle uses {'+'.join(bundle.modalities)}, not text: score media instead")
    for i, t in enumerate(texts):
        if not isinstance(t, str) or not t.strip():
            raise DataError("texts", "empty text", record=i)
    with tempfile.TemporaryDirectory(prefix="grcf-predict-") as tmp:
        pred, present = _score_utterances(bundle, Path(tmp) / "texts.parquet", texts, {}, encode=True,
                                          progress=progress, source="texts")
    return pd.DataFrame({"id": [str(k) for k in range(len(texts))], **_score_columns(bundle, pred), "transcript": texts,
                         "modalities": present})


def _score_utterances(bundle, store: Path, texts: list, extracted: dict, *, encode: bool, progress: bool, source: str):
    """Scores of utterances (their texts, plus audio/vision features already extracted) through the
    training code's store and tensors: (raw predictions, modalities present per utterance)."""
    from grcf.data.extractors.text import encode_texts
    from grcf.data.store import write_store

    ids = [str(k) for k in range(len(texts))]
    feats = {}
    if encode and not _finetuned_text(bundle, "text"):
        t = bundle.config["features"]["text"]
        feats["text"] = encode_texts(texts, model=_text_model(bundle), max_length=int(t.get("max_length") or 64),
                                     batch_size=64, device="cpu", progress=progress, source=source)
    feats.update(extracted)
    mod_meta = {m: {**bundle.config["store_meta"]["modalities"].get(m, {}), "dim": int(bundle.config["dims"][m])}
                for m in feats}
    write_store(store, ids=ids, splits=["test"] * len(ids), labels=[0.0] * len(ids), modalities=feats,
                meta={"dataset": "predict", "producer": "grcf.predict", "task": bundle.task, "modalities": mod_meta},
                texts=texts)
    t = _tensors(bundle, store, "test")
    return _predict(bundle, t), _present(t)


def plot_timeline(rows, out: Path, bundle) -> Path:
    """Sentiment over time of one media file: one bar per utterance, the whole-file mean as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from grcf.atomic import atomic_path

    utt = rows[rows["segment"] != "all"] if (rows["segment"] != "all").any() else rows
    whole = rows[rows["segment"] == "all"]["score"].iloc[0]
    fig, ax = plt.subplots(figsize=(9, 3.2))
    colors = ["tab:green" if s > 0 else "tab:red" if s < 0 else "tab:gray" for s in utt["score"]]
    ax.bar(utt["start"], utt["score"], width=(utt["end"] - utt["start"]), align="edge", color=colors, alpha=0.8,
           edgecolor="black", linewidth=0.4)
    ax.axhline(whole, color="tab:blue", linestyle="--", label=f"whole file (duration-weighted): {whole:+.2f}")
    ax.axhline(0, color="black", linewidth=0.6)
    lo, hi = bundle.config.get("label_range") or (-3, 3)
    if bundle.task == "regression":
        ax.set_ylim(lo, hi)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("sentiment" if bundle.task == "regression" else "logit")
    ax.set_title(f"{Path(rows['input'].iloc[0]).name}: {bundle.config['dataset']}/{bundle.config['variant']}")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return out


def _skip_or_raise(error: GrcfError, path, on_error: str, failed: list) -> None:
    """--on-error: `fail` stops at the first bad item; `skip` records it and goes on."""
    if on_error == "fail":
        raise error
    failed.append((path, str(error)))
    log.error("skipped %s", error)
