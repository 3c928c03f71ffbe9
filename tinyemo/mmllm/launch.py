"""Train a stage outside the notebooks, on several processes:

    accelerate launch --num_processes 2 -m tinyemo.mmllm.launch pretrain --out DIR

reads params.yaml like the pipeline does and runs the same recipe as the stage's notebook
(`tinyemo.mmllm.recipes`); each process takes its share of every batch. For paper-scale
runs on several GPUs; on CPU, processes talk through gloo.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from tinyemo import config
from tinyemo.mmllm import artifact, recipes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tinyemo.mmllm.launch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=("pretrain", "finetune"))
    parser.add_argument("--params", type=Path, default=config.PARAMS_FILE)
    parser.add_argument("--out", type=Path, help="model folder (default models/mmllm/STAGE)")
    parser.add_argument("--pretrained", type=Path, default=artifact.MODEL_DIR / "pretrain",
                        help="the pre-trained MM-LLM that fine-tuning starts from")
    parser.add_argument("--max-steps", type=int, help="stop after this many optimizer steps")
    args = parser.parse_args(argv)

    from accelerate import Accelerator

    sections = config.load_params(args.params)
    base, params = sections["base"], sections[args.stage]
    out = args.out or artifact.MODEL_DIR / args.stage
    accelerator = Accelerator(cpu=base.profile != "paper")
    if args.stage == "pretrain":
        run = recipes.pretrain_run(base, params, out, args.max_steps, accelerator)
    else:
        run = recipes.finetune_run(base, params, args.pretrained, out, args.max_steps, accelerator)
    if accelerator.is_main_process:
        print(json.dumps({"stage": args.stage, "processes": accelerator.num_processes,
                          "steps": run.result.steps, "samples": run.result.samples,
                          "final_loss": run.result.log[-1]["loss"] if run.result.log else None}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
