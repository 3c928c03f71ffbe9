"""Train a stage on several processes (GPUs, or CPU processes talking through gloo):

    accelerate launch --num_processes 2 -m tinyemo.mmllm.launch pretrain --out DIR
    accelerate launch --config_file configs/accelerate/multi_gpu_ddp.yaml \\
        -m tinyemo.mmllm.launch finetune

reads params.yaml like the pipeline does and runs the same recipe as the stage's notebook
(`tinyemo.mmllm.recipes`); each process takes its share of every batch. A stage whose
section sets `num_processes` > 1 starts this itself under `dvc repro` (`launched_run`), with
the section's `accelerate_config` when one is named.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from tinyemo import config
from tinyemo.mmllm import artifact, recipes
from tinyemo.mmllm.train import TrainResult, make_accelerator


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
                 max_steps: int | None = None, params_file: Path = config.PARAMS_FILE,
                 trust_remote_code: bool = False):
    """Train `stage` under `accelerate launch` and return its `recipes.Run` (the trained
    model read back from `out_dir`, trainable as it trained)."""
    out_dir = Path(out_dir)
    result_file = recipes.checkpoint_dir(out_dir).parent / f"{stage}-result.json"
    result_file.parent.mkdir(parents=True, exist_ok=True)
    command = launch_command(stage, params, out_dir, pretrain_dir, max_steps, result_file,
                             params_file)
    done = subprocess.run(command, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    if done.returncode != 0:
        raise RuntimeError(f"`{' '.join(command)}` failed with exit status {done.returncode}")
    summary = json.loads(result_file.read_text())
    result_file.unlink()
    model, tokenizer, saved = artifact.load_mmllm(out_dir, trust_remote_code=trust_remote_code,
                                                  merge=False, stage=stage)
    artifact.set_trainable(model, saved["trained"])
    counts = [(p.numel(), p.requires_grad) for p in model.parameters()]
    return recipes.Run(model, tokenizer, TrainResult(**summary["result"]), summary["n_records"],
                       sum(n for n, g in counts if g), sum(n for n, _ in counts))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tinyemo.mmllm.launch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=("pretrain", "finetune"))
    parser.add_argument("--params", type=Path, default=config.PARAMS_FILE)
    parser.add_argument("--out", type=Path, help="model folder (default models/mmllm/STAGE)")
    parser.add_argument("--pretrained", type=Path, default=artifact.MODEL_DIR / "pretrain",
                        help="the pre-trained MM-LLM that fine-tuning starts from")
    parser.add_argument("--max-steps", type=int, help="stop after this many optimizer steps")
    parser.add_argument("--result", type=Path, help="write the run's result (JSON) here")
    args = parser.parse_args(argv)

    sections = config.load_params(args.params)
    base, params = sections["base"], sections[args.stage]
    out = args.out or artifact.MODEL_DIR / args.stage
    accelerator = make_accelerator(recipes.train_config(params, base.seed))
    if args.stage == "pretrain":
        run = recipes.pretrain_run(base, params, out, args.max_steps, accelerator)
    else:
        run = recipes.finetune_run(base, params, args.pretrained, out, args.max_steps, accelerator)
    if accelerator.is_main_process:
        result = run.result
        summary = {"stage": args.stage, "processes": accelerator.num_processes,
                   "steps": result.steps, "samples": result.samples,
                   "final_loss": result.log[-1]["loss"] if result.log else None}
        if args.result:
            args.result.write_text(json.dumps({"n_records": run.n_records, "result": {
                "steps": result.steps, "samples": result.samples, "seconds": result.seconds,
                "resumed_from": result.resumed_from, "log": result.log}}))
        print(json.dumps(summary))
    accelerator.wait_for_everyone()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
