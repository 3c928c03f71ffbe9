"""The MM-LLM training loop (both stages), written for `accelerate`.

One loop serves pre-training (connector only) and fine-tuning (connector + LoRA or the
whole LLM): the caller decides which parameters require grad. It runs as a plain process
or under `accelerate launch --num_processes N` (DDP; on CPU through gloo): every process
takes its slice of each global batch of a seeded per-epoch permutation, so a run is the
same whatever the number of processes. Records of similar length share a batch (see
`epoch_batches`), which saves the compute spent on padding. Every `checkpoint_every` steps
a checkpoint is written (see `checkpoint.py`); a new run with the same configuration
resumes from the newest one instead of restarting. Losses are logged for the DVC loss-curve plots.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from tinyemo.mmllm import checkpoint
from tinyemo.mmllm.data import Example, training_batch


@dataclass
class TrainConfig:
    epochs: int = 1  # passes over the records
    batch_size: int = 8  # global batch (split across processes)
    lr: float = 1.0e-3  # peak learning rate (AdamW), cosine decay after warm-up
    warmup_ratio: float = 0.03  # share of steps with linear warm-up
    weight_decay: float = 0.0
    max_steps: int | None = None  # stop early after this many steps (None: all epochs)
    checkpoint_every: int = 50  # steps between checkpoints (0: none)
    log_every: int = 1  # steps between loss-log rows
    seed: int = 0
    length_window: int = 8  # batches whose records are sorted by length together (1: none)


@dataclass
class TrainResult:
    steps: int
    samples: int
    seconds: float
    resumed_from: int  # step of the checkpoint the run resumed from (0: fresh start)
    log: list[dict] = field(default_factory=list)  # rows {step, epoch, loss, lr}

    @property
    def samples_per_second(self) -> float:
        return self.samples / self.seconds if self.seconds else float("nan")


def fingerprint(config: TrainConfig, n_examples: int, model: torch.nn.Module) -> str:
    trainable = sorted(n for n, p in model.named_parameters() if p.requires_grad)
    blob = json.dumps([asdict(config), n_examples, trainable], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


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


def train(model: torch.nn.Module, examples: list[Example], patches: torch.Tensor, pad_id: int,
          config: TrainConfig, checkpoint_dir: Path | None = None, accelerator=None,
          stop_after: int | None = None) -> TrainResult:
    """Train the parameters of `model` that require grad. `stop_after` ends the run after
    that many steps as if interrupted (for tests of resuming)."""
    from accelerate import Accelerator
    from transformers import get_cosine_schedule_with_warmup

    accelerator = accelerator or Accelerator(cpu=not torch.cuda.is_available())
    if config.batch_size % accelerator.num_processes:
        raise ValueError(
            f"batch_size {config.batch_size} must be a multiple of the "
            f"{accelerator.num_processes} processes"
        )
    torch.manual_seed(config.seed)
    per_epoch, total = schedule(config, len(examples))
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("no parameter of the model requires grad: nothing to train")
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    scheduler = get_cosine_schedule_with_warmup(
        optimizer, int(config.warmup_ratio * total), total
    )
    run_id = fingerprint(config, len(examples), model)
    step, log = 0, []
    found = checkpoint.latest(checkpoint_dir, run_id) if checkpoint_dir else None
    if found:
        state = checkpoint.restore(found, model, optimizer, scheduler, accelerator.process_index)
        step, log = state["step"], list(state["log"])
    resumed_from = step
    lengths = [len(example.input_ids) for example in examples]
    batches, batches_epoch = [], -1
    wrapped, optimizer = accelerator.prepare(model, optimizer)
    wrapped.train()
    rank, world = accelerator.process_index, accelerator.num_processes
    started, samples = time.perf_counter(), 0
    bar = tqdm(total=total, initial=step, desc="train", mininterval=5,
               disable=not accelerator.is_main_process)
    while step < total and (stop_after is None or step < stop_after):
        epoch, within = divmod(step, per_epoch)
        if epoch != batches_epoch:
            batches = epoch_batches(lengths, config.batch_size, config.seed, epoch,
                                    config.length_window)
            batches_epoch = epoch
        chunk = batches[within]
        batch = training_batch([examples[i] for i in chunk[rank::world]], patches, pad_id)
        loss = wrapped(**batch).loss
        accelerator.backward(loss)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        samples += len(chunk)
        mean_loss = accelerator.reduce(loss.detach(), reduction="mean").item()
        if step % config.log_every == 0 or step == total:
            log.append({"step": step, "epoch": round(step / per_epoch, 4), "loss": mean_loss,
                        "lr": scheduler.get_last_lr()[0]})
        bar.update(1)
        bar.set_postfix(loss=f"{mean_loss:.3f}", refresh=False)
        if checkpoint_dir and config.checkpoint_every and step % config.checkpoint_every == 0:
            checkpoint.save(checkpoint_dir, step, accelerator.unwrap_model(wrapped), optimizer,
                            scheduler, {"fingerprint": run_id, "log": log}, rank,
                            accelerator.is_main_process)
            accelerator.wait_for_everyone()
    bar.close()
    wrapped.eval()
    return TrainResult(step, samples, time.perf_counter() - started, resumed_from, log)


def write_loss_log(log: list[dict], path: Path) -> None:
    """The loss curve as CSV (step, epoch, loss, lr) for `dvc plots`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["step,epoch,loss,lr"] + [
        f"{row['step']},{row['epoch']},{row['loss']:.6f},{row['lr']:.3e}" for row in log
    ]
    path.write_text("\n".join(lines) + "\n")
