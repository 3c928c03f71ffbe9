"""Read only the input-embedding table of a hub LLM: one tensor, never the whole model.

A text anchor needs the LLM's token-embedding rows and its tokenizer, nothing else, so each
of the paper's LLMs (OpenELM-270M/450M, TinyLlama-1.1B, Phi-2) is a cheap anchor source:

1. `model.safetensors.index.json` (sharded checkpoints) names the shard holding each tensor;
   the shard holding the embedding key is downloaded, and only it. A checkpoint without an
   index is one `model.safetensors` file, downloaded as is.
2. `safetensors.safe_open` reads that one tensor from the file (memory-mapped).

Files come from `huggingface_hub.hf_hub_download` at the revision pinned in the registry (a
commit hash), or from a local folder holding the same files (`folder=`). No modelling code
runs, so OpenELM's `trust_remote_code` is not needed here. The embedding key differs by
architecture; the first of `EMBEDDING_KEYS` present is read.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from huggingface_hub import hf_hub_download
from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

from tinyemo.errors import TinyEmoError
from tinyemo.models import registry

INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"
EMBEDDING_KEYS = (
    "model.embed_tokens.weight",  # Llama (TinyLlama), Phi-2 (transformers' Phi), SmolLM2
    "transformer.token_embeddings.weight",  # OpenELM (modeling_openelm.py)
    "transformer.embd.wte.weight",  # Phi-2 in its original (pre-transformers) layout
)


class EmbeddingTableError(RuntimeError, TinyEmoError):
    """The embedding table cannot be found or fetched; the message says what to do."""


@dataclass
class EmbeddingTable:
    weight: torch.Tensor  # [V, d] float32
    key: str  # the tensor's name in the checkpoint
    filename: str  # the one checkpoint file read
    commit: str  # the revision the files came from ("" for a local folder)


def _fetch(repo: str, filename: str, revision: str | None, folder: Path | None) -> Path:
    """One file of the checkpoint (FileNotFoundError when the checkpoint has no such file)."""
    if folder is not None:
        path = Path(folder) / filename
        if not path.exists():
            raise FileNotFoundError(path)
        return path
    try:
        return Path(hf_hub_download(repo, filename, revision=revision or None))
    except LocalEntryNotFoundError as err:
        raise EmbeddingTableError(
            f"cannot fetch {filename} of {repo}@{revision or 'main'}: not in the local cache and "
            f"the hub is not reachable or disabled (HF_HUB_OFFLINE); run once with the hub ({err})"
        ) from None
    except EntryNotFoundError:
        raise FileNotFoundError(f"{repo}@{revision or 'main'}/{filename}") from None


def _commit_of(path: Path) -> str:
    """The commit hash of a file in the hub cache (`.../snapshots/<commit>/<file>`)."""
    match = re.search(r"snapshots[/\\]([0-9a-f]{40})[/\\]", str(path))
    return match.group(1) if match else ""


def _pick_key(keys, where: str) -> str:
    for key in EMBEDDING_KEYS:
        if key in keys:
            return key
    near = sorted(k for k in keys if "emb" in k or "wte" in k)
    raise EmbeddingTableError(
        f"no input-embedding tensor in {where}: looked for {', '.join(EMBEDDING_KEYS)}; "
        f"tensors with embedding-like names: {near or 'none'}; add the key to EMBEDDING_KEYS"
    )


def read_embedding_table(repo: str, revision: str | None = None, *,
                         folder: Path | None = None) -> EmbeddingTable:
    """The input-embedding tensor of a checkpoint, reading the index and one weights file only."""
    from safetensors import safe_open

    key = None
    try:
        index_path = _fetch(repo, INDEX_FILE, revision, folder)
    except FileNotFoundError:
        filename = SINGLE_FILE
    else:
        weight_map = json.loads(index_path.read_text()).get("weight_map", {})
        key = _pick_key(weight_map, f"{repo} ({INDEX_FILE})")
        filename = weight_map[key]
    try:
        path = _fetch(repo, filename, revision, folder)
    except FileNotFoundError:
        raise EmbeddingTableError(
            f"{repo}@{revision or 'main'} has neither {INDEX_FILE} nor {SINGLE_FILE}: only "
            "safetensors checkpoints can be read without loading the model"
        ) from None
    with safe_open(str(path), framework="pt") as weights:
        key = key or _pick_key(set(weights.keys()), f"{repo} ({filename})")
        table = weights.get_tensor(key)
    return EmbeddingTable(table.float(), key, filename, _commit_of(path))


def load_tokenizer(spec: registry.LLMSpec, folder: Path | None = None):
    """The LLM's tokenizer at its pinned revision (OpenELM borrows Llama-2's)."""
    from transformers import AutoTokenizer

    if folder is not None:
        return AutoTokenizer.from_pretrained(folder)
    source = spec.tokenizer or spec.source
    revision = spec.tokenizer_revision if spec.tokenizer else spec.revision
    return AutoTokenizer.from_pretrained(source, revision=revision or None)


def load_hub_embedding_table(name: str, *, folder: Path | None = None):
    """(tokenizer, embedding weight [V, d] float32) of a registry hub LLM, model never loaded."""
    spec = registry.llm_spec(name)
    table = read_embedding_table(spec.source, spec.revision, folder=folder)
    if table.weight.shape[1] != spec.embed_dim:
        raise EmbeddingTableError(
            f"{name}: the embedding table read from {table.filename} ({table.key}) is "
            f"{tuple(table.weight.shape)}, the registry says width {spec.embed_dim}"
        )
    return load_tokenizer(spec, folder), table.weight
