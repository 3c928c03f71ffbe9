"""Training checkpoints: trainable weights, optimizer, scheduler, step, loss log and RNG.

A checkpoint is a folder `step-NNNNNN/`. On one device or under DDP it is compact:
`trainable.safetensors` (the parameters that train, read through
`accelerator.get_state_dict`), `optimizer-<rank>.pt` and `state.pt` (plain state dicts:
tensors, numbers, strings; read back with `weights_only=True`) and `rng-<rank>.pt` per
process: the state of every random generator it draws from (torch's on the CPU and on
every GPU, numpy's, Python's `random`), so a resumed run draws what it would have drawn. Under DeepSpeed or FSDP, where parameters and optimizer state are sharded across
processes, the model and optimizer go through `accelerator.save_state` / `load_state`
(folder `accelerate/`) instead. `COMPLETE` is written last. The run's fingerprint (settings,
data hash, trainable parameters) is stored in `state.pt`: a checkpoint of another run is
never resumed.
"""
from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from tinyemo import paths

PREFIX = "step-"
SHARDED_STATE = "accelerate"
CHECKPOINTS = "checkpoints"  # folder beside a model folder outside models/mmllm


def checkpoint_dir(out_dir: Path) -> Path:
    """Where the run that saves to `out_dir` keeps its checkpoints: for a stage's model
    (`models/mmllm/<stage>[/<connector>]`) under `paths.CHECKPOINTS`, the same path;
    elsewhere a `checkpoints/` folder beside it."""
    out = Path(out_dir)
    try:
        inside = out.resolve().relative_to(paths.MMLLM_MODELS.resolve())
    except ValueError:
        return out.parent / CHECKPOINTS / out.name
    return paths.CHECKPOINTS / inside


def rng_state() -> dict:
    """Every random generator's state (tensors, numbers and tuples: saved without pickles)."""
    _, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "gauss": float(gauss)}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Put back what `rng_state` returned (the GPUs' states where the GPUs are there)."""
    torch.set_rng_state(state["torch"])
    random.setstate(_as_tuple(state["python"]))
    if "numpy" in state:
        numpy = state["numpy"]
        np.random.set_state(("MT19937", numpy["keys"].numpy().astype(np.uint32), numpy["pos"],
                             numpy["has_gauss"], numpy["gauss"]))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The parameters that require grad, cloned (tied weights become separate tensors)."""
    return {name: p.detach().clone().contiguous() for name, p in model.named_parameters()
            if p.requires_grad}


def always_saved(model: torch.nn.Module) -> set[str]:
    """Parameters every saved MM-LLM holds: the connector's and the LoRA adapters'."""
    return {name for name, _ in model.named_parameters()
            if name.startswith("connector.") or "lora_" in name}


def load_trainable(model: torch.nn.Module, state: dict[str, torch.Tensor],
                   expected: Iterable[str] | None = None) -> None:
    """Put saved weights into `model`. Refused: a weight the model lacks, and a missing one
    of `expected` (default: the connector and the LoRA adapters), which would otherwise keep
    its random initial value silently."""
    params = dict(model.named_parameters())
    unknown = sorted(set(state) - set(params))
    if unknown:
        raise KeyError(f"saved weights {unknown[:5]} do not exist in the model")
    expected = always_saved(model) if expected is None else set(expected)
    missing = sorted(expected - set(state))
    if missing:
        raise KeyError(
            f"the weights file lacks {len(missing)} weight(s) of the model, e.g. {missing[:5]}; "
            "it is incomplete or from another model: re-run the stage that wrote it"
        )
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value)


def is_sharded(accelerator) -> bool:
    from accelerate.utils import DistributedType

    return accelerator.distributed_type in (DistributedType.DEEPSPEED, DistributedType.FSDP)


def _trainable_names(accelerator, wrapped) -> list[str]:
    return [n for n, p in accelerator.unwrap_model(wrapped).named_parameters() if p.requires_grad]


def save(folder: Path, step: int, accelerator, wrapped, optimizer, scheduler, extra: dict,
         keep: int = 1) -> Path:
    """Write the checkpoint of `step` (every process calls this); keep the newest `keep`."""
    target = Path(folder) / f"{PREFIX}{step:06d}"
    rank, is_main = accelerator.process_index, accelerator.is_main_process
    if is_main:
        target.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()
    torch.save(rng_state(), target / f"rng-{rank}.pt")
    if is_sharded(accelerator):
        accelerator.save_state(str(target / SHARDED_STATE))
    else:
        state = accelerator.get_state_dict(wrapped)
        if is_main:
            names = _trainable_names(accelerator, wrapped)
            save_file({n: state[n].detach().clone().contiguous() for n in names},
                      target / "trainable.safetensors")
        torch.save(optimizer.state_dict(), target / f"optimizer-{rank}.pt")
    accelerator.wait_for_everyone()
    if is_main:
        torch.save({"step": step, "scheduler": scheduler.state_dict(), **extra}, target / "state.pt")
        (target / "COMPLETE").touch()
        for old in sorted(Path(folder).glob(f"{PREFIX}*"))[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
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


def restore(checkpoint: Path, accelerator, wrapped, optimizer, scheduler) -> dict:
    """Load a checkpoint into the prepared model and optimizer, the scheduler and the RNG;
    return its state."""
    checkpoint, rank = Path(checkpoint), accelerator.process_index
    if (checkpoint / SHARDED_STATE).exists():
        accelerator.load_state(str(checkpoint / SHARDED_STATE))
    else:
        model = accelerator.unwrap_model(wrapped)
        load_trainable(model, load_file(checkpoint / "trainable.safetensors"),
                       expected=_trainable_names(accelerator, wrapped))
        own = checkpoint / f"optimizer-{rank}.pt"
        optimizer.load_state_dict(torch.load(own if own.exists() else checkpoint / "optimizer-0.pt",
                                             weights_only=True))
    state = torch.load(checkpoint / "state.pt", weights_only=True)
    scheduler.load_state_dict(state["scheduler"])
    rng_file = checkpoint / f"rng-{rank}.pt"
    if rng_file.exists():
        set_rng_state(torch.load(rng_file, weights_only=True))
    return state


def _as_tuple(value):
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value
