"""A stage on several processes: the launched command's result is read back as a Run."""
import json

import pytest
import torch

from tinyemo.mmllm import artifact, processes
from tinyemo.mmllm.checkpoint import checkpoint_dir
from tinyemo.mmllm.params import PretrainParams


class TwoPart(torch.nn.Module):
    """Stands in for a TinyLlava: a connector (4 x 3 + 3) and an LLM layer (3 x 2 + 2)."""

    def __init__(self):
        super().__init__()
        self.connector = torch.nn.Linear(4, 3)
        self.llm = torch.nn.Linear(3, 2)


def fake_launch(monkeypatch, returncode=0):
    commands = []

    def run(command, env):
        commands.append(command)
        result = command[command.index("--result") + 1]
        with open(result, "w") as handle:
            json.dump({"n_records": 7, "result": {"steps": 3, "samples": 12, "seconds": 1.5,
                                                   "resumed_from": 0, "log": [{"step": 3, "loss": 0.5}]}}, handle)
        return type("Done", (), {"returncode": returncode})()

    monkeypatch.setattr(processes.subprocess, "run", run)
    monkeypatch.setattr(artifact, "load_mmllm", lambda out, **kw: (TwoPart(), "tokenizer", {"trained": "connector"}))
    monkeypatch.setattr(artifact, "set_trainable",
                        lambda model, part: [p.requires_grad_(n.startswith(part)) for n, p in model.named_parameters()])
    return commands


def test_launched_run_reads_the_result_and_the_trained_model_back(monkeypatch, tmp_path):
    commands = fake_launch(monkeypatch)
    out = tmp_path / "models" / "pretrain"
    run = processes.launched_run("pretrain", PretrainParams(lr=1e-3, num_processes=2), out, max_steps=3)
    assert commands[0][-2:] == ["--result", str(checkpoint_dir(out).parent / "pretrain-result.json")]
    assert not (checkpoint_dir(out).parent / "pretrain-result.json").exists()
    assert (run.n_records, run.result.steps, run.result.samples, run.result.log) == (7, 3, 12, [{"step": 3, "loss": 0.5}])
    assert (run.trainable_parameters, run.total_parameters) == (4 * 3 + 3, 4 * 3 + 3 + 3 * 2 + 2)
    assert run.tokenizer == "tokenizer"


def test_a_failed_launch_is_an_error(monkeypatch, tmp_path):
    fake_launch(monkeypatch, returncode=1)
    with pytest.raises(RuntimeError, match="failed with exit status 1"):
        processes.launched_run("pretrain", PretrainParams(lr=1e-3, num_processes=2), tmp_path / "out")
