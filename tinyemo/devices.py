"""Where inference runs, and in which precision.

Training places the model with `accelerate` (the accelerator's device, its mixed precision).
Everything that reads a model afterwards (evaluation, generation, `tinyemo explain`, the
bias stage's encoding) runs on the same kind of device: the GPU when there is one, else
the CPU. On a GPU it computes under `torch.autocast` in the precision the model trained in
(`bf16` or `fp16`, the profile's `mixed_precision`; the weights stay float32, as in
training); on the CPU always in float32. Inputs go where the model is (`to_model`), never
the other way round.
"""
from __future__ import annotations

from contextlib import nullcontext

import torch

AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}  # precision -> autocast dtype
FLOAT32 = ("no", "fp32")  # the names of full precision (mixed_precision, encode.dtype)


def inference_device() -> torch.device:
    """The GPU when there is one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def check_precision(precision: str) -> str:
    if precision not in AUTOCAST and precision not in FLOAT32:
        raise ValueError(f"unknown precision {precision!r}; valid: "
                         f"{', '.join(FLOAT32 + tuple(AUTOCAST))}")
    return precision


def autocast(device: torch.device | str, precision: str = "no"):
    """`torch.autocast` in `precision` on a GPU; full precision (no context) elsewhere."""
    device = torch.device(device)
    if device.type != "cuda" or check_precision(precision) in FLOAT32:
        return nullcontext()
    return torch.autocast("cuda", dtype=AUTOCAST[precision])


def model_device(model: torch.nn.Module) -> torch.device:
    """Where the model's parameters live (batches for it go there; the CPU for a model
    without any)."""
    weights = next(model.parameters(), None)
    return weights.device if weights is not None else torch.device("cpu")


def inference(model: torch.nn.Module):
    """The autocast context for running `model`: its device, and the precision it was
    trained in (`model.precision`, "no" when it has none)."""
    return autocast(model_device(model), getattr(model, "precision", "no"))


def place(model: torch.nn.Module, precision: str = "no",
          device: torch.device | str | None = None) -> torch.nn.Module:
    """Move `model` to `device` (default: `inference_device()`) and record the precision
    it runs in (`inference` reads it)."""
    model.to(device or inference_device())
    model.precision = check_precision(precision)
    return model
