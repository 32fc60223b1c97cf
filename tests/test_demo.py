"""`grcf demo`: the Gradio app launched in this process, called with gradio_client and driven by a
real browser (Playwright's Python package with Debian's Chromium; skips without them).

The bundle is the shipped model when it is there, else a tiny text model (support.bundles); the
clip is a real shared MOSI clip (its text from speech recognition), else a synthetic one with a
typed transcript. `GRCF_DEMO_SCREENSHOT=PATH` also saves the browser test's screenshot there
(docs/demo.png was made so).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
from pathlib import Path

import pandas as pd
import pytest

from grcf.use.demo import build_app, launch_app
from support.bundles import sample_clip

gr = pytest.importorskip("gradio", reason="the demo extra is not installed: pip install 'grcf[demo]'")
gradio_client = pytest.importorskip("gradio_client")

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(model, **kw):
    return launch_app(build_app(model, **kw), port=_free_port())


@pytest.fixture(scope="module")
def demo(text_model):
    app, url = _launch(text_model)
    yield url
    app.close()


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return sample_clip(tmp_path_factory.mktemp("clip"))


@pytest.fixture(scope="module")
def cli_score(text_bundle_dir, clip, tmp_path_factory):
    """`grcf predict` on the clip: the whole-clip score the page must show."""
    from grcf.cli import main

    path, text = clip
    tmp = tmp_path_factory.mktemp("cli")
    extra = []
    if text:
        (tmp / "t.txt").write_text(text + "\n")
        extra = ["--transcript", str(tmp / "t.txt")]
    assert main(["predict", str(text_bundle_dir), str(path), "-o", str(tmp / "pred.csv"), "-q", *extra]) == 0
    rows = pd.read_csv(tmp / "pred.csv", keep_default_na=False)
    return float(rows.loc[rows["segment"] == "all", "score"].iloc[0])


def _score(url, *, media=None, text="", transcript=""):
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False)
    return client.predict(handle_file(str(media)) if media else None, None, None, text, transcript or "",
                          api_name="/score")


def _whole(records) -> dict:
    return next(r for r in records if r.get("segment") in ("all", None))


# ------------------------------------------------------------------ gradio_client


def test_the_page_scores_a_clip_as_grcf_predict(demo, clip, cli_score):
    path, text = clip
    message, summary, table, plot, records = _score(demo, media=path, transcript=text)
    assert message == ""
    assert _whole(records)["score"] == pytest.approx(cli_score, abs=1e-6)
    assert f"Score {cli_score:+.3f}" in summary
    assert "modalities used: text" in summary and "7-class label" in summary
    assert table["headers"][:4] == ["segment", "start", "end", "score"] and table["data"]
    assert Path(plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_bad_upload_is_a_message_and_the_app_keeps_serving(demo, clip, cli_score, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a video")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00garbage" * 64)
    for bad, why in ((notes, "not a video or audio file"), (broken, "cannot decode media")):
        message, summary, _, plot, records = _score(demo, media=bad)
        assert "Could not score this input" in message and why in message and bad.name in message
        assert str(tmp_path) not in message  # the user's file name, not the server's upload path
        assert summary == "" and plot is None and records == []
    message, summary, *_ = _score(demo, text="")
    assert "nothing to score" in message
    path, text = clip
    *_, records = _score(demo, media=path, transcript=text)
    assert _whole(records)["score"] == pytest.approx(cli_score, abs=1e-6)


def test_a_clip_over_the_length_limit_is_refused(text_model, clip):
    app, url = _launch(text_model, max_seconds=1.0)
    try:
        message, summary, *_ = _score(url, media=clip[0], transcript=clip[1])
    finally:
        app.close()
    assert re.search(r"\d+ s long; this demo scores clips up to 1 s", message), message
    assert summary == ""


def test_three_requests_at_once_are_all_answered(demo, text_model, clip, cli_score):
    from gradio_client import Client, handle_file

    client = Client(demo, verbose=False)
    path, text = clip
    jobs = [client.submit(handle_file(str(path)), None, None, "", text or "", api_name="/score"),
            client.submit(None, None, None, "I loved it", "", api_name="/score"),
            client.submit(None, None, None, "it was awful", "", api_name="/score")]
    results = [j.result(timeout=300) for j in jobs]
    assert _whole(results[0][4])["score"] == pytest.approx(cli_score, abs=1e-6)
    want = text_model.predict_text(["I loved it", "it was awful"])["score"].tolist()
    assert [r[4][0]["score"] for r in results[1:]] == pytest.approx(want, abs=1e-6)


def test_typed_text_is_scored_as_predict_text(demo, text_model):
    message, summary, table, plot, records = _score(demo, text="what a great movie")
    want = text_model.predict_text(["what a great movie"])["score"].iloc[0]
    assert message == "" and plot is None
    assert records[0]["score"] == pytest.approx(want, abs=1e-6)
    assert f"Score {want:+.3f}" in summary


# ------------------------------------------------------------------ a real browser


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the demo extra)")
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def _upload_and_score(page, path):
    page.locator("#grcf-upload input[type=file]").set_input_files(str(path))
    # the click must wait for the upload to finish (the file's download link from the server
    # appears), or the request goes out without the file
    page.locator(f'#grcf-upload a[download="{Path(path).name}"]').wait_for(timeout=60_000)
    page.locator("#grcf-score-button").click()


def test_in_a_browser_an_upload_shows_the_score(browser, demo, clip, cli_score, tmp_path):
    path, text = clip
    page = browser.new_page(viewport={"width": 1280, "height": 1100})
    try:
        page.goto(demo, wait_until="domcontentloaded")
        page.locator("#grcf-score-button").wait_for(timeout=60_000)
        if text:
            page.get_by_label("Transcript of the clip").fill(text)
        _upload_and_score(page, path)
        summary = page.locator("#grcf-summary")
        summary.get_by_text(re.compile(r"Score [+-]\d\.\d{3}")).wait_for(timeout=180_000)
        shown = float(re.search(r"Score ([+-]\d\.\d{3})", summary.inner_text()).group(1))
        assert shown == pytest.approx(cli_score, abs=5e-4)
        page.locator("#grcf-plot img").wait_for(timeout=30_000)
        assert page.locator("#grcf-table").get_by_text(re.compile(r"\w+")).first.is_visible()
        shot = tmp_path / "demo.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        if os.environ.get("GRCF_DEMO_SCREENSHOT"):
            shutil.copyfile(shot, os.environ["GRCF_DEMO_SCREENSHOT"])
    finally:
        page.close()


def test_in_a_browser_a_bad_upload_shows_the_message_then_a_clip_works(browser, demo, clip, cli_score, tmp_path):
    bad = tmp_path / "slides.pdf"
    bad.write_bytes(b"%PDF-1.4 not a clip")
    path, text = clip
    page = browser.new_page()
    try:
        page.goto(demo, wait_until="domcontentloaded")
        page.locator("#grcf-score-button").wait_for(timeout=60_000)
        _upload_and_score(page, bad)
        page.locator("#grcf-message").get_by_text("not a video or audio file").wait_for(timeout=60_000)
        assert "slides.pdf" in page.locator("#grcf-message").inner_text()
        page.locator("#grcf-upload button[aria-label='Clear']").first.click()
        if text:
            page.get_by_label("Transcript of the clip").fill(text)
        _upload_and_score(page, path)
        page.locator("#grcf-summary").get_by_text(f"Score {cli_score:+.3f}").wait_for(timeout=180_000)
        assert page.locator("#grcf-message").inner_text().strip() == ""
    finally:
        page.close()
