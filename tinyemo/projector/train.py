"""Training the Metric Projector on precomputed features, following a `Recipe`
(tinyemo/projector/hyperparameters.py; `PAPER_RECIPE` is the paper's).

Where it runs. On the accelerator when there is one (`default_device`: cuda if available,
else the CPU), or on the `device` given. The features are copied there once; each step
indexes its batch there, so what crosses from the CPU per step is the batch's row indices,
labels and target anchors (drawn on the CPU, see below: at most batch x anchor width numbers),
and the loss comes back once per epoch. The trained model stays on that device; scoring
(`tinyemo.projector.evaluate.project`) sends its batches to the model's device, whatever it is.

Threads. On the CPU, training uses the process's torch intra-op threads, which every stage
sets from `base.threads` (2 in the default profile). Stages that train in several processes
at once (the folds of selection, the cells of the ablation) split those threads between the
processes (`threads_per_worker`), so a 2-core machine runs 2 processes of 1 thread, not 4
threads. At batch 32 the matrices are small: a second thread gains little at the default
profile's widths (576), more at the paper's (1280-2560; benchmarks/projector_throughput.py).
Idle OpenMP threads must not spin: the stage runner sets OMP_WAIT_POLICY=PASSIVE (without it,
on cores shared with other processes, 2 threads trained 2 to 5 times slower than 1).

Determinism. Training is seeded: the seed fixes the initial weights (drawn on the CPU, then
moved), the dropout masks, the batch order and the synonym swaps (a CPU generator, so the
order is the same on every device). With a fixed number of threads, the CPU kernels split
their work the same way on every run (static OpenMP schedules; MKL's GEMM partitions by
thread count), so the same params on the same machine give the same weights and metrics,
bit for bit (tests/test_projector_train.py trains twice on 2 threads and compares). A
different thread count or device changes the order of floating-point sums: the weights
then differ in their last bits, and the metrics by at most seed noise (on the Emotion6
features, 1 and 2 threads gave the same top-1 on every held-out split, for every recipe
of the projector and paper_table stages). On a GPU, cuBLAS is run-to-run reproducible for the same shapes on one
stream; this code does not turn on `torch.use_deterministic_algorithms`.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from tinyemo.projector.anchors import AnchorSet
from tinyemo.projector.evaluate import top1
from tinyemo.projector.hyperparameters import PAPER_RECIPE, Recipe
from tinyemo.projector.losses import make_loss
from tinyemo.projector.model import MetricProjector

__all__ = ["PAPER_RECIPE", "Recipe", "ProjectorFit", "train_projector", "default_device",
           "torch_threads", "threads_per_worker", "steps_per_epoch", "steps_per_second"]


@dataclass
class ProjectorFit:
    model: MetricProjector
    history: list[dict] = field(default_factory=list)  # one row per epoch
    seconds: float = 0.0  # wall time of training (excluding the per-epoch validation)
    epoch_seconds: list[float] = field(default_factory=list)  # the same, per epoch


def default_device() -> torch.device:
    """The accelerator when there is one (cuda), else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@contextlib.contextmanager
def torch_threads(n: int):
    """Run the block with `n` torch intra-op threads, then restore the previous setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, int(n)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def threads_per_worker(threads: int, workers: int) -> int:
    """Each of `workers` processes' share of `threads` (at least one)."""
    return max(1, int(threads) // max(1, int(workers)))


def steps_per_epoch(n_rows: int, batch_size: int) -> int:
    """Optimizer steps in one epoch over `n_rows` (the ragged last batch is dropped)."""
    return max(1, n_rows // batch_size)


def _batches(n: int, batch_size: int, generator: torch.Generator):
    order = torch.randperm(n, generator=generator)
    stop = n - n % batch_size if n >= batch_size else n  # drop the ragged last batch
    for start in range(0, stop, batch_size):
        batch = order[start:start + batch_size]
        if len(batch) > 1:  # BatchNorm needs two samples
            yield batch


def train_projector(
    pooled: torch.Tensor,
    labels: torch.Tensor,
    anchor_set: AnchorSet,
    recipe: Recipe = Recipe(),
    *,
    val: tuple[torch.Tensor, torch.Tensor] | None = None,
    device: str | torch.device | None = None,
) -> ProjectorFit:
    """Train a projector from `pooled [N, D]` features with label ids into `anchor_set`,
    on `device` (default: `default_device()`); the returned model stays there."""
    if len(pooled) != len(labels):
        raise ValueError(f"{len(pooled)} feature rows but {len(labels)} labels")
    if len(pooled) < 2:
        raise ValueError("training needs at least two samples (BatchNorm)")
    device = torch.device(device) if device is not None else default_device()
    torch.manual_seed(recipe.seed)
    generator = torch.Generator().manual_seed(recipe.seed)
    labels = labels.long()
    features = pooled.to(device, torch.float32)
    model = MetricProjector(pooled.shape[1], anchor_set.dim, width=recipe.width, depth=recipe.depth,
                            dropout=recipe.dropout, normalize_input=recipe.normalize_input).to(device)
    loss_fn = make_loss(recipe.loss, temperature=recipe.temperature,
                        label_smoothing=recipe.label_smoothing)
    per_epoch = steps_per_epoch(len(pooled), recipe.batch_size)
    fused = {"fused": True} if device.type == "cuda" else {"foreach": True}
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.max_lr, weight_decay=recipe.weight_decay,
                                  **fused)
    total_steps = per_epoch * recipe.epochs
    pct_start = recipe.pct_start
    if pct_start * total_steps == 1.0:  # OneCycleLR's warm-up would end at step 0: it divides by zero
        pct_start = 1.01 / total_steps
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=recipe.max_lr, total_steps=total_steps, pct_start=pct_start, anneal_strategy="cos",
    )
    averaged = (AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(recipe.ema_decay), use_buffers=True)
                if recipe.ema_decay > 0 else None)
    class_anchors = anchor_set.anchors.to(device)
    result = ProjectorFit(model)
    for epoch in range(1, recipe.epochs + 1):
        started = time.perf_counter()
        model.train()
        loss_sum, n_steps = torch.zeros((), dtype=torch.float64, device=device), 0
        for step, batch in enumerate(_batches(len(pooled), recipe.batch_size, generator)):
            if step >= per_epoch:
                break
            y = labels[batch]
            targets = anchor_set.training_targets(y, recipe.synonym_p, generator)  # CPU generator: same swaps anywhere
            on_device = batch.to(device, non_blocking=True)
            loss = loss_fn(model(features[on_device]), targets.to(device, non_blocking=True),
                           y.to(device, non_blocking=True), class_anchors)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            if averaged is not None:
                averaged.update_parameters(model)
            loss_sum += loss.detach()  # summed in float64 on the device: one transfer per epoch
            n_steps += 1
        row = {"epoch": epoch, "train_loss": loss_sum.item() / max(1, n_steps)}
        result.epoch_seconds.append(time.perf_counter() - started)
        if val is not None:
            current = averaged.module if averaged is not None else model
            row["val_top1"] = top1(current, val[0].float(), val[1].long(), anchor_set.anchors)
        result.history.append(row)
    result.seconds = sum(result.epoch_seconds)
    if averaged is not None:
        result.model = averaged.module
    result.model.eval()
    return result


def steps_per_second(in_dim: int, anchor_set: AnchorSet, recipe: Recipe = Recipe(), *, steps: int = 30,
                     device: str | torch.device | None = None) -> float:
    """Training steps per second of `recipe` at these shapes (`in_dim` features into the
    anchors' width and label count), measured on random features: two epochs of `steps`
    steps, the second timed (the first pays the one-time costs: allocation, kernel choice)."""
    generator = torch.Generator().manual_seed(0)
    n = steps * recipe.batch_size
    pooled = torch.randn(n, in_dim, generator=generator)
    labels = torch.randint(len(anchor_set.label_names), (n,), generator=generator)
    fit = train_projector(pooled, labels, anchor_set, recipe.but(epochs=2), device=device)
    return steps / fit.epoch_seconds[-1]
