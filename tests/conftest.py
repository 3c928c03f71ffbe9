"""Shared fixtures. `smoke` runs the real pipeline stages, smoke profile, in a scratch copy."""
from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_SAMPLE = REPO.parent / "shared" / "data" / "tinyemo-sample"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the stage runner: idle OpenMP threads must not spin
if "TINYEMO_DATA_DIR" not in os.environ and SHARED_SAMPLE.exists():
    os.environ["TINYEMO_DATA_DIR"] = str(SHARED_SAMPLE)


@contextmanager
def working_directory(path: Path):
    before = Path.cwd()
    os.chdir(path)
    try:
        yield path
    finally:
        os.chdir(before)


class SmokePipeline:
    """A scratch copy of the repository's pipeline with the smoke profile rendered."""

    def __init__(self, root: Path):
        self.root = root
        for name in ("notebooks", "profiles"):
            shutil.copytree(REPO / name, root / name)
        shutil.copy(REPO / "dvc.yaml", root / "dvc.yaml")
        self.done: set[str] = set()
        from tinyemo import config

        with working_directory(root):
            config.write_params("smoke")

    def run_through(self, stage: str) -> Path:
        """Run every stage of tinyemo.stages.STAGES up to and including `stage` (once each)."""
        from tinyemo import runner
        from tinyemo.stages import COMMANDS_BEFORE, STAGES

        with working_directory(self.root):
            for name in STAGES:
                if name == COMMANDS_BEFORE and "encode" not in self.done:
                    self.run_commands()
                if name not in self.done:
                    runner.run(name)
                    self.done.add(name)
                if name == stage:
                    break
        return self.root

    def run_commands(self) -> None:
        """The pipeline's command stages (fetch-emotion6, encode per dataset), as dvc.yaml runs them."""
        import yaml

        from tinyemo.cli import main
        from tinyemo.stages import command_lines

        for argv in command_lines(yaml.safe_load(Path("params.yaml").read_text())):
            assert main(argv) == 0, f"tinyemo {' '.join(argv)} failed"
        self.done.add("encode")

    def metrics(self, stage: str) -> dict:
        return json.loads((self.root / "results" / stage / "metrics.json").read_text())


@pytest.fixture(scope="session")
def smoke(tmp_path_factory) -> SmokePipeline:
    return SmokePipeline(tmp_path_factory.mktemp("smoke-pipeline"))


@pytest.fixture
def in_tmp(tmp_path):
    with working_directory(tmp_path):
        yield tmp_path
