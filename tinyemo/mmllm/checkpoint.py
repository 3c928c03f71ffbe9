"""Training checkpoints: trainable weights, optimizer, scheduler, step, loss log and RNG.

A checkpoint is a folder `step-NNNNNN/` with `trainable.safetensors` (the parameters that
train), `optimizer.pt` and `state.pt` (plain state dicts: tensors, numbers, strings; read
back with `weights_only=True`) and `rng-<rank>.pt` per process. `fingerprint` names the
training run (config, data size, trainable parameters): a checkpoint of another run is
never resumed.
"""
from __future__ import annotations

import random
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

PREFIX = "step-"


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The parameters that require grad, cloned (tied weights become separate tensors)."""
    return {name: p.detach().clone().contiguous() for name, p in model.named_parameters()
            if p.requires_grad}


def load_trainable(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    params = dict(model.named_parameters())
    unknown = sorted(set(state) - set(params))
    if unknown:
        raise KeyError(f"saved weights {unknown[:5]} do not exist in the model")
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value)


def save(folder: Path, step: int, model, optimizer, scheduler, extra: dict, rank: int,
         is_main: bool, keep: int = 1) -> Path:
    """Write the checkpoint of `step`; keep only the newest `keep` checkpoints."""
    target = Path(folder) / f"{PREFIX}{step:06d}"
    target.mkdir(parents=True, exist_ok=True)
    torch.save({"torch": torch.get_rng_state(), "python": random.getstate()},
               target / f"rng-{rank}.pt")
    if is_main:
        save_file(trainable_state(model), target / "trainable.safetensors")
        torch.save(optimizer.state_dict(), target / "optimizer.pt")
        torch.save({"step": step, "scheduler": scheduler.state_dict(), **extra}, target / "state.pt")
        (target / "COMPLETE").touch()
        for old in sorted(Path(folder).glob(f"{PREFIX}*"))[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return target


def latest(folder: Path, fingerprint: str) -> Path | None:
    """The newest complete checkpoint of the run named by `fingerprint`, if any."""
    for candidate in sorted(Path(folder).glob(f"{PREFIX}*"), reverse=True):
        if not (candidate / "COMPLETE").exists():
            continue
        state = torch.load(candidate / "state.pt", weights_only=True)
        if state.get("fingerprint") == fingerprint:
            return candidate
    return None


def restore(checkpoint: Path, model, optimizer, scheduler, rank: int) -> dict:
    """Load a checkpoint into the model, optimizer, scheduler and RNG; return its state."""
    load_trainable(model, load_file(checkpoint / "trainable.safetensors"))
    optimizer.load_state_dict(torch.load(checkpoint / "optimizer.pt", weights_only=True))
    state = torch.load(checkpoint / "state.pt", weights_only=True)
    scheduler.load_state_dict(state["scheduler"])
    rng_file = checkpoint / f"rng-{rank}.pt"
    if rng_file.exists():
        rng = torch.load(rng_file, weights_only=True)
        torch.set_rng_state(rng["torch"])
        random.setstate(_as_tuple(rng["python"]))
    return state


def _as_tuple(value):
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value
