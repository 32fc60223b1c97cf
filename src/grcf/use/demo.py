"""`grcf demo`: a local Gradio page over the Python API (grcf.use.api), so it scores as `grcf predict`.

Upload or record a video or audio clip, or type text; the page shows the transcript per
utterance, the sentiment timeline (predict's `--plot` picture), the whole-clip score with its
polarity and 7-class label, the modalities used and any warning. Bad input (not media, too long,
no speech) is a message in the page; the app keeps serving. Requests wait in Gradio's queue, so
simultaneous ones are all answered, `concurrency` at a time.

No network: analytics are off, the page uses system fonts, and it listens on localhost only
unless `host` says otherwise.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from grcf.errors import GrcfError

log = logging.getLogger(__name__)

DEFAULT_PORT = 7860
DEFAULT_MAX_SECONDS = 300.0  # longer uploads are refused with a message (`--max-seconds`)
TABLE_COLUMNS = ["segment", "start", "end", "score", "transcript"]


def _quiet_gradio() -> None:
    # before gradio is imported: it reads these at import time
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def media_seconds(path) -> float | None:
    """The length of a media file (None when the container does not say); DataError when not media."""
    from grcf.data.extractors.audio import open_media

    container = open_media(Path(path))
    try:
        return container.duration / 1e6 if container.duration else None
    finally:
        container.close()


def describe(model, rows) -> str:
    """The whole-clip line, the modalities used, the transcript source and warnings, as Markdown."""
    whole = rows[rows["segment"] == "all"].iloc[0] if "segment" in rows and (rows["segment"] == "all").any() else rows.iloc[0]
    if model.task == "classification":
        head = f"### Probability {whole['probability']:.3f} (label {int(whole['predicted_label'])})"
    else:
        label = "" if whole.get("class7") is None or str(whole.get("class7")) in ("", "None", "nan") else \
            f", 7-class label {int(whole['class7']):+d}"
        head = f"### Score {whole['score']:+.3f}: {whole['polarity']}{label}"
    lines = [head, "", f"- modalities used: {whole['modalities']}"]
    if "transcript_source" in rows:
        lines.append(f"- transcript from: {whole['transcript_source']}")
    n = int((rows["segment"] != "all").sum()) if "segment" in rows else 0
    if n:
        lines.append(f"- {n} utterances; the whole-clip score is their duration-weighted mean")
    warning = str(whole.get("warning") or "")
    lines.append(f"- warnings: {warning if warning and warning != 'nan' else 'none'}")
    c = model.config
    lines.append(f"- model: {c['dataset']}/{c['variant']} (seed {c['seed']}), label range {c.get('label_range')}")
    return "\n".join(lines)


def _table(rows):
    utt = rows[rows["segment"] != "all"] if "segment" in rows and (rows["segment"] != "all").any() else rows
    cols = [c for c in TABLE_COLUMNS if c in utt]
    out = utt[cols].copy()
    if "score" in out:
        out["score"] = out["score"].round(3)
    return out


def _records(rows) -> list[dict]:
    import json

    return json.loads(rows.to_json(orient="records", double_precision=15))


def score_request(model, *, media=None, text=None, transcript=None, max_seconds=DEFAULT_MAX_SECONDS, workdir=None):
    """One request: (message, summary, table, plot path, rows as records). Every GrcfError becomes the
    message; the page stays usable."""
    text = (text or "").strip()
    transcript = (transcript or "").strip()
    try:
        if media:
            media = Path(media)
            if media.suffix.lower() not in _media_ext():
                raise GrcfError(f"{media.name}: not a video or audio file; the demo takes"
                                f" {' '.join(sorted(e[1:] for e in _media_ext()))} (or type text)")
            seconds = media_seconds(media)
            if seconds is not None and max_seconds and seconds > max_seconds:
                raise GrcfError(f"{media.name}: {seconds:.0f} s long; this demo scores clips up to {max_seconds:g} s"
                                " (`grcf demo --max-seconds`, or `grcf predict` for long files)")
            tfile = None
            if transcript:
                tfile = Path(tempfile.mkdtemp(dir=workdir, prefix="transcript-")) / "transcript.txt"
                tfile.write_text(transcript + "\n")
            rows = model.predict([media], transcript=tfile, progress=True)
            plot = model.plot(rows, Path(tempfile.mkdtemp(dir=workdir, prefix="plot-")) / f"{media.stem}.png")
            return "", describe(model, rows), _table(rows), str(plot), _records(rows)
        if text:
            rows = model.predict_text([text])
            return "", describe(model, rows), _table(rows), None, _records(rows)
        raise GrcfError("nothing to score: upload or record a clip, or type some text")
    except GrcfError as e:
        log.warning("demo request refused: %s", e)
        return f"**Could not score this input.** {_short(e, media)}", "", None, None, []


def _short(error, media) -> str:
    # Gradio's upload folder is a long temporary path: name the file as the user knows it
    msg = str(error)
    if media:
        msg = msg.replace(str(Path(media).parent) + os.sep, "")
    return msg


def _media_ext():
    from grcf.use.predict import MEDIA_EXT

    return MEDIA_EXT


def build_app(model, *, max_seconds: float = DEFAULT_MAX_SECONDS, concurrency: int = 1):
    """The Gradio Blocks app (queued). `model` is a grcf.use.api.Model."""
    _quiet_gradio()
    import gradio as gr

    workdir = Path(tempfile.mkdtemp(prefix="grcf-demo-"))
    c = model.config

    def score(upload, audio, video, text, transcript, progress=gr.Progress(track_tqdm=True)):
        progress(0, desc="scoring")
        media = upload or video or audio
        return score_request(model, media=media, text=text, transcript=transcript, max_seconds=max_seconds,
                             workdir=workdir)

    with gr.Blocks(title="grcf demo", analytics_enabled=False) as app:
        gr.Markdown(f"# grcf: sentiment of a clip or a text\nModel: `{c['dataset']}/{c['variant']}`"
                    f" ({'+'.join(model.modalities)}; {model.task}). Clips up to {max_seconds:g} s.")
        with gr.Row():
            with gr.Column():
                with gr.Tab("Upload"):
                    upload = gr.File(label="Video or audio file (mp4 mkv webm avi mov wav mp3)", type="filepath",
                                     elem_id="grcf-upload")
                with gr.Tab("Record audio"):
                    audio = gr.Audio(sources=["microphone"], type="filepath", label="Audio recording")
                with gr.Tab("Record video"):
                    video = gr.Video(sources=["webcam"], label="Video recording", include_audio=True)
                with gr.Tab("Text"):
                    text = gr.Textbox(label="Text", lines=3, placeholder="what a great movie", elem_id="grcf-text")
                transcript = gr.Textbox(label="Transcript of the clip (optional; else speech recognition)", lines=2)
                button = gr.Button("Score", variant="primary", elem_id="grcf-score-button")
            with gr.Column():
                message = gr.Markdown(elem_id="grcf-message")
                summary = gr.Markdown(elem_id="grcf-summary")
                plot = gr.Image(label="Sentiment over time", type="filepath", elem_id="grcf-plot")
        table = gr.Dataframe(label="Transcript per utterance", elem_id="grcf-table", interactive=False, wrap=True)
        details = gr.JSON(label="All columns (as `grcf predict` writes them)", elem_id="grcf-details")
        button.click(score, inputs=[upload, audio, video, text, transcript],
                     outputs=[message, summary, table, plot, details], api_name="score",
                     concurrency_limit=concurrency)
    app.queue(default_concurrency_limit=concurrency, max_size=64)
    return app


def _theme():
    import gradio as gr

    # system fonts: the default theme fetches web fonts, which an offline page cannot
    fonts = ["ui-sans-serif", "system-ui", "sans-serif"]
    return gr.themes.Default(font=fonts, font_mono=["ui-monospace", "monospace"])


def launch_app(app, *, port: int = DEFAULT_PORT, host: str = "127.0.0.1", block: bool = False):
    """Serve a built app on host:port; (app, local URL). `block`: serve until interrupted."""
    _, url, _ = app.launch(server_name=host, server_port=port, prevent_thread_lock=not block, quiet=not block,
                           theme=_theme(), share=False, show_error=True, ssr_mode=False, mcp_server=False,
                           footer_links=[])
    return app, url


def launch(bundle=None, *, port: int = DEFAULT_PORT, host: str = "127.0.0.1", max_seconds: float = DEFAULT_MAX_SECONDS,
           concurrency: int = 1, block: bool = True):
    """Load the model (the shipped one by default), build the app and serve it; (app, local URL)."""
    from grcf.use.api import load_model

    model = load_model(bundle)
    return launch_app(build_app(model, max_seconds=max_seconds, concurrency=concurrency), port=port, host=host,
                      block=block)
