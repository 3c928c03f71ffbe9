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

`load_folder_embedding_table(folder)` does the same for a model folder on disk (a
`save_pretrained` folder with its tokenizer): the key is the one of the folder's architecture
(`config.json`'s `model_type`, see `ARCHITECTURE_KEYS`).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from huggingface_hub import hf_hub_download, try_to_load_from_cache
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
ARCHITECTURE_KEYS = {  # config.json `model_type` -> the name of its input-embedding tensor
    "openelm": "transformer.token_embeddings.weight",
    "llama": "model.embed_tokens.weight",
    "phi": "model.embed_tokens.weight",
    "phi-msft": "transformer.embd.wte.weight",
}


class EmbeddingTableError(RuntimeError, TinyEmoError):
    """The embedding table cannot be found or fetched; the message says what to do."""


class HubUnreachableError(EmbeddingTableError):
    """A hub file that is neither in the local cache nor downloadable (offline, or gated)."""


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
        if _known_missing(repo, filename, revision):  # an earlier online run found no such file
            raise FileNotFoundError(f"{repo}@{revision or 'main'}/{filename}") from None
        raise HubUnreachableError(
            f"cannot fetch {filename} of {repo}@{revision or 'main'}: not in the local cache and "
            f"the hub is not reachable or disabled (HF_HUB_OFFLINE); run once with the hub ({err})"
        ) from None
    except EntryNotFoundError:
        raise FileNotFoundError(f"{repo}@{revision or 'main'}/{filename}") from None


def _known_missing(repo: str, filename: str, revision: str | None) -> bool:
    """Whether the local hub cache records that `filename` does not exist at `revision`
    (offline, a single-file checkpoint's missing index is known this way)."""
    cached = try_to_load_from_cache(repo, filename, revision=revision or None)
    return cached is not None and not isinstance(cached, str)


def commit_of(path: Path) -> str:
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


def _choose_key(key: str | None, keys, where: str) -> str:
    """`key` if the checkpoint holds it; without one, the first of EMBEDDING_KEYS present."""
    if key is None:
        return _pick_key(keys, where)
    if key not in keys:
        raise EmbeddingTableError(f"{where} has no tensor {key!r}, the input embeddings of its "
                                  "architecture; is it a complete checkpoint?")
    return key


def read_embedding_table(repo: str, revision: str | None = None, *, folder: Path | None = None,
                         key: str | None = None) -> EmbeddingTable:
    """The input-embedding tensor of a checkpoint, reading the index and one weights file only
    (`key`: the tensor's name; None: the first of EMBEDDING_KEYS present)."""
    from safetensors import safe_open

    try:
        index_path = _fetch(repo, INDEX_FILE, revision, folder)
    except FileNotFoundError:
        filename = SINGLE_FILE
    else:
        weight_map = json.loads(index_path.read_text()).get("weight_map", {})
        key = _choose_key(key, weight_map, f"{repo} ({INDEX_FILE})")
        filename = weight_map[key]
    try:
        path = _fetch(repo, filename, revision, folder)
    except FileNotFoundError:
        raise EmbeddingTableError(
            f"{repo}@{revision or 'main'} has neither {INDEX_FILE} nor {SINGLE_FILE}: only "
            "safetensors checkpoints can be read without loading the model"
        ) from None
    with safe_open(str(path), framework="pt") as weights:
        key = _choose_key(key, set(weights.keys()), f"{repo} ({filename})")
        table = weights.get_tensor(key)
    return EmbeddingTable(table.float(), key, filename, commit_of(path))


def load_tokenizer(spec: registry.LLMSpec, folder: Path | None = None):
    """The LLM's tokenizer at its pinned revision (OpenELM borrows Llama-2's)."""
    from transformers import AutoTokenizer

    if folder is not None:
        return AutoTokenizer.from_pretrained(folder)
    source = spec.tokenizer or spec.source
    revision = spec.tokenizer_revision if spec.tokenizer else spec.revision
    try:
        return AutoTokenizer.from_pretrained(source, revision=revision or None)
    except OSError as err:
        raise HubUnreachableError(
            f"cannot load the tokenizer {source}@{revision or 'main'} of {spec.name}: it is not in "
            "the local cache and the hub is not reachable or disabled (HF_HUB_OFFLINE), or the "
            "repository is gated (Llama-2's: accept its licence on huggingface.co and run "
            f"`huggingface-cli login`); run once with the hub ({err})"
        ) from None


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


def _folder_tokenizer(folder: Path):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(folder)
    except Exception as err:  # transformers' many ways of failing on an incomplete folder
        raise EmbeddingTableError(
            f"{folder} holds no tokenizer transformers can load ({type(err).__name__}: {err}); save the "
            "model's tokenizer into it (`tokenizer.save_pretrained(folder)`; OpenELM uses Llama-2's, "
            "meta-llama/Llama-2-7b-hf)"
        ) from None


def load_folder_embedding_table(folder: str | Path):
    """(tokenizer, embedding weight [V, d] float32) of a model folder on disk, model never loaded.

    The folder holds what `save_pretrained` writes (config.json, model.safetensors or shards
    with their index) and the tokenizer files; only the input-embedding tensor is read."""
    folder = Path(folder)
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise EmbeddingTableError(f"{folder} is not a model folder: it has no config.json")
    try:
        model_type = json.loads(config_path.read_text()).get("model_type", "")
    except (json.JSONDecodeError, AttributeError) as err:
        raise EmbeddingTableError(f"{config_path} is not a readable model config ({err})") from None
    table = read_embedding_table(folder.name, folder=folder, key=ARCHITECTURE_KEYS.get(model_type))
    return _folder_tokenizer(folder), table.weight
