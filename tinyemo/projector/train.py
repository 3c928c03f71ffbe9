"""Training the Metric Projector on precomputed features, following a `Recipe`
(tinyemo/projector/hyperparameters.py; `PAPER_RECIPE` is the paper's).

Training is seeded and deterministic: the seed fixes the initial weights, the dropout masks,
the batch order and the synonym swaps. It runs on one intra-op thread: the matrices are
small (batch 32 x a few hundred), so more threads gain little, and on a busy machine
spinning OpenMP threads made a 3 s training take 30 s.
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

__all__ = ["PAPER_RECIPE", "Recipe", "ProjectorFit", "train_projector"]


@dataclass
class ProjectorFit:
    model: MetricProjector
    history: list[dict] = field(default_factory=list)  # one row per epoch
    seconds: float = 0.0  # wall time of training (excluding the per-epoch validation)


@contextlib.contextmanager
def one_thread():
    """Run the block with one torch intra-op thread, then restore the previous setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


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
) -> ProjectorFit:
    """Train a projector from `pooled [N, D]` features with label ids into `anchor_set`."""
    with one_thread():
        return _train(pooled, labels, anchor_set, recipe, val)


def _train(pooled, labels, anchor_set: AnchorSet, recipe: Recipe, val) -> ProjectorFit:
    if len(pooled) != len(labels):
        raise ValueError(f"{len(pooled)} feature rows but {len(labels)} labels")
    if len(pooled) < 2:
        raise ValueError("training needs at least two samples (BatchNorm)")
    torch.manual_seed(recipe.seed)
    generator = torch.Generator().manual_seed(recipe.seed)
    pooled, labels = pooled.float(), labels.long()
    model = MetricProjector(pooled.shape[1], anchor_set.dim, width=recipe.width, depth=recipe.depth,
                            dropout=recipe.dropout, normalize_input=recipe.normalize_input)
    loss_fn = make_loss(recipe.loss, temperature=recipe.temperature,
                        label_smoothing=recipe.label_smoothing)
    steps_per_epoch = max(1, len(pooled) // recipe.batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.max_lr, weight_decay=recipe.weight_decay,
                                  foreach=True)
    total_steps = steps_per_epoch * recipe.epochs
    pct_start = recipe.pct_start
    if pct_start * total_steps == 1.0:  # OneCycleLR's warm-up would end at step 0: it divides by zero
        pct_start = 1.01 / total_steps
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=recipe.max_lr, total_steps=total_steps, pct_start=pct_start, anneal_strategy="cos",
    )
    averaged = (AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(recipe.ema_decay), use_buffers=True)
                if recipe.ema_decay > 0 else None)
    class_anchors = anchor_set.anchors
    result = ProjectorFit(model)
    for epoch in range(1, recipe.epochs + 1):
        started = time.perf_counter()
        model.train()
        losses = []
        for step, batch in enumerate(_batches(len(pooled), recipe.batch_size, generator)):
            if step >= steps_per_epoch:
                break
            y = labels[batch]
            targets = anchor_set.training_targets(y, recipe.synonym_p, generator)
            loss = loss_fn(model(pooled[batch]), targets, y, class_anchors)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            if averaged is not None:
                averaged.update_parameters(model)
            losses.append(loss.item())
        result.seconds += time.perf_counter() - started
        row = {"epoch": epoch, "train_loss": sum(losses) / max(1, len(losses))}
        if val is not None:
            current = averaged.module if averaged is not None else model
            row["val_top1"] = top1(current, val[0].float(), val[1].long(), class_anchors)
        result.history.append(row)
    if averaged is not None:
        result.model = averaged.module
    result.model.eval()
    return result
