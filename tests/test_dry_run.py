"""`tinyemo dry-run paper`: the paper's LLMs, written as reduced model folders and loaded by
the project's loader, pass every step; the run catches a batch left on the CPU, a head
missing from a tied-embedding LLM and an LLM that sees the future."""
import json

import pytest
import torch

from tinyemo.cli import dry_run, main
from tinyemo.mmllm import train as train_module
from tinyemo.mmllm.model import TinyLlava
from tinyemo.models import llm_checks, openelm
from tinyemo.models.openelm import OpenELMForCausalLM

OPENELM = "openelm-270m-instruct"
STEPS = ("build", "checks", "pretrain", "finetune", "explain", "devices")


def test_the_dry_run_passes_on_openelm_loaded_from_its_folder(capsys):
    assert main(["dry-run", "paper", "--llm", OPENELM, "--no-processes", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [row["step"] for row in report] == ["encode"] + [f"{OPENELM}:{s}" for s in STEPS]
    assert all(row["status"] == "passed" and row["seconds"] >= 0 and row["peak_memory_mb"] > 0
               for row in report)
    assert report[0]["patches"] == [4, 256, 1024]  # ViT-L/14: 16 x 16 patches of width 1024
    checks = report[2]
    assert set(checks) >= {"causal", "embeds_like_ids", "cache_like_no_cache", "left_padding",
                           "round_trip"}
    assert checks["causal"]["before"] == 0.0 and checks["round_trip"]["tensors"] == 18
    assert report[3]["loss"] > 0


def core_steps(tmp_path, *wanted):
    return [(name, thunk) for name, thunk in dry_run.steps(1, 4, (OPENELM,), False, tmp_path)
            if name == "encode" or name.split(":")[-1] in wanted]


def test_the_llm_is_the_projects_own_class_from_a_folder(tmp_path):
    model, tokenizer = dry_run.mmllm(OPENELM, 1, tmp_path)
    assert type(model.llm) is OpenELMForCausalLM
    assert (tmp_path / f"{OPENELM}-1-layers" / "model.safetensors").exists()
    assert len(tokenizer) == 32000 and tokenizer.bos_token_id == 1


def test_the_dry_run_catches_a_head_missing_from_a_tied_embedding_llm(monkeypatch, tmp_path):
    def old_head(self, hidden):  # the output embeddings, which OpenELM does not expose
        return self.causal_lm().get_output_embeddings()(hidden)

    monkeypatch.setattr(TinyLlava, "lm_head", old_head)
    report = {row["step"]: row for row in dry_run.run_steps(core_steps(tmp_path, "build", "pretrain"))}
    assert report[f"{OPENELM}:pretrain"]["status"] == "failed"
    assert "NoneType" in report[f"{OPENELM}:pretrain"]["error"]


def test_the_dry_run_catches_an_llm_that_sees_the_future(monkeypatch, tmp_path):
    monkeypatch.setattr(openelm, "attention_mask_4d", lambda mask, b, q, past, device:
                        torch.ones(b, 1, q, past + q, dtype=torch.bool))
    report = {row["step"]: row for row in dry_run.run_steps(core_steps(tmp_path, "build", "checks"))}
    assert report[f"{OPENELM}:checks"]["status"] == "failed"
    assert llm_checks.LLMCheckFailed.__name__ in report[f"{OPENELM}:checks"]["error"]


def test_the_dry_run_catches_a_batch_left_on_the_cpu(monkeypatch, tmp_path):
    monkeypatch.setattr(train_module, "to_device", lambda batch, device: batch)
    report = {row["step"]: row for row in dry_run.run_steps(core_steps(tmp_path, "devices"))}
    assert report[f"{OPENELM}:devices"]["status"] == "failed"
    assert "meta" in report[f"{OPENELM}:devices"]["error"]


def test_bad_arguments_are_refused(capsys):
    assert main(["dry-run", "paper", "--records", "6"]) == 2
    assert "multiple of 4" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["dry-run", "default"])
