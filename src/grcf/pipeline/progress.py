"""`grcf ... 2>&1 | python -m grcf.pipeline.progress LOG --label L`: a long job's progress on the
console while its whole output goes to its log file.

The rules send a job's output to logs/...; Snakemake shows the log only when the job fails
(`--show-failed-logs`). This filter writes every byte to LOG and, of the tqdm bars in the output
(`clips:  45%|####5     | 162/360 [01:10<01:30, 2.3clip/s]`), forwards one short line to stderr
when a bar starts, then at most every `--every` seconds, and when it completes:

    features mosi_av: clips 162/360 (45%), 01:10 elapsed, ~01:30 left

It never fails the job itself: with bash's pipefail (Snakemake's shell) the job's exit status is
the grcf command's.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time

BAR = re.compile(r"(?:(?P<desc>[^\r\n:|]*?):\s*)?(?P<pct>\d+)%\|[^|]*\|\s*(?P<n>\d+)/(?P<total>\d+)"
                 r"(?:\s*\[(?P<elapsed>[\d:]+)(?:<(?P<left>[\d:?]+))?)?")


class Progress:
    """Turns output chunks into progress lines (`emit`), throttled per bar."""

    def __init__(self, label: str, emit, every: float = 20.0, clock=time.monotonic):
        self.label, self.emit, self.every, self.clock = label, emit, every, clock
        self._partial = ""
        self._last: dict = {}  # bar description -> (time shown, n shown)

    def feed(self, text: str) -> None:
        parts = re.split(r"[\r\n]", self._partial + text)
        self._partial = parts.pop()
        for part in parts:
            self._segment(part)

    def close(self) -> None:
        if self._partial:
            self._segment(self._partial)
            self._partial = ""

    def _segment(self, segment: str) -> None:
        m = BAR.search(segment)
        if not m:
            return
        desc = (m["desc"] or "").strip() or "progress"
        n, total, now = int(m["n"]), int(m["total"]), self.clock()
        shown = self._last.get(desc)
        done = n >= total
        if shown is not None and (shown[1] == n or (not done and now - shown[0] < self.every)):
            return
        self._last[desc] = (now, n)
        timing = f", {m['elapsed']} elapsed" if m["elapsed"] else ""
        if m["left"] and not done and "?" not in m["left"]:
            timing += f", ~{m['left']} left"
        self.emit(f"{self.label}: {desc} {n}/{total} ({m['pct']}%){timing}")


def follow(fd: int, log_path, label: str, every: float = 20.0, err=None) -> None:
    """Copy everything from `fd` to `log_path`; progress lines to `err` (stderr)."""
    err = err or sys.stderr

    def emit(line):
        try:
            print(line, file=err, flush=True)
        except OSError:
            pass

    progress = Progress(label, emit, every)
    os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
    with open(log_path, "wb") as log:
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            log.write(chunk)
            log.flush()
            progress.feed(chunk.decode("utf-8", errors="replace"))
    progress.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m grcf.pipeline.progress", description=__doc__.split("\n\n")[0])
    ap.add_argument("log", help="the job's log file (all of its output)")
    ap.add_argument("--label", default="job", help="what the console line starts with")
    ap.add_argument("--every", type=float, default=20.0, help="seconds between lines of one bar")
    args = ap.parse_args(argv)
    follow(sys.stdin.fileno(), args.log, args.label, args.every)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
