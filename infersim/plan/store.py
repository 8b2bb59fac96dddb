"""A resumable store of finished runs: one JSON file per run, named by the run's hash.

A sweep of hundreds of simulations may be interrupted (a laptop lid, a pre-empted node, a
Ctrl-C). Each finished run is written at once to ``DIR/runs/<hash>.json``, where the hash is
that of the fully resolved scenario and seed, so a rerun of the same sweep — or of a larger
sweep that contains it — skips every run already on disk. Because the name is the content's
identity, a changed scenario file or override gives a new hash and is never mistaken for an old
result. Files are written to a temporary name and renamed, so a crash mid-write leaves no half
file that would later read as a result.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any


class RunStore:
    """Per-run JSON records under ``root/runs``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.runs_dir = self.root / "runs"

    def path(self, run_hash: str) -> Path:
        return self.runs_dir / f"{run_hash}.json"

    def get(self, run_hash: str) -> dict[str, Any] | None:
        """The stored record, or None if absent or unreadable (then the run is simply redone)."""
        path = self.path(run_hash)
        try:
            record = json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
            return None
        if not isinstance(record, dict) or record.get("hash") != run_hash:
            return None
        return record

    def put(self, run_hash: str, record: Mapping[str, Any]) -> Path:
        """Write ``record`` atomically; it gains the ``hash`` key it is filed under."""
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        # Key order is kept: the summary's order becomes the table's column order.
        payload = json.dumps({**record, "hash": run_hash}, indent=1, allow_nan=True)
        fd, tmp = tempfile.mkstemp(dir=self.runs_dir, prefix=f".{run_hash}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(payload + "\n")
            os.replace(tmp, self.path(run_hash))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return self.path(run_hash)
