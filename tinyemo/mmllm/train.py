"""The MM-LLM training loop (both stages), written for `accelerate`, the same on every device.

One loop serves pre-training (connector only) and fine-tuning (connector + LoRA or the
whole LLM): the caller decides which parameters require grad. It runs as a plain process
or under `accelerate launch` (one GPU, DDP on several, DeepSpeed ZeRO-2; on CPU, DDP
through gloo), with accelerate's conventions:

- global batch = per-device micro batch x processes x `gradient_accumulation_steps`; every
  process takes its slice of each global batch of a seeded per-epoch permutation and cuts it
  into micro batches, so a run is the same whatever the number of processes;
- `mixed_precision` (`no`, `fp16`, `bf16`) is the accelerator's autocast;
- `gradient_checkpointing` recomputes the LLM's activations in the backward pass;
- gradients are clipped to a global norm of `max_grad_norm` (TinyLLaVA's 1.0) at every
  optimizer step, on every path (`accelerator.clip_grad_norm_`; DeepSpeed clips itself,
  with the same value);
- each process seeds what it draws at random (dropout) with `seed + rank`, while the data
  order is the one seeded global plan;
- under DeepSpeed, the config's micro batch, accumulation and clipping are set from these
  settings before `accelerator.prepare` (which would otherwise read them from a DataLoader);
- batches are built by a DataLoader (tokenised records, `num_workers` processes) and
  moved to the accelerator's device, where `accelerator.prepare` put the model.

Records of similar length share a batch (see `epoch_batches`), which saves the compute spent
on padding. Every `checkpoint_every` steps a checkpoint is written (see `checkpoint.py`); a
new run with the same configuration, data and trainable parameters resumes from the newest
one instead of restarting. Losses are logged for the DVC loss-curve plots.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Literal, Sequence

import torch
from tqdm.auto import tqdm

from tinyemo.errors import TinyEmoError
from tinyemo.mmllm import checkpoint
from tinyemo.mmllm.data import Example, summarise, to_device, training_batch
from tinyemo.mmllm.grounding import Vocabulary

MixedPrecision = Literal["no", "fp16", "bf16"]


class BatchSizeError(TinyEmoError, ValueError):
    """A global batch that the processes and accumulation steps do not divide."""


@dataclass
class TrainConfig:
    epochs: int = 1  # passes over the records
    batch_size: int = 8  # global batch (micro batch x processes x accumulation steps)
    lr: float = 1.0e-3  # peak learning rate (AdamW), cosine decay after warm-up
    warmup_ratio: float = 0.03  # share of steps with linear warm-up (at least one step if > 0)
    weight_decay: float = 0.0
    max_grad_norm: float | None = 1.0  # clip gradients to this global L2 norm (None: no clipping)
    max_steps: int | None = None  # stop early after this many steps (None: all epochs)
    checkpoint_every: int = 50  # steps between checkpoints (0: none)
    log_every: int = 1  # steps between loss-log rows
    seed: int = 0
    length_window: int = 8  # batches whose records are sorted by length together (1: none)
    gradient_accumulation_steps: int = 1  # micro batches per optimizer step and process
    mixed_precision: MixedPrecision = "no"  # autocast of the forward pass
    gradient_checkpointing: bool = False  # recompute LLM activations (less memory, ~30% slower)
    num_workers: int = 0  # DataLoader processes tokenising records (0: in the main process)


@dataclass
class TrainingRun:
    steps: int
    samples: int
    seconds: float
    resumed_from: int  # step of the checkpoint the run resumed from (0: fresh start)
    log: list[dict] = field(default_factory=list)  # rows {step, epoch, loss, lr}

    @property
    def samples_per_second(self) -> float:
        return self.samples / self.seconds if self.seconds else float("nan")


@dataclass
class Run:
    """A trained stage: the model, how its training went and what it trained."""

    model: torch.nn.Module
    tokenizer: object
    result: TrainingRun
    n_records: int
    trainable_parameters: int
    total_parameters: int
    word_fit: list[dict] | None = None  # the word-grounded connector's fit without the LLM
    vocabulary: Vocabulary | None = None  # and its words
    curve: list[dict] | None = None  # rows {step, train_cpu_minutes, measures} (see stage_runs `_fit`)
    fingerprint: str | None = None  # the training's name (`fingerprint`); None: nothing trained


def fingerprint(config: TrainConfig, data_digest: str, model: torch.nn.Module,
                start: str = "") -> str:
    """The name of a training run: its settings, its data (`summarise`'s hash), the
    parameters it trains and, when given, what they start from (`weights_digest`). The
    DataLoader's worker count does not change the run."""
    settings = {k: v for k, v in asdict(config).items() if k != "num_workers"}
    trainable = sorted(n for n, p in model.named_parameters() if p.requires_grad)
    blob = json.dumps([settings, data_digest, trainable, start], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def weights_digest(model: torch.nn.Module) -> str:
    """A hash of the values of the parameters that train: what a run starts from (another
    pre-trained connector, another word-scorer fit make another run)."""
    hasher = hashlib.sha256()
    for name, param in sorted(model.named_parameters(), key=lambda item: item[0]):
        if param.requires_grad:
            hasher.update(name.encode())
            hasher.update(param.detach().float().cpu().contiguous().numpy().tobytes())
    return hasher.hexdigest()


def epoch_batches(lengths: list[int], batch_size: int, seed: int, epoch: int,
                  window: int = 1) -> list[list[int]]:
    """The global batches of one epoch: a seeded permutation cut into windows of `window`
    batches, each window's records sorted by length (short records batch together, so less
    padding is computed), and the batches in seeded random order."""
    generator = torch.Generator().manual_seed(seed * 1000 + epoch)
    order = torch.randperm(len(lengths), generator=generator).tolist()
    span = batch_size * max(1, window)
    batches = []
    for start in range(0, len(order), span):
        block = sorted(order[start:start + span], key=lambda i: lengths[i])
        batches += [block[i:i + batch_size] for i in range(0, len(block), batch_size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def schedule(config: TrainConfig, n_examples: int) -> tuple[int, int]:
    """(steps per epoch, total steps)."""
    per_epoch = math.ceil(n_examples / config.batch_size)
    total = per_epoch * config.epochs
    return per_epoch, min(total, config.max_steps) if config.max_steps else total


def warmup_steps(config: TrainConfig, total: int) -> int:
    """Steps of linear warm-up: the ratio's share, and at least one when the ratio is > 0."""
    return max(1, round(config.warmup_ratio * total)) if config.warmup_ratio > 0 else 0


def micro_batch_size(config: TrainConfig, processes: int, section: str = "") -> int:
    """Records per forward pass on one device. A global batch the processes and
    accumulation steps do not divide is refused, naming the parameters (of params
    `section`, when given) and values that fit."""
    share = processes * config.gradient_accumulation_steps
    if config.batch_size % share:
        name = f"{section}." if section else ""
        fits = [n for n in (config.batch_size // share * share, (config.batch_size // share + 1) * share) if n]
        per_process = config.batch_size // processes if config.batch_size % processes == 0 else None
        steps = [k for k in range(1, (per_process or 0) + 1) if per_process % k == 0]
        raise BatchSizeError(
            f"{name}batch_size {config.batch_size} (the global batch) must be a multiple of "
            f"{processes} processes x {config.gradient_accumulation_steps} accumulation steps "
            f"(= {share}, {name}num_processes x {name}gradient_accumulation_steps); set "
            f"{name}batch_size to {' or '.join(map(str, fits))}"
            + (f", or {name}gradient_accumulation_steps to one of {steps}" if steps else "")
        )
    return config.batch_size // share


def configure_deepspeed(plugin, config: TrainConfig, processes: int) -> dict:
    """Fill a DeepSpeed plugin's batch entries ("auto" in accelerate's config) from `config`:
    accelerate reads them from a prepared DataLoader, and this loop prepares none. Returns
    the plugin's config."""
    micro = micro_batch_size(config, processes)
    settings = plugin.deepspeed_config
    settings["train_micro_batch_size_per_gpu"] = micro
    settings["gradient_accumulation_steps"] = config.gradient_accumulation_steps
    settings["train_batch_size"] = micro * config.gradient_accumulation_steps * processes
    settings["gradient_clipping"] = config.max_grad_norm or 0.0  # 0: DeepSpeed's "no clipping"
    plugin.gradient_accumulation_steps = config.gradient_accumulation_steps
    plugin.gradient_clipping = settings["gradient_clipping"]
    return settings


def micro_batches(chunk: list[int], rank: int, world: int, accumulation: int) -> list[list[int]]:
    """This process's share of one global batch, cut into `accumulation` micro batches
    (some empty when the epoch's last batch is short)."""
    mine = chunk[rank::world]
    size = math.ceil(len(mine) / accumulation) if mine else 0
    return [mine[i * size:(i + 1) * size] for i in range(accumulation)]


def make_accelerator(config: TrainConfig):
    """The Accelerator for `config` (on a machine without CUDA, the CPU)."""
    from accelerate import Accelerator

    return Accelerator(cpu=not torch.cuda.is_available(), mixed_precision=config.mixed_precision,
                       gradient_accumulation_steps=config.gradient_accumulation_steps)


def _check_accelerator(accelerator, config: TrainConfig) -> None:
    if accelerator.gradient_accumulation_steps != config.gradient_accumulation_steps:
        raise ValueError(
            f"the accelerator accumulates {accelerator.gradient_accumulation_steps} steps, the "
            f"config {config.gradient_accumulation_steps}; build it with `make_accelerator(config)`"
        )
    if str(accelerator.mixed_precision) != config.mixed_precision:
        raise ValueError(
            f"the accelerator's mixed precision is {accelerator.mixed_precision!r}, the config's "
            f"{config.mixed_precision!r}; build it with `make_accelerator(config)`"
        )


def enable_gradient_checkpointing(model: torch.nn.Module) -> None:
    """Recompute the LLM's layer activations in the backward pass (non-reentrant, so the
    gradient reaches the connector through frozen layers)."""
    causal = model.causal_lm() if hasattr(model, "causal_lm") else model
    if not getattr(causal, "supports_gradient_checkpointing", False):
        raise ValueError(f"{type(causal).__name__} does not support gradient checkpointing")
    causal.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


class _StepSampler:
    """The DataLoader's batch sampler: this process's micro batches from step `start` on
    (an empty micro batch is stood in for by the batch's first record, weighted 0)."""

    def __init__(self, plan):
        self.plan = plan

    def __iter__(self):
        for _, parts, chunk in self.plan:
            for part in parts:
                yield part or chunk[:1]

    def __len__(self):
        return sum(len(parts) for _, parts, _ in self.plan)


def _plan(lengths, config, per_epoch, start, total, rank, world):
    """(step, micro batches of this process, global batch) for every step still to run."""
    plan, batches, batches_epoch = [], [], -1
    for step in range(start, total):
        epoch, within = divmod(step, per_epoch)
        if epoch != batches_epoch:
            batches = epoch_batches(lengths, config.batch_size, config.seed, epoch,
                                    config.length_window)
            batches_epoch = epoch
        chunk = batches[within]
        plan.append((step, micro_batches(chunk, rank, world, config.gradient_accumulation_steps),
                     chunk))
    return plan


def _scalar(value: torch.Tensor) -> float:
    """A logged number (nan for a shapes-only run on the meta device)."""
    return float("nan") if value.is_meta else value.item()


def train(model: torch.nn.Module, examples: Sequence[Example], patches, pad_id: int,
          config: TrainConfig, checkpoint_dir: Path | None = None, accelerator=None,
          stop_after: int | None = None, summary: tuple[list[int], str] | None = None,
          run_id: str | None = None) -> TrainingRun:
    """Train the parameters of `model` that require grad. `examples` is a list or a
    sequence read on demand (`data.TokenisedExamples`, `data.LazyExamples`); `patches[rows]`
    gives the patch grids of a batch. `summary` is `summarise(examples, patches)` when the
    caller has it; `run_id` names the run's checkpoints (default: `fingerprint` of the
    settings, the data and the trainable parameters). `stop_after` ends the run after that
    many steps as if interrupted (for resuming, and for measurements along a run)."""
    from accelerate.utils import set_seed
    from torch.utils.data import DataLoader
    from transformers import get_cosine_schedule_with_warmup

    accelerator = accelerator or make_accelerator(config)
    _check_accelerator(accelerator, config)
    rank, world = accelerator.process_index, accelerator.num_processes
    micro_batch_size(config, world)
    set_seed(config.seed + rank)  # torch (every device), numpy, random: dropout differs per process
    per_epoch, total = schedule(config, len(examples))
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("no parameter of the model requires grad: nothing to train")
    if config.gradient_checkpointing:
        enable_gradient_checkpointing(model)
    lengths, data_digest = summary or summarise(examples, patches)
    run_id = run_id or fingerprint(config, data_digest, model)
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    scheduler = get_cosine_schedule_with_warmup(optimizer, warmup_steps(config, total), total)
    plugin = getattr(accelerator.state, "deepspeed_plugin", None)
    if plugin is not None:
        configure_deepspeed(plugin, config, world)
    wrapped, optimizer = accelerator.prepare(model, optimizer)
    step, log = 0, []
    found = checkpoint.latest(checkpoint_dir, run_id) if checkpoint_dir else None
    if found:
        state = checkpoint.restore(found, accelerator, wrapped, optimizer, scheduler)
        step, log = state["step"], list(state["log"])
    resumed_from = step
    end = total if stop_after is None else min(total, stop_after)
    plan = _plan(lengths, config, per_epoch, step, end, rank, world)
    loader = DataLoader(examples, batch_sampler=_StepSampler(plan), num_workers=config.num_workers,
                        collate_fn=partial(training_batch, patches=patches, pad_id=pad_id),
                        generator=torch.Generator().manual_seed(config.seed + rank))  # not the global RNG
    micro = iter(loader)
    wrapped.train()
    started, samples = time.perf_counter(), 0
    bar = tqdm(total=total, initial=step, desc="train", mininterval=5,
               disable=not accelerator.is_main_process)
    max_norm = config.max_grad_norm or math.inf  # inf: the norm is measured, nothing clipped
    for step, parts, chunk in plan:
        losses, norm = [], None
        for part in parts:
            batch = to_device(next(micro), accelerator.device)
            with accelerator.accumulate(wrapped):
                loss = wrapped(**batch).loss * (1.0 if part else 0.0)
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    norm = accelerator.clip_grad_norm_(params, max_norm)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
            losses.append(loss.detach())
        step += 1
        samples += len(chunk)
        kept = [value for value, part in zip(losses, parts) if part] or losses[:1]
        mean_loss = _scalar(accelerator.reduce(torch.stack(kept).mean(), reduction="mean"))
        if step % config.log_every == 0 or step == total:
            log.append({"step": step, "epoch": round(step / per_epoch, 4), "loss": mean_loss,
                        "lr": scheduler.get_last_lr()[0],
                        "grad_norm": _scalar(norm) if torch.is_tensor(norm) else float("nan")})
        bar.update(1)
        bar.set_postfix(loss=f"{mean_loss:.3f}", refresh=False)
        if checkpoint_dir and config.checkpoint_every and step % config.checkpoint_every == 0:
            checkpoint.save(checkpoint_dir, step, accelerator, wrapped, optimizer, scheduler,
                            {"fingerprint": run_id, "log": log})
    bar.close()
    wrapped.eval()
    return TrainingRun(step, samples, time.perf_counter() - started, resumed_from, log)


def write_loss_log(log: list[dict], path: Path) -> None:
    """The loss curve as CSV (step, epoch, loss, lr, grad_norm: the gradients' global norm
    before clipping) for `dvc plots`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["step,epoch,loss,lr,grad_norm"] + [
        f"{row['step']},{row['epoch']},{row['loss']:.6f},{row['lr']:.3e},"
        f"{row.get('grad_norm', float('nan')):.4f}" for row in log
    ]
    path.write_text("\n".join(lines) + "\n")
