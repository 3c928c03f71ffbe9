"""The folder `models/base/<name>/` that stage `assets` fills for each base model."""
from __future__ import annotations

import json
from pathlib import Path

from tinyemo.errors import TinyEmoError

MANIFEST = "manifest.json"  # what was prepared, from where, and how long it took


class ModelNotPreparedError(FileNotFoundError, TinyEmoError):
    """A converted base model is missing from models/base; the message says how to make it."""


def prepared_file(name: str, base_dir: Path, filename: str) -> Path:
    """`base_dir/name/filename`, or an error telling to run the assets stage."""
    path = Path(base_dir) / name / filename
    if not path.exists():
        raise ModelNotPreparedError(
            f"the base model {name!r} has not been prepared: {path} is missing. Run "
            "`dvc repro assets` (or `tinyemo stage assets`) to convert it."
        )
    return path


def write_manifest(out_dir: Path, manifest: dict) -> dict:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    return manifest
