"""`tinyemo dry-run paper`: the paper profile's models, shrunk in depth only, through every step on CPU.

Offline and without downloads. Each of the paper's LLMs (OpenELM-270M and -450M, TinyLlama-1.1B,
Phi-2) is written as a model folder by `tinyemo.models.reduced`: its published configuration
with `--layers` layers, seeded random weights and a tokenizer with the real vocabulary size,
special tokens and ids; every width, vocabulary, head count and RoPE setting is the real one.
The folder is loaded by the project's own loader (`tinyemo.models.llm.load_llm`), as a
downloaded model would be. The vision tower is open_clip's ViT-L/14 with random weights and
as few blocks, keeping its 256 image tokens.

For each LLM the run checks the properties the MM-LLM relies on
(`tinyemo.models.llm_checks`: causal attention, generation from input embeddings equal to
generation from token ids, cached equal to uncached generation, left padding without effect,
a strict save-and-load round trip), then goes through pre-training (connector), fine-tuning
(LoRA) and explaining (generation) on a few records with the paper profile's training
settings: gradient accumulation 4 and gradient checkpointing on, mixed precision `no` (CPU).
A shapes-only step with the model on PyTorch's `meta` device checks that every batch is
moved to the model's device, and one pre-training runs on 2 processes under `accelerate
launch`. Exit status 0 only when every step passes.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from types import SimpleNamespace

import torch

IMAGE_TOKENS = 256  # ViT-L/14 at 224 px: 16 x 16 patches
PATCH_DIM = 1024
ACCUMULATION = 4
LLMS = ("openelm-270m-instruct", "openelm-450m-instruct", "tinyllama-1.1b-chat", "phi-2")
DEFAULT_LAYERS = 2  # enough for OpenELM to keep its narrowest and its widest layer
_SCRATCH: list[tempfile.TemporaryDirectory] = []  # `scratch_root()`, made on first use


def peak_mb() -> float:
    """The peak resident memory of this process and its finished children, in MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round(max(own, children) / 1024, 1)


def scratch_root() -> Path:
    """A folder of this process, removed when it exits."""
    if not _SCRATCH:
        _SCRATCH.append(tempfile.TemporaryDirectory(prefix="tinyemo-dry-run-"))
    return Path(_SCRATCH[0].name)


def llm_folder(name: str, layers: int, root: Path | None = None) -> Path:
    """The reduced model folder of `name` under `root` (default: `scratch_root()`), written
    on first use."""
    from tinyemo.models.reduced import write_reduced_llm

    folder = Path(root or scratch_root()) / f"{name}-{layers}-layers"
    if not folder.exists():
        write_reduced_llm(name, folder, layers)
    return folder


def build_vision_tower(layers: int, seed: int = 0):
    """open_clip ViT-L/14 with random weights and `layers` vision blocks (text tower: 1)."""
    import open_clip

    from tinyemo.models import registry
    from tinyemo.models.vision.base import VisionTower
    from tinyemo.models.vision.clip import OpenClipTower

    config = copy.deepcopy(open_clip.get_model_config("ViT-L-14"))
    config["vision_cfg"]["layers"] = max(2, layers)
    config["text_cfg"]["layers"] = 1

    class ReducedClip(OpenClipTower):
        def __init__(self):
            VisionTower.__init__(self, registry.vision_tower_spec("clip-vit-l-14"))
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                self.visual = open_clip.CLIP(**config).visual
            self.transform = open_clip.image_transform(config["vision_cfg"]["image_size"],
                                                       is_train=False)
            self.freeze()

    return ReducedClip()


def records(n: int) -> list[dict]:
    answers = ["The sky is grey and the figure sits alone.", "Bright balloons over a party."]
    return [{"id": f"d{i}", "image": f"images/{i:03d}.jpg", "conversations": [
        {"from": "human", "value": "<image>\nWhat emotion does the image evoke? Explain."},
        {"from": "gpt", "value": f"{answers[i % 2]} Emotion: {'sadness' if i % 2 == 0 else 'joy'}"},
    ]} for i in range(n)]


def mmllm(name: str, layers: int, root: Path | None = None):
    """(TinyLlava on the reduced `name` loaded from its folder, tokenizer)."""
    from tinyemo.mmllm.model import TinyLlava
    from tinyemo.models.llm import load_llm

    llm, tokenizer = load_llm(llm_folder(name, layers, root))
    torch.manual_seed(0)
    return TinyLlava(llm, PATCH_DIM, IMAGE_TOKENS), tokenizer


def llm_properties(model, tokenizer, root: Path) -> dict:
    """The LLM checks on the MM-LLM's LLM (its round trip through a folder then removed)."""
    from tinyemo.models import llm_checks

    folder = Path(tempfile.mkdtemp(prefix="round-trip-", dir=root))
    try:
        return llm_checks.run_all(model.llm, tokenizer, folder)
    finally:
        shutil.rmtree(folder)


def train_config(n_records: int, max_steps: int = 1):
    from tinyemo.mmllm.train import TrainConfig

    return TrainConfig(batch_size=n_records, lr=1e-3, max_steps=max_steps, checkpoint_every=0,
                       gradient_accumulation_steps=ACCUMULATION, gradient_checkpointing=True,
                       mixed_precision="no")


def examples_for(tokenizer, n: int):
    from tinyemo.mmllm.data import build_examples

    return build_examples(records(n), tokenizer, [f"{i:03d}" for i in range(n)], IMAGE_TOKENS,
                          max_length=512)


def pretrain(model, tokenizer, patches, n: int, accelerator=None):
    from tinyemo.mmllm import artifact
    from tinyemo.mmllm.data import pad_id_of
    from tinyemo.mmllm.train import train

    artifact.set_trainable(model, "connector")
    result = train(model, examples_for(tokenizer, n), patches, pad_id_of(tokenizer),
                   train_config(n), accelerator=accelerator)
    return {"loss": result.log[-1]["loss"], "samples_per_second": round(result.samples_per_second, 3)}


def finetune(model, tokenizer, patches, n: int):
    from tinyemo.mmllm import artifact
    from tinyemo.mmllm.data import pad_id_of
    from tinyemo.mmllm.train import train

    torch.manual_seed(0)
    artifact.add_lora(model, r=8, alpha=16, dropout=0.05, targets="all-linear")
    artifact.set_trainable(model, "lora")
    result = train(model, examples_for(tokenizer, n), patches, pad_id_of(tokenizer), train_config(n))
    return {"loss": result.log[-1]["loss"]}


def explain(model, tokenizer, patches):
    from tinyemo.mmllm import infer

    model.eval()
    prompt = infer.generative_prompt(["joy", "sadness", "fear"])
    answer = infer.generate(model, tokenizer, [prompt], patches[:1], max_new_tokens=4)[0]
    return {"answer_chars": len(answer)}


def shapes_only_step(model, tokenizer, patches, n: int):
    """A training step and a generation on the `meta` device (shapes only): a batch left on
    the CPU fails as it would on a GPU. The decoder (whose attention masks read values) and
    the LLM's `generate` are stood in for by checks that their inputs are on `meta`."""
    from accelerate import Accelerator
    from torch.fx.experimental import _config

    from tinyemo.mmllm import infer

    class MetaAccelerator(Accelerator):
        @property
        def device(self):
            return torch.device("meta")

    class Reached(Exception):
        pass

    def on_meta(*tensors):
        if not all(t.is_meta for t in tensors if torch.is_tensor(t)):
            raise RuntimeError(f"a batch reached the model on {[t.device for t in tensors]}, "
                               "not on the model's device")

    def decoder_stand_in(inputs_embeds, attention_mask=None, **kwargs):
        on_meta(inputs_embeds, attention_mask)
        return SimpleNamespace(last_hidden_state=inputs_embeds * 1.0)

    def generate_stand_in(**kwargs):
        on_meta(*kwargs.values())
        raise Reached

    model = model.to("meta")
    causal = model.causal_lm()
    getattr(causal, causal.base_model_prefix).forward = decoder_stand_in
    before = _config.meta_nonzero_assume_all_nonzero
    _config.meta_nonzero_assume_all_nonzero = True
    try:
        pretrain(model, tokenizer, patches, n, accelerator=MetaAccelerator(
            cpu=True, gradient_accumulation_steps=ACCUMULATION))
        model.llm.generate = generate_stand_in
        try:
            explain(model, tokenizer, patches)
        except Reached:
            pass
    finally:
        _config.meta_nonzero_assume_all_nonzero = before
    return {}


def patches_for(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, IMAGE_TOKENS, PATCH_DIM, generator=torch.Generator().manual_seed(seed))


def two_processes(name: str, layers: int, n: int, root: Path):
    accelerate = os.path.join(os.path.dirname(sys.executable), "accelerate")
    command = [accelerate if os.path.exists(accelerate) else "accelerate", "launch",
               "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision",
               "no", "--dynamo_backend", "no", "-m", "tinyemo.cli.dry_run", "--worker", name,
               "--layers", str(layers), "--records", str(n),
               "--folder", str(llm_folder(name, layers, root))]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"accelerate launch failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def worker(name: str, layers: int, n: int, folder: Path) -> int:
    """One of the processes of `two_processes`: the pre-training of `name` from `folder`."""
    from tinyemo.mmllm.train import make_accelerator

    accelerator = make_accelerator(train_config(n))
    model, tokenizer = mmllm(name, layers, Path(folder).parent)
    out = pretrain(model, tokenizer, patches_for(n), n, accelerator)
    if accelerator.is_main_process:
        print(json.dumps({"processes": accelerator.num_processes, **out}))
    return 0


def steps(layers: int, n: int, llms=LLMS, processes: bool = True, root: Path | None = None):
    """(name, thunk) of every step, in order; model folders go under `root` (default: a
    folder removed at exit)."""
    root = Path(root or scratch_root())
    state = {}

    def encode():
        from PIL import Image

        tower = build_vision_tower(layers)
        generator = torch.Generator().manual_seed(0)
        images = [Image.fromarray((torch.rand(224, 224, 3, generator=generator) * 255)
                                  .to(torch.uint8).numpy()) for _ in range(n)]
        _, patches = tower(tower.preprocess(images))
        if tuple(patches.shape) != (n, IMAGE_TOKENS, PATCH_DIM):
            raise RuntimeError(f"ViT-L/14 patches {tuple(patches.shape)}")
        state["patches"] = patches
        return {"patches": list(patches.shape)}

    plan = [("encode", encode)]
    for name in llms:
        def fresh(name=name):
            state[name] = mmllm(name, layers, root)
            return {"parameters": sum(p.numel() for p in state[name][0].parameters())}

        plan += [
            (f"{name}:build", fresh),
            (f"{name}:checks", lambda name=name: llm_properties(*state[name], root)),
            (f"{name}:pretrain", lambda name=name: pretrain(*state[name], state["patches"], n)),
            (f"{name}:finetune", lambda name=name: finetune(*state[name], state["patches"], n)),
            (f"{name}:explain", lambda name=name: explain(*state.pop(name), state["patches"])),
            (f"{name}:devices", lambda name=name: shapes_only_step(*mmllm(name, layers, root),
                                                                   state["patches"], n)),
        ]
    if processes:
        plan.append((f"{llms[0]}:pretrain on 2 processes",
                     lambda: two_processes(llms[0], layers, 2 * n, root)))
    return plan


def run_steps(plan) -> list[dict]:
    report = []
    for name, thunk in plan:
        started = time.perf_counter()
        try:
            detail, status = thunk() or {}, "passed"
        except Exception as err:  # a failed step is reported, the others still run
            detail, status = {"error": f"{type(err).__name__}: {err}",
                              "where": traceback.format_exc(limit=-2).strip()[-600:]}, "failed"
        report.append({"step": name, "status": status,
                       "seconds": round(time.perf_counter() - started, 2),
                       "peak_memory_mb": peak_mb(), **detail})
    return report


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "dry-run", help="run the paper profile's models, shrunk in depth, through every step on CPU",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  tinyemo dry-run paper --json")
    parser.add_argument("profile", choices=("paper",), help="the profile whose models are checked")
    parser.add_argument("--layers", type=int, default=DEFAULT_LAYERS,
                        help=f"transformer blocks per LLM (default {DEFAULT_LAYERS})")
    parser.add_argument("--records", type=int, default=ACCUMULATION,
                        help=f"training records, a multiple of {ACCUMULATION} (default {ACCUMULATION}; "
                        "twice as many on 2 processes)")
    parser.add_argument("--llm", action="append", choices=LLMS,
                        help="check only these LLMs (repeatable; default: all)")
    parser.add_argument("--no-processes", action="store_true",
                        help="skip the 2-process run under accelerate launch")
    parser.add_argument("--json", action="store_true", help="print the steps as JSON")
    parser.set_defaults(handler=handle)


def handle(args) -> int:
    from tinyemo.cli import CommandError

    if args.layers < 1 or args.records < ACCUMULATION or args.records % ACCUMULATION:
        raise CommandError(f"--layers must be >= 1 and --records a positive multiple of "
                           f"{ACCUMULATION} (the accumulation steps)")
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    with tempfile.TemporaryDirectory(prefix="tinyemo-dry-run-") as root:
        report = run_steps(steps(args.layers, args.records, tuple(args.llm or LLMS),
                                 not args.no_processes, Path(root)))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for row in report:
            extra = row.get("error", "")
            print(f"{row['status']:>6}  {row['seconds']:7.1f} s  {row['peak_memory_mb']:8.0f} MiB  "
                  f"{row['step']}  {extra}")
    return 0 if all(row["status"] == "passed" for row in report) else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m tinyemo.cli.dry_run")
    parser.add_argument("--worker", choices=LLMS, required=True)
    parser.add_argument("--layers", type=int, default=DEFAULT_LAYERS)
    parser.add_argument("--records", type=int, default=ACCUMULATION)
    parser.add_argument("--folder", type=Path, required=True, help="the reduced model folder")
    worker_args = parser.parse_args()
    raise SystemExit(worker(worker_args.worker, worker_args.layers, worker_args.records,
                            worker_args.folder))
