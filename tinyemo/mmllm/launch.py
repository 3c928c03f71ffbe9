"""Train a stage on several processes (GPUs, or CPU processes talking through gloo):

    accelerate launch --num_processes 2 -m tinyemo.mmllm.launch pretrain --out DIR
    accelerate launch --config_file configs/accelerate/multi_gpu_ddp.yaml \\
        -m tinyemo.mmllm.launch finetune

reads params.yaml like the pipeline does and runs the same recipe as the stage's notebook
(`tinyemo.mmllm.stage_runs`); each process takes its share of every batch. A stage whose
section sets `num_processes` > 1 starts this itself under `dvc repro`
(`tinyemo.mmllm.processes.launched_run`), with the section's `accelerate_config` when one is named.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from tinyemo import config
from tinyemo.mmllm import artifact, stage_runs
from tinyemo.mmllm.train import make_accelerator


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
    accelerator = make_accelerator(stage_runs.train_config(params, base.seed))
    if args.stage == "pretrain":
        run = stage_runs.pretrain_run(base, params, out, args.max_steps, accelerator)
    else:
        run = stage_runs.finetune_run(base, params, args.pretrained, out, args.max_steps, accelerator)
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
