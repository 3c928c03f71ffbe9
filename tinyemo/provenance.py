"""What a reviewer needs to trust a number: parameters, code revision, packages, hardware, time."""
from __future__ import annotations

import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

from tinyemo import paths

PIPELINE_OUTPUTS = tuple(str(p) for p in (paths.DATA, paths.MODELS, paths.RESULTS, paths.REPORTS))
TRACKED_PACKAGES = (
    "torch", "torchvision", "timm", "transformers", "peft", "accelerate", "open_clip_torch",
    "pytorch-metric-learning", "scikit-learn", "numpy", "papermill", "dvc",
)


def git_revision() -> dict:
    """{"commit": sha or "unknown", "dirty": True/False, or None when git cannot tell}.

    Outside a git work tree, or without git, nothing is known about uncommitted changes:
    `dirty` is then None (JSON null), never a reassuring False.
    """
    def run(*args: str) -> str | None:
        try:
            return subprocess.run(
                ["git", *args], capture_output=True, text=True, check=True
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return None

    commit = run("rev-parse", "HEAD")
    # What a run writes (dvc.lock, rewritten after every stage, and the pipeline's outputs,
    # some of them committed) does not make a tree dirty: only the code and inputs do.
    outputs = [f":(exclude){path}" for path in ("dvc.lock", *PIPELINE_OUTPUTS)]
    changed = run("status", "--porcelain", "--", ".", *outputs) if commit else None
    return {"commit": commit or "unknown", "dirty": None if changed is None else bool(changed)}


def package_versions() -> dict:
    versions = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def hardware() -> dict:
    info = {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "platform": platform.platform()}
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        pass
    return info


def record(stage: str, params: dict, wall_time_s: float) -> dict:
    return {
        "stage": stage,
        "parameters": params,
        "git": git_revision(),
        "python": platform.python_version(),
        "packages": package_versions(),
        "hardware": hardware(),
        "wall_time_s": round(wall_time_s, 2),
    }


def write(path: Path, provenance: dict) -> None:
    path.write_text(json.dumps(provenance, indent=2, sort_keys=True) + "\n")
