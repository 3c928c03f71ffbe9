"""`tinyemo dry-run paper`: the shrunk paper architectures pass every step, and the run
catches a batch left on the CPU and a head missing from a tied-embedding LLM."""
import json

import pytest

from tinyemo.cli import dry_run, main
from tinyemo.mmllm import train as train_module
from tinyemo.mmllm.model import TinyLlava

OPENELM = "openelm-270m-instruct"


def test_the_dry_run_passes_on_the_openelm_like_model(capsys):
    assert main(["dry-run", "paper", "--llm", OPENELM, "--no-processes", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [row["step"] for row in report] == ["encode"] + [
        f"{OPENELM}:{step}" for step in ("build", "pretrain", "finetune", "explain", "devices")]
    assert all(row["status"] == "passed" and row["seconds"] >= 0 and row["peak_memory_mb"] > 0
               for row in report)
    assert report[0]["patches"] == [4, 256, 1024]  # ViT-L/14: 16 x 16 patches of width 1024
    assert report[2]["loss"] > 0


def core_steps(*wanted):
    return [(name, thunk) for name, thunk in dry_run.steps(1, 4, (OPENELM,), processes=False)
            if name == "encode" or name.split(":")[-1] in wanted]


def test_the_dry_run_catches_a_head_missing_from_a_tied_embedding_llm(monkeypatch):
    def old_head(self, hidden):  # the output embeddings, which OpenELM does not expose
        return self.causal_lm().get_output_embeddings()(hidden)

    monkeypatch.setattr(TinyLlava, "lm_head", old_head)
    report = {row["step"]: row for row in dry_run.run_steps(core_steps("build", "pretrain"))}
    assert report[f"{OPENELM}:pretrain"]["status"] == "failed"
    assert "NoneType" in report[f"{OPENELM}:pretrain"]["error"]


def test_the_dry_run_catches_a_batch_left_on_the_cpu(monkeypatch):
    monkeypatch.setattr(train_module, "to_device", lambda batch, device: batch)
    report = {row["step"]: row for row in dry_run.run_steps(core_steps("devices"))}
    assert report[f"{OPENELM}:devices"]["status"] == "failed"
    assert "meta" in report[f"{OPENELM}:devices"]["error"]


def test_bad_arguments_are_refused(capsys):
    assert main(["dry-run", "paper", "--records", "6"]) == 2
    assert "multiple of 4" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["dry-run", "default"])
