"""A dataset's source files as one short manifest (path, size, SHA-256 per line), the one input
the validate and features rules declare instead of one path per clip.

Snakemake then prints one input when such a job fails, not ~360 clip paths, and still reruns
exactly when a file the build reads changes: the manifest is rewritten only when a file's
content (its hash) changes, so a touched or copied-over clip with the same bytes reruns nothing.
Hashes are cached by (size, mtime) beside the manifest: a file is hashed again only after it
changed on disk.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from grcf.atomic import write_text
from grcf.provenance import file_sha256


def refresh(manifest, files) -> Path:
    """Write `manifest` for `files` if its content would change; return its path.

    A missing or unreadable file gets a `missing` line (validate reports it, with the reason)."""
    manifest = Path(manifest)
    cache_path = manifest.with_name(manifest.name + ".stat.json")
    try:
        cache = json.loads(cache_path.read_text())
    except (OSError, ValueError):
        cache = {}
    lines, new_cache = [], {}
    for f in map(str, files):
        try:
            st = os.stat(f)
            key = [st.st_size, st.st_mtime_ns]
            old = cache.get(f)
            digest = old[2] if old and old[:2] == key else file_sha256(f)
            new_cache[f] = [*key, digest]
            lines.append(f"{digest}  {st.st_size}  {f}")
        except OSError:
            lines.append(f"missing  -  {f}")
    text = "".join(line + "\n" for line in lines)
    try:
        unchanged = manifest.read_text() == text
    except OSError:
        unchanged = False
    if not unchanged:
        write_text(manifest, text)
    if new_cache != cache:
        write_text(cache_path, json.dumps(new_cache))
    return manifest
