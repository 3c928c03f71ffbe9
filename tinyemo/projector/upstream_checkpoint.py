"""The paper's released Metric Projectors: where they are, and their files read strictly.

The paper released four trained projectors on the Hugging Face hub (`RELEASED`); upstream's
`projector_mps/src/eval.py` downloads `<repo>/<name>.bin`. A `CheckpointRef` names one (a hub
repository, optionally at a revision and with another file name, or a local file).

**The file** is `torch.save(AlignmentMLP.state_dict())`, an `nn.Sequential` named `model`:

    model.0.weight [d, 768], model.0.bias [d]                  Linear(768, d)
    model.1.weight, .bias, .running_mean, .running_var,        BatchNorm1d(d)
            .num_batches_tracked
    model.4.weight [d, d], model.4.bias [d]                    Linear(d, d)

(`model.2`, GELU, and `model.3`, Dropout, hold nothing.) That is our `MetricProjector(768, d)`
on raw CLIP ViT-L/14 embeddings, with `mlp.` for `model.`. It is read with
`torch.load(weights_only=True)`, so no code a file carries can run, loaded strictly (every key,
every shape) and used in eval mode (running BatchNorm statistics, no dropout). d is the width of
the LLM's input embeddings: 1280 (OpenELM-270M), 1536 (OpenELM-450M), 2048 (TinyLlama), 2560
(Phi-2).
"""
from __future__ import annotations

import pickle
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import torch
from huggingface_hub import hf_hub_download
from huggingface_hub.errors import (
    EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError,
)

from tinyemo.errors import TinyEmoError
from tinyemo.models.embedding_table import HubUnreachableError, commit_of
from tinyemo.projector.model import MetricProjector

PREFIX = "upstream:"  # `--projector upstream:REF`
RELEASED: dict[str, str] = {  # hub repository -> the registry LLM whose embedding space it maps into
    "ggcristian/TinyEmo-CLIP-OpenELM-270M-Syn": "openelm-270m-instruct",
    "ggcristian/TinyEmo-CLIP-OpenELM-450M": "openelm-450m-instruct",
    "ggcristian/TinyEmo-CLIP-TinyLlama-1_1-Syn": "tinyllama-1.1b-chat",
    "ggcristian/TinyEmo-CLIP-Phi-2": "phi-2",
}
HUB_REF = re.compile(r"(?P<repo>[\w.-]+/[\w.-]+)(?:@(?P<revision>[\w.-]+))?(?:/(?P<file>[\w.-]+\.bin))?")


class UpstreamCheckpointError(ValueError, TinyEmoError):
    """An upstream checkpoint that cannot be read or used; the message says why."""


def default_file(repo: str) -> str:
    """`<name>.bin`, the file upstream's eval.py downloads from `<owner>/<name>`."""
    return f"{repo.split('/')[1]}.bin"


@dataclass(frozen=True)
class CheckpointRef:
    """Where a checkpoint is: a hub repository (`owner/name[@revision][/file.bin]`) or a local file."""

    text: str  # as given, without the `upstream:` prefix
    filename: str  # the file in the repository, or the local file's name
    repo: str | None = None
    revision: str | None = None
    path: Path | None = None  # a local file

    @classmethod
    def parse(cls, text: str) -> "CheckpointRef":
        text = text.removeprefix(PREFIX)
        local = Path(text).expanduser()
        if local.is_file():
            return cls(text, local.name, path=local)
        match = HUB_REF.fullmatch(text)
        if match and not text.startswith((".", "/", "~")) and not match["repo"].endswith(".bin"):
            return cls(text, match["file"] or default_file(match["repo"]), match["repo"], match["revision"])
        if text.endswith(".bin"):
            raise UpstreamCheckpointError(f"{PREFIX}{text}: there is no such file")
        raise UpstreamCheckpointError(
            f"{PREFIX}{text} names neither a hub repository (owner/name[@revision][/file.bin]) nor "
            f"a local .bin file; the released projectors are {', '.join(RELEASED)}")

    @property
    def released_llm(self) -> str | None:
        """The registry LLM of a released checkpoint, known by its repository or its file name."""
        if self.repo in RELEASED:
            return RELEASED[self.repo]
        return {default_file(repo): llm for repo, llm in RELEASED.items()}.get(self.filename)

    def fetch(self) -> tuple[Path, str]:
        """(the local file, the hub commit it came from; "" for a local file)."""
        if self.path is not None:
            return self.path, ""
        where = f"{self.filename} of {self.repo}@{self.revision or 'main'}"
        try:
            path = Path(hf_hub_download(self.repo, self.filename, revision=self.revision))
        except LocalEntryNotFoundError:
            raise HubUnreachableError(
                f"cannot fetch {where}: it is not in the local Hugging Face cache and the hub is "
                f"not reachable or disabled (HF_HUB_OFFLINE=1). Online, fetch it once with "
                f"`HF_HUB_OFFLINE=0 hf download {self.repo} {self.filename}`, or download the file "
                f"and pass {PREFIX}PATH.bin") from None
        except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError) as err:
            raise UpstreamCheckpointError(
                f"cannot fetch {where} ({type(err).__name__}); the released projectors are "
                f"{', '.join(RELEASED)}, each holding <name>.bin") from None
        return path, commit_of(path)


def _upstream_keys(ours: Mapping[str, torch.Tensor]) -> dict[str, str]:
    """upstream's key -> ours (`model.` -> `mlp.`)."""
    return {"model." + key.removeprefix("mlp."): key for key in ours}


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a `torch.save`d state dict, read without running any code from the file."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        if not zipfile.is_zipfile(path):
            raise UpstreamCheckpointError(f"{path} is not a file written by torch.save") from None
        raise UpstreamCheckpointError(
            f"{path} holds pickled Python objects besides tensors; checkpoints are read with "
            "torch.load(weights_only=True), which never runs code a file carries. Save the "
            "projector's state dict alone: torch.save(projector.state_dict(), path)") from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise UpstreamCheckpointError(f"{path} is not a readable torch.save file ({type(err).__name__})") from None
    if not isinstance(state, Mapping):
        raise UpstreamCheckpointError(f"{path} holds a {type(state).__name__}, not a state dict "
                                      "(a mapping of parameter names to tensors)")
    odd = {key: type(value).__name__ for key, value in state.items() if not isinstance(value, torch.Tensor)}
    if odd:
        raise UpstreamCheckpointError(f"{path}: the entries {odd} are not tensors; a projector's "
                                      "state dict holds tensors only")
    return dict(state)


def load_checkpoint(path: Path) -> MetricProjector:
    """Upstream's `AlignmentMLP` state dict, loaded strictly into a MetricProjector (eval mode)."""
    state = read_state_dict(path)
    expected = _upstream_keys(MetricProjector(1, 1).state_dict())
    missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or extra:
        raise UpstreamCheckpointError(
            f"{path} is not an upstream Metric Projector (Linear, BatchNorm1d, GELU, Dropout, "
            f"Linear under `model.`): missing keys {missing or 'none'}, unexpected keys "
            f"{extra or 'none'}")
    first = state["model.0.weight"]
    if first.dim() != 2:
        raise UpstreamCheckpointError(f"{path}: model.0.weight has shape {list(first.shape)}; "
                                      "a Linear weight is [out, in]")
    model = MetricProjector(first.shape[1], first.shape[0])
    ours = model.state_dict()
    wrong = {key: list(state[key].shape) for key, mine in expected.items() if state[key].shape != ours[mine].shape}
    if wrong:
        needed = {key: list(ours[expected[key]].shape) for key in wrong}
        raise UpstreamCheckpointError(
            f"{path}: wrong widths {wrong}; a projector from {model.in_dim} to {model.out_dim} "
            f"dimensions (read from model.0.weight) needs {needed}")
    model.load_state_dict({mine: state[key] for key, mine in expected.items()}, strict=True)
    return model.eval()
