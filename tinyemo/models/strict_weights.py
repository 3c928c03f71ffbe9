"""A whole LLM's weights in safetensors files, read strictly and written back.

A checkpoint is `model.safetensors`, or shards listed by `model.safetensors.index.json`
(which names the file of every tensor). Loading is strict: the files must hold exactly the
tensors the model has, each with the model's shape. A tensor the model lacks, one the files
lack, or a shape that differs is an error naming the tensor and the file, never a layer
left at its random initialisation. Weights tied to another (a head that is the embedding
table) are one tensor, stored under the first name the model gives it. Tensors are copied
one at a time into the model's own parameters, in the model's dtype, so loading never
holds a second copy of the model.

Hub checkpoints are fetched with `huggingface_hub` (the safetensors files only, never code)
at the commit the registry pins; the commit actually read is returned beside the folder.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from tinyemo.errors import TinyEmoError
from tinyemo.models.embedding_table import INDEX_FILE, SINGLE_FILE
from tinyemo.models.folders import ModelNotPreparedError

SHOWN = 5  # tensor names listed in an error message


class CheckpointMismatchError(ValueError, TinyEmoError):
    """A checkpoint's tensors are not the model's: the message names the tensor and file."""


def model_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter and persistent buffer by name, a tied one under its first name only."""
    tensors: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for name, tensor in model.state_dict(keep_vars=True).items():
        if id(tensor) not in seen:
            seen.add(id(tensor))
            tensors[name] = tensor
    return tensors


def weight_files(folder: Path) -> dict[str, Path]:
    """The file holding each tensor of the checkpoint in `folder`."""
    from safetensors import safe_open

    folder = Path(folder)
    if (folder / INDEX_FILE).exists():
        weight_map = json.loads((folder / INDEX_FILE).read_text()).get("weight_map", {})
        return {key: folder / name for key, name in weight_map.items()}
    if not (folder / SINGLE_FILE).exists():
        raise ModelNotPreparedError(f"{folder} holds neither {SINGLE_FILE} nor {INDEX_FILE}: "
                                    "it is not a safetensors checkpoint")
    with safe_open(str(folder / SINGLE_FILE), framework="pt") as weights:
        return {key: folder / SINGLE_FILE for key in weights.keys()}


def _names(keys) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:SHOWN]) + (f" and {len(keys) - SHOWN} more" if len(keys) > SHOWN else "")


def load_strict(model: nn.Module, folder: Path) -> list[Path]:
    """Copy the checkpoint in `folder` into `model`; return the files read."""
    from safetensors import safe_open

    files = weight_files(folder)
    wanted = model_tensors(model)
    missing, extra = set(wanted) - set(files), set(files) - set(wanted)
    if missing or extra:
        where = ", ".join(sorted({files[k].name for k in extra} or {p.name for p in files.values()}))
        problems = ([f"missing {_names(missing)}"] if missing else []) + (
            [f"not in the model {_names(extra)}"] if extra else [])
        raise CheckpointMismatchError(
            f"{folder} ({where}) does not hold a {type(model).__name__} of this configuration: "
            f"{'; '.join(problems)}. Use the config.json written with these weights")
    by_file: dict[Path, list[str]] = {}
    for key, path in files.items():
        by_file.setdefault(path, []).append(key)
    with torch.no_grad():
        for path, keys in by_file.items():
            with safe_open(str(path), framework="pt") as weights:
                for key in keys:
                    target = wanted[key]
                    shape = tuple(weights.get_slice(key).get_shape())
                    if shape != tuple(target.shape):
                        raise CheckpointMismatchError(
                            f"tensor {key} in {path} has shape {shape}, the model's is "
                            f"{tuple(target.shape)}: the checkpoint belongs to another configuration")
                    target.copy_(weights.get_tensor(key))
    return sorted(by_file)


def save_weights(model: nn.Module, folder: Path, dtype: torch.dtype | None = None) -> Path:
    """Write every tensor of `model` (in `dtype`, default the model's) to one safetensors file."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {name: t.detach().to(dtype or t.dtype).contiguous()
               for name, t in model_tensors(model).items()}
    save_file(tensors, folder / SINGLE_FILE, metadata={"format": "pt"})
    return folder / SINGLE_FILE


def fetch_checkpoint(repo: str, revision: str | None) -> tuple[Path, str]:
    """(local folder, commit) of the safetensors checkpoint of a hub repository."""
    import re

    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        folder = Path(snapshot_download(repo, revision=revision or None,
                                        allow_patterns=[INDEX_FILE, "model*.safetensors"]))
    except LocalEntryNotFoundError as err:
        raise ModelNotPreparedError(
            f"the weights of {repo}@{revision or 'main'} are not in the local hub cache and the hub "
            f"is not reachable or disabled (HF_HUB_OFFLINE); run once with the hub ({err})") from None
    match = re.search(r"snapshots[/\\]([0-9a-f]{40})", str(folder))
    return folder, match.group(1) if match else ""
