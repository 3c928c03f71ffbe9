"""Prove the paper path on one GPU in about five minutes, and print one table for the README.

Per paper LLM that fits the GPU (OpenELM-270M, OpenELM-450M, TinyLlama-1.1B, Phi-2), through
the project's own loader (`tinyemo.models.llm.load_llm`):

1. the LLM checks of `tinyemo dry-run paper`: causality, generation from input embeddings
   equals generation from token ids, cached equals uncached generation, a strict
   save/load round trip;
2. with the hub (real weights): language modelling on a fixed text, its perplexity under a
   stated bound and a known greedy continuation, which is what says that the project's
   OpenELM is Apple's;
3. the vision tower (CLIP ViT-L/14) encoding a few hundred images (images/s);
4. a few hundred Metric Projector steps on their pooled embeddings (steps/s, loss falling);
5. MM-LLM training at the paper profile's micro batch on records whose answers differ per
   image (the colour each picture shows): connector alone, then the whole LLM; tokens/s,
   peak memory, the held-out loss before and after (it must fall) and the image reliance
   after (held-out loss with the images shuffled minus with the right ones: positive);
6. batched generation with left padding (tokens/s);
7. a checkpoint, an interruption and a resume that continues the same loss curve.

It exits non-zero on a NaN, an infinite or a rising loss, or a failed check.

Without the hub (`--random-weights`, or when it is unreachable) every model has random
weights at its real configuration, as in the dry run, so the check runs on a machine with a
GPU and no hub access; `--layers` shrinks the LLMs and `--allow-cpu` runs it on a CPU (a
check of this script, not of a GPU).

    python benchmarks/gpu_check.py                              # real weights (hub)
    python benchmarks/gpu_check.py --random-weights             # offline, real configs
    python benchmarks/gpu_check.py --random-weights --allow-cpu --layers 1 --steps 4 \\
        --images 32 --llm openelm-270m-instruct                 # this script on a CPU
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import torch

PAPER_LLMS = ("openelm-270m-instruct", "openelm-450m-instruct", "tinyllama-1.1b-chat", "phi-2")
TOWER = "clip-vit-l-14"
# Language check with real weights: a plain English paragraph and a bound every one of the
# paper's LLMs stays well under (their published perplexities on web text are 10-20).
FIXED_TEXT = ("The sun rose over the quiet village. Children walked to school while their "
              "parents opened the small shops along the main street. By noon the market was "
              "full of people buying bread, fruit and fresh fish.")
PERPLEXITY_BOUND = 60.0
CONTINUATION = ("The capital of France is", "Paris")


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--llm", action="append", choices=PAPER_LLMS,
                        help="check only these LLMs (repeatable; default: every one that fits)")
    parser.add_argument("--random-weights", action="store_true",
                        help="random weights at the real configurations (no hub needed)")
    parser.add_argument("--layers", type=int, default=None,
                        help="transformer blocks per LLM (default: the real depth)")
    parser.add_argument("--tower-layers", type=int, default=None,
                        help="ViT blocks with random weights (default: the real 24)")
    parser.add_argument("--images", type=int, default=256, help="images encoded (default 256)")
    parser.add_argument("--steps", type=int, default=20,
                        help="optimizer steps per MM-LLM training stage (default 20)")
    parser.add_argument("--projector-steps", type=int, default=300,
                        help="Metric Projector steps (default 300)")
    parser.add_argument("--micro-batch", type=int, default=8,
                        help="records per forward pass (default 8, the paper profile's stage 1)")
    parser.add_argument("--precision", choices=("no", "fp16", "bf16"), default="bf16")
    parser.add_argument("--allow-cpu", action="store_true", help="run without CUDA")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON too")
    args = parser.parse_args(argv)
    if args.layers is not None and args.layers < 1 or args.steps < 2 or args.images < 16:
        parser.error("--layers must be >= 1, --steps >= 2 and --images >= 16")
    return args


class CheckFailed(RuntimeError):
    pass


def require(condition: bool, what: str) -> None:
    if not condition:
        raise CheckFailed(what)


def finite_and_falling(first: float, last: float, what: str) -> None:
    require(math.isfinite(first) and math.isfinite(last), f"{what}: loss not finite ({first}, {last})")
    require(last < first, f"{what}: loss did not fall ({first:.4f} -> {last:.4f})")


# ----------------------------------------------------------------------------- data
# Pictures whose answer differs per image: each is mostly one colour (with noise), and its
# record says which; a model that reads the image gets a lower loss than one shown another.
COLOURS = {"red": (200, 40, 40), "green": (40, 170, 60), "blue": (40, 70, 200),
           "yellow": (220, 200, 40)}
MOODS = {"red": "tense and urgent", "green": "calm and fresh", "blue": "cool and quiet",
         "yellow": "warm and cheerful"}


def colour_of(i: int) -> str:
    return list(COLOURS)[i % len(COLOURS)]


def colour_images(n: int) -> list:
    from PIL import Image

    generator = torch.Generator().manual_seed(0)
    images = []
    for i in range(n):
        base = torch.tensor(COLOURS[colour_of(i)], dtype=torch.float32)
        noise = torch.randn(224, 224, 3, generator=generator) * 25
        images.append(Image.fromarray((base + noise).clamp(0, 255).to(torch.uint8).numpy()))
    return images


def colour_records(n: int) -> list[dict]:
    return [{"id": f"c{i}", "image": f"{i:04d}.jpg", "conversations": [
        {"from": "human", "value": "<image>\nDescribe the picture and how it feels."},
        {"from": "gpt", "value": f"The picture is mostly {colour_of(i)}. It feels "
                                 f"{MOODS[colour_of(i)]}."}]} for i in range(n)]


# ----------------------------------------------------------------------------- models
def load_paper_llm(name: str, args, workdir: Path, device):
    """(model, tokenizer, weights) through the project's loader: the hub's real weights, or a
    folder with the real configuration and random weights."""
    from tinyemo.models import llm, reduced, registry

    if not args.random_weights:
        try:
            model, tokenizer = llm.load_llm(name, device=device)
            return model, tokenizer, "hub"
        except Exception as err:  # no hub, no login: fall back to random weights, said so
            print(f"{name}: real weights unavailable ({type(err).__name__}: {str(err)[:160]}); "
                  "random weights at the real configuration", file=sys.stderr)
    config = registry.published_llm(name)["config"]
    depth = args.layers or next(config[key] for key in reduced.LAYER_KEYS if key in config)
    folder = reduced.write_reduced_llm(name, workdir / name, layers=depth)
    model, tokenizer = llm.load_llm(folder, device=device)
    return model, tokenizer, "random"


def language_check(model, tokenizer, device) -> dict:
    """Perplexity of FIXED_TEXT and the greedy continuation of CONTINUATION[0]."""
    ids = tokenizer(FIXED_TEXT, return_tensors="pt").input_ids.to(device)
    with torch.no_grad():
        logits = model(input_ids=ids).logits.float()
    loss = torch.nn.functional.cross_entropy(logits[0, :-1], ids[0, 1:])
    perplexity = float(loss.exp())
    prompt = tokenizer(CONTINUATION[0], return_tensors="pt").to(device)
    out = model.generate(**prompt, max_new_tokens=5, do_sample=False,
                         pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
    continuation = tokenizer.decode(out[0, prompt.input_ids.shape[1]:], skip_special_tokens=True)
    require(perplexity < PERPLEXITY_BOUND, f"perplexity {perplexity:.1f} >= {PERPLEXITY_BOUND}")
    require(CONTINUATION[1] in continuation, f"continuation {continuation!r} lacks {CONTINUATION[1]!r}")
    return {"perplexity": round(perplexity, 2), "continuation": continuation.strip()}


def load_tower(args, device):
    """CLIP ViT-L/14: open_clip's OpenAI weights, or random weights at its configuration."""
    from tinyemo.cli import dry_run

    if not args.random_weights:
        try:
            from tinyemo.models.vision import load_vision_tower

            return load_vision_tower(TOWER).to(device), "openai"
        except Exception as err:
            print(f"{TOWER}: real weights unavailable ({type(err).__name__}); random weights",
                  file=sys.stderr)
    return dry_run.build_vision_tower(layers=args.tower_layers or 24).to(device), "random"


# ----------------------------------------------------------------------------- steps
def timed(fn):
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    started = time.perf_counter()
    value = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return value, time.perf_counter() - started


def encode(tower, n: int, device, precision: str) -> tuple[torch.Tensor, torch.Tensor, dict]:
    images = colour_images(n)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)

    def run():
        pooled, patches = [], []
        for start in range(0, n, 64):
            batch = tower.preprocess(images[start:start + 64]).to(device)
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None), torch.no_grad():
                p, g = tower(batch)
            pooled.append(p.float().cpu())
            patches.append(g.float().cpu())
        return torch.cat(pooled), torch.cat(patches)

    (pooled, patches), seconds = timed(run)
    require(bool(torch.isfinite(pooled).all()), "the tower's embeddings are not finite")
    return pooled, patches, {"images_per_second": round(n / seconds, 1)}


def projector_steps(pooled: torch.Tensor, tokenizer, table: torch.Tensor, steps: int) -> dict:
    """Metric Projector training on the pooled embeddings, anchors from the LLM's table."""
    from tinyemo.projector.anchors import build_anchor_set, embedding_table_encoder
    from tinyemo.projector.train import Recipe, train_projector

    labels = torch.arange(len(pooled)) % len(COLOURS)
    anchors = build_anchor_set(["anger", "joy", "sadness", "fear"],
                               encoder=embedding_table_encoder(tokenizer, table))
    epochs = max(2, round(steps * 32 / len(pooled)))
    fit = train_projector(pooled, labels, anchors, Recipe(epochs=epochs, batch_size=32))
    losses = [row["train_loss"] for row in fit.history]
    done = epochs * (len(pooled) // 32)
    finite_and_falling(losses[0], losses[-1], "projector")
    return {"projector_steps_per_second": round(done / fit.seconds, 1),
            "projector_loss": f"{losses[0]:.3f} -> {losses[-1]:.3f}"}


def mean_loss(model, examples, patches, pad_id: int, device, shuffle: bool = False) -> float:
    from tinyemo.mmllm.data import training_batch, to_device

    model.eval()
    order = torch.roll(torch.arange(len(patches)), 1) if shuffle else torch.arange(len(patches))
    moved = patches[order]
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(examples), 8):
            batch = to_device(training_batch(examples[start:start + 8], moved, pad_id), device)
            out = model(**batch)
            total += float(out.loss) * len(out.targets)
            count += len(out.targets)
    return total / count


def train_stage(model, examples, patches, pad_id: int, args, lr: float, accumulation: int,
                checkpoint_dir=None, stop_after=None):
    from tinyemo.mmllm.train import TrainConfig, make_accelerator, train

    batch = args.micro_batch * accumulation
    config = TrainConfig(batch_size=batch, lr=lr, max_steps=args.steps,
                         epochs=math.ceil(args.steps * batch / len(examples)),
                         warmup_ratio=0.0, checkpoint_every=max(1, args.steps // 2),
                         gradient_accumulation_steps=accumulation, mixed_precision=args.precision,
                         gradient_checkpointing=True)
    accelerator = make_accelerator(config)
    return train(model, examples, patches, pad_id, config, checkpoint_dir=checkpoint_dir,
                 accelerator=accelerator, stop_after=stop_after)


def tokens_in(examples, steps: int, batch: int) -> int:
    per_record = sum(len(e.input_ids) for e in examples) / len(examples)
    return int(per_record * steps * batch)


def mmllm_training(name: str, model, tokenizer, patches, args, device) -> tuple[dict, object]:
    """Stage 1 (connector) and stage 2 (the whole LLM) on colour records."""
    from tinyemo.mmllm import artifact, conversations
    from tinyemo.mmllm.data import build_examples, pad_id_of
    from tinyemo.mmllm.model import TinyLlava

    conversations.use_conversation(tokenizer, "tinyllava")
    n_tokens = patches.shape[1]
    torch.manual_seed(0)
    mm = TinyLlava(model, patches.shape[-1], n_tokens).to(device)
    ids = [f"{i:04d}" for i in range(len(patches))]
    n_train = len(patches) * 3 // 4
    records = colour_records(len(patches))
    train_examples = build_examples(records[:n_train], tokenizer, ids, mm.n_image_tokens, 512)
    held_out = build_examples(records[n_train:], tokenizer, ids, mm.n_image_tokens, 512)
    pad_id = pad_id_of(tokenizer)
    before = mean_loss(mm, held_out, patches, pad_id, device)
    row = {}
    for stage, part, lr, accumulation in (("pretrain", "connector", 1e-3, 4),
                                          ("finetune", "full", 2e-5, 4)):
        artifact.set_trainable(mm, part)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        result, seconds = timed(lambda: train_stage(mm, train_examples, patches, pad_id, args, lr,
                                                    accumulation))
        losses = [r["loss"] for r in result.log]
        require(all(math.isfinite(x) for x in losses), f"{stage}: a loss is not finite")
        batch = args.micro_batch * accumulation
        row[f"{stage}_tokens_per_second"] = round(tokens_in(train_examples, result.steps, batch) / seconds)
        if device.type == "cuda":
            row[f"{stage}_peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    after = mean_loss(mm, held_out, patches, pad_id, device)
    shuffled = mean_loss(mm, held_out, patches, pad_id, device, shuffle=True)
    finite_and_falling(before, after, "held-out MM-LLM")
    row["held_out_loss"] = f"{before:.3f} -> {after:.3f}"
    row["image_reliance"] = round(shuffled - after, 4)
    require(shuffled - after > 0, f"image reliance {shuffled - after:.4f} is not positive")
    return row, (mm, train_examples, pad_id)


def batched_generation(mm, tokenizer, patches, device, new_tokens: int = 32) -> dict:
    """Greedy generation of a left-padded batch of prompts of different lengths."""
    from tinyemo.mmllm import infer
    from tinyemo.mmllm.data import collate, pad_id_of, to_device
    from tinyemo.mmllm.prompts import encode_prompt

    n = min(16, len(patches))
    ids = [encode_prompt(tokenizer, infer.with_image("What colour is the picture?" + " Say" * (i % 4)),
                         mm.n_image_tokens) for i in range(n)]
    batch = to_device(collate(ids, pad_id_of(tokenizer), padding_side="left"), device)
    out, seconds = timed(lambda: mm.generate(batch["input_ids"], patches[:n].to(device),
                                             batch["attention_mask"], max_new_tokens=new_tokens,
                                             min_new_tokens=new_tokens,
                                             pad_token_id=pad_id_of(tokenizer)))
    require(out.shape == (n, new_tokens), f"generation gave {tuple(out.shape)}, not {(n, new_tokens)}")
    return {"generation_tokens_per_second": round(n * new_tokens / seconds, 1)}


def resume_continues(mm, examples, patches, pad_id: int, args, workdir: Path) -> dict:
    """A run interrupted after its first checkpoint and resumed gives the loss curve of one
    uninterrupted run (same seed, same data)."""
    from tinyemo.mmllm import artifact, checkpoint

    artifact.set_trainable(mm, "connector")
    start = {k: v.detach().clone() for k, v in mm.connector.state_dict().items()}

    def fresh():
        mm.connector.load_state_dict(start)

    fresh()
    whole = train_stage(mm, examples, patches, pad_id, args, 1e-3, 1)
    fresh()
    folder = checkpoint.checkpoint_dir(workdir / "resume")
    half = max(1, args.steps // 2)
    train_stage(mm, examples, patches, pad_id, args, 1e-3, 1, folder, stop_after=half)
    fresh()  # the process is gone: only the checkpoint remains
    resumed = train_stage(mm, examples, patches, pad_id, args, 1e-3, 1, folder)
    require(resumed.resumed_from == half, f"resumed from step {resumed.resumed_from}, not {half}")
    a = [r["loss"] for r in whole.log]
    b = [r["loss"] for r in resumed.log]
    gap = max(abs(x - y) for x, y in zip(a, b))
    require(len(a) == len(b) and gap < 1e-2, f"resumed curve differs by {gap:.2e}")
    return {"resume_max_loss_gap": f"{gap:.1e}"}


def check_llm(name: str, args, workdir: Path, tower_out, device) -> dict:
    from tinyemo.models import llm_checks

    pooled, patches = tower_out
    row = {"llm": name}
    model, tokenizer, weights = load_paper_llm(name, args, workdir, device)
    row["weights"] = weights
    row["parameters_m"] = round(sum(p.numel() for p in model.parameters()) / 1e6, 1)
    try:
        llm_checks.run_all(model, tokenizer, workdir / f"{name}-saved")
    except llm_checks.LLMCheckFailed as err:
        raise CheckFailed(f"LLM check: {err}") from None
    row["llm_checks"] = "pass"
    if weights == "hub":
        row.update(language_check(model, tokenizer, device))
    row.update(projector_steps(pooled, tokenizer, model.get_input_embeddings().weight.detach()
                               .float().cpu(), args.projector_steps))
    trained, (mm, examples, pad_id) = mmllm_training(name, model, tokenizer, patches, args, device)
    row.update(trained)
    row.update(batched_generation(mm, tokenizer, patches, device))
    row.update(resume_continues(mm, examples, patches, pad_id, args, workdir / name))
    return row


def parameter_count(name: str) -> int:
    """Parameters of `name` at its published configuration (built on `meta`: no memory)."""
    from tinyemo.models import registry
    from tinyemo.models.llm import build_llm

    model = build_llm(registry.published_llm(name)["config"], initialise=False, device="meta")
    return sum(p.numel() for p in model.parameters())


def fits(name: str) -> bool:
    """Whether full fine-tuning of `name` (fp32 weights, AdamW: ~16 bytes a parameter) fits."""
    if not torch.cuda.is_available():
        return True
    need = parameter_count(name) * 16 * 1.3
    return need < torch.cuda.get_device_properties(0).total_memory


def table(rows: list[dict]) -> str:
    keys = list(dict.fromkeys(k for row in rows for k in row))
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(row.get(k, "")) for k in keys) + " |" for row in rows]
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse(argv)
    if not torch.cuda.is_available() and not args.allow_cpu:
        print("gpu_check: no CUDA device is visible (torch.cuda.is_available() is False); run "
              "it on a machine with an NVIDIA GPU and a CUDA build of PyTorch, or pass "
              "--allow-cpu to check the script itself", file=sys.stderr)
        return 2
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        args.precision = "no"
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu"
    started = time.perf_counter()
    rows, failures = [], []
    with tempfile.TemporaryDirectory() as tmp:
        tower, tower_weights = load_tower(args, device)
        pooled, patches, speed = encode(tower, args.images, device, args.precision)
        del tower
        print(f"device: {name}; tower {TOWER} ({tower_weights} weights): "
              f"{speed['images_per_second']} images/s", file=sys.stderr)
        for llm_name in args.llm or PAPER_LLMS:
            if not fits(llm_name):
                rows.append({"llm": llm_name, "status": "does not fit this GPU"})
                continue
            try:
                row = check_llm(llm_name, args, Path(tmp), (pooled, patches), device)
                rows.append({**row, "status": "pass"})
            except CheckFailed as err:
                failures.append(f"{llm_name}: {err}")
                rows.append({"llm": llm_name, "status": f"FAIL: {err}"})
            print(f"{llm_name}: {rows[-1]['status']} ({time.perf_counter() - started:.0f} s)",
                  file=sys.stderr, flush=True)
            if device.type == "cuda":
                torch.cuda.empty_cache()
    print(f"\ngpu_check on {name} ({args.precision}; tower {speed['images_per_second']} images/s; "
          f"{time.perf_counter() - started:.0f} s in all)\n")
    print(table(rows))
    if args.json:
        print(json.dumps(rows, indent=2))
    for failure in failures:
        print(f"FAILED {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
