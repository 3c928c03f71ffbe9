"""Check the paper path on one GPU in minutes: a few steps of pre-training (connector) and
fine-tuning (LoRA) of the MM-LLM with the paper profile's smallest LLM (OpenELM-270M) and
vision tower (CLIP ViT-L/14), in bf16 with gradient checkpointing, then one generation.
Prints, per stage, samples/s, peak GPU memory and the loss.

    python benchmarks/gpu_check.py                     # needs CUDA, the hub, and
                                                       # `huggingface-cli login` (Llama-2 tokenizer)
    python benchmarks/gpu_check.py --llm tinyllama-1.1b-chat   # no gated tokenizer
    python benchmarks/gpu_check.py --reduced --allow-cpu       # offline: shrunk random
                                                       # OpenELM-like model (checks this script)

The images are random pixels and the records hand-made: the numbers measure speed and
memory, not quality (the loss only has to be finite and fall).
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import torch

PAPER_LLM = "openelm-270m-instruct"  # the paper profile's smallest LLM
TOWER = "clip-vit-l-14"


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--llm", default=PAPER_LLM, help=f"registry name (default {PAPER_LLM})")
    parser.add_argument("--steps", type=int, default=5, help="optimizer steps per stage (default 5)")
    parser.add_argument("--batch-size", type=int, default=16, help="global batch (default 16)")
    parser.add_argument("--accumulation", type=int, default=2,
                        help="gradient accumulation steps (default 2)")
    parser.add_argument("--precision", choices=("no", "fp16", "bf16"), default="bf16")
    parser.add_argument("--reduced", action="store_true",
                        help="a shrunk OpenELM-like model and ViT-L/14 with random weights, built "
                        "offline (checks the script, not the GPU)")
    parser.add_argument("--allow-cpu", action="store_true", help="run without CUDA (with --reduced)")
    return parser.parse_args(argv)


def build(args):
    """(MM-LLM, tokenizer, vision tower, image tokens)."""
    if args.reduced:
        from tinyemo.cli import dry_run

        model, tokenizer = dry_run.mmllm("openelm-270m-instruct", layers=1)
        return model, tokenizer, dry_run.build_vision_tower(layers=2), dry_run.IMAGE_TOKENS
    from tinyemo.mmllm import artifact
    from tinyemo.models import registry
    from tinyemo.models.vision import load_vision_tower

    spec = registry.llm_spec(args.llm)
    n_tokens = (registry.vision_tower_spec(TOWER).image_size // 14) ** 2
    model, tokenizer = artifact.build_mmllm(args.llm, TOWER, n_tokens,
                                            trust_remote_code=spec.needs_remote_code)
    return model, tokenizer, load_vision_tower(TOWER), n_tokens


def records(n: int) -> list[dict]:
    answer = "A grey sky over an empty street; the scene feels lonely. Emotion: sadness"
    return [{"id": f"g{i}", "image": f"{i:04d}.jpg", "conversations": [
        {"from": "human", "value": "<image>\nWhat emotion does this image evoke? Explain why."},
        {"from": "gpt", "value": answer}]} for i in range(n)]


def encode(tower, n: int, device) -> torch.Tensor:
    from PIL import Image

    tower.to(device)
    generator = torch.Generator().manual_seed(0)
    images = [Image.fromarray((torch.rand(224, 224, 3, generator=generator) * 255)
                              .to(torch.uint8).numpy()) for _ in range(n)]
    _, patches = tower(tower.preprocess(images))
    return patches


def stage(name, model, tokenizer, patches, n_tokens, args, accelerator) -> dict:
    from tinyemo.mmllm.data import build_examples, pad_id_of
    from tinyemo.mmllm.train import TrainConfig, train

    n = args.batch_size * args.steps
    examples = build_examples(
        [dict(r, image=f"{i % len(patches):04d}.jpg") for i, r in enumerate(records(n))],
        tokenizer, [f"{i:04d}" for i in range(len(patches))], n_tokens, max_length=512)
    config = TrainConfig(batch_size=args.batch_size, lr=1e-3 if name == "pretrain" else 2e-4,
                         max_steps=args.steps, checkpoint_every=0, warmup_ratio=0.0,
                         gradient_accumulation_steps=args.accumulation,
                         mixed_precision=args.precision, gradient_checkpointing=True)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    result = train(model, examples, patches, pad_id_of(tokenizer), config, accelerator=accelerator)
    peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")
    losses = [row["loss"] for row in result.log]
    return {"stage": name, "steps": result.steps, "samples_per_second": round(result.samples_per_second, 2),
            "peak_gpu_memory_gib": round(peak, 2), "first_loss": round(losses[0], 4),
            "last_loss": round(losses[-1], 4)}


def main(argv=None) -> int:
    args = parse(argv)
    if not torch.cuda.is_available() and not args.allow_cpu:
        print("gpu_check: no CUDA device is visible (torch.cuda.is_available() is False); run "
              "it on a machine with an NVIDIA GPU and a CUDA build of PyTorch, or use "
              "--reduced --allow-cpu to check the script itself", file=sys.stderr)
        return 2
    if args.batch_size % args.accumulation:
        print("gpu_check: --batch-size must be a multiple of --accumulation", file=sys.stderr)
        return 2
    from tinyemo.mmllm import artifact, infer
    from tinyemo.mmllm.train import TrainConfig, make_accelerator

    started = time.perf_counter()
    accelerator = make_accelerator(TrainConfig(mixed_precision=args.precision,
                                               gradient_accumulation_steps=args.accumulation))
    device = accelerator.device
    print(f"device: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu'}, "
          f"LLM {'reduced OpenELM-like' if args.reduced else args.llm}, precision {args.precision}")
    model, tokenizer, tower, n_tokens = build(args)
    patches = encode(tower, min(args.batch_size, 16), device)
    rows = []
    artifact.set_trainable(model, "connector")
    rows.append(stage("pretrain", model, tokenizer, patches, n_tokens, args, accelerator))
    torch.manual_seed(0)
    artifact.add_lora(model, r=128, alpha=256, dropout=0.05, targets="all-linear")
    artifact.set_trainable(model, "lora")
    rows.append(stage("finetune", model, tokenizer, patches, n_tokens, args, accelerator))
    prompt = infer.generative_prompt(["joy", "sadness", "fear"])
    with accelerator.autocast():
        answer = infer.generate(model, tokenizer, [prompt], patches[:1], max_new_tokens=16)[0]
    for row in rows:
        print(json.dumps(row))
    print(json.dumps({"generation": answer[:120], "seconds": round(time.perf_counter() - started, 1)}))
    ok = all(row["last_loss"] == row["last_loss"] for row in rows)  # finite (not nan)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
