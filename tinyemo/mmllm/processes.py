"""A training stage on several processes: the `accelerate launch` command and its run.

A stage whose section sets `num_processes` > 1 does not train in the notebook's process:
`launched_run` starts `python -m tinyemo.mmllm.launch` under `accelerate launch` (with the
section's `accelerate_config` when one is named, DDP on CPU processes talking through gloo
otherwise) and reads the trained model back from its folder.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tinyemo import config
from tinyemo.mmllm import artifact
from tinyemo.mmllm.checkpoint import checkpoint_dir
from tinyemo.mmllm.train import Run, TrainingRun


def launch_command(stage: str, params, out_dir: Path, pretrain_dir: Path | None = None,
                   max_steps: int | None = None, result_file: Path | None = None,
                   params_file: Path = config.PARAMS_FILE) -> list[str]:
    """The `accelerate launch` command line that trains `stage` on `params.num_processes`."""
    accelerate = Path(sys.executable).with_name("accelerate")
    command = [str(accelerate if accelerate.exists() else "accelerate"), "launch"]
    if params.accelerate_config:
        command += ["--config_file", str(params.accelerate_config)]
    elif params.num_processes > 1:  # without CUDA, DDP on CPU processes (gloo)
        command += ["--multi_gpu", "--num_machines", "1", "--dynamo_backend", "no"]
    if params.accelerate_config and "deepspeed" in Path(params.accelerate_config).name:
        command += ["--gradient_accumulation_steps", str(params.gradient_accumulation_steps)]
    command += ["--num_processes", str(params.num_processes),
                "--mixed_precision", params.mixed_precision, "-m", "tinyemo.mmllm.launch", stage, "--params", str(params_file),
                "--out", str(out_dir)]
    if pretrain_dir is not None:
        command += ["--pretrained", str(pretrain_dir)]
    if max_steps is not None:
        command += ["--max-steps", str(max_steps)]
    if result_file is not None:
        command += ["--result", str(result_file)]
    return command


def launched_run(stage: str, params, out_dir: Path, pretrain_dir: Path | None = None,
                 max_steps: int | None = None, params_file: Path = config.PARAMS_FILE):
    """Train `stage` under `accelerate launch` and return its `Run` (the trained
    model read back from `out_dir`, trainable as it trained)."""
    out_dir = Path(out_dir)
    result_file = checkpoint_dir(out_dir).parent / f"{stage}-result.json"
    result_file.parent.mkdir(parents=True, exist_ok=True)
    command = launch_command(stage, params, out_dir, pretrain_dir, max_steps, result_file,
                             params_file)
    done = subprocess.run(command, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    if done.returncode != 0:
        raise RuntimeError(f"`{' '.join(command)}` failed with exit status {done.returncode}")
    summary = json.loads(result_file.read_text())
    result_file.unlink()
    model, tokenizer, saved = artifact.load_mmllm(out_dir, merge=False, stage=stage)
    artifact.set_trainable(model, saved["trained"])
    counts = [(p.numel(), p.requires_grad) for p in model.parameters()]
    return Run(model, tokenizer, TrainingRun(**summary["result"]), summary["n_records"],
                       sum(n for n, g in counts if g), sum(n for n, _ in counts))
