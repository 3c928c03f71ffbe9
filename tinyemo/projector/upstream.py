"""The paper's released Metric Projectors, read into this project's `MetricProjector`.

The paper released four trained projectors on the Hugging Face hub (`RELEASED`); upstream's
`projector_mps/src/eval.py` downloads `<repo>/<name>.bin` and scores it. This module reads such
a file, builds its anchors from the LLM it was trained against as upstream built them, and
scores it as upstream did, so that Table VIII can be checked with the paper's own weights.

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

**The anchors.** Upstream's `LLM.get_embds` tokenises the label texts with the LLM's tokenizer
(`add_special_tokens=True`, padded), multiplies the input-embedding rows by the attention mask,
averages over the padded length and L2-normalises. `anchors.embedding_table_encoder(...,
tokens="as-tokenized")` gives the same unit vectors: the BOS row only where the tokenizer adds
one. The label texts are upstream's loaders' label names: WEBEmo's folder names as shipped
(`cheerfullness`, `irritabilty`) and, for Abstract, the paper's grounding template `a scene
evoking {e} to viewers`; every other text is the bare label word.

**The prediction** is the nearest anchor (Euclidean distance between unit vectors, so the
highest cosine) among the labels present in the scored set, as in upstream's
`compute_top_accuracy`.
"""
from __future__ import annotations

import functools
import pickle
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import torch
from huggingface_hub import hf_hub_download
from huggingface_hub.errors import (
    EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError,
)

from tinyemo.datasets import dataset as dataset_spec
from tinyemo.datasets.webemo import SHIPPED_SPELLING
from tinyemo.errors import TinyEmoError
from tinyemo.feature_store import FeatureSet
from tinyemo.models import registry
from tinyemo.models.embedding_table import HubUnreachableError, commit_of, load_folder_embedding_table
from tinyemo.projector.anchors import AS_TOKENIZED, TextEncoder, embedding_table_encoder, encode_words, llm_table
from tinyemo.projector.artifact import ProjectorArtifact
from tinyemo.projector.evaluate import Evaluation, evaluate_projector
from tinyemo.projector.joint import leaked_columns
from tinyemo.projector.model import MetricProjector
from tinyemo.projector.paper_numbers import PAPER_TRAIN_DATASETS, published_for
from tinyemo.taxonomy import label_positions

PREFIX = "upstream:"  # `--projector upstream:REF`
RELEASED: dict[str, str] = {  # hub repository -> the registry LLM whose embedding space it maps into
    "ggcristian/TinyEmo-CLIP-OpenELM-270M-Syn": "openelm-270m-instruct",
    "ggcristian/TinyEmo-CLIP-OpenELM-450M": "openelm-450m-instruct",
    "ggcristian/TinyEmo-CLIP-TinyLlama-1_1-Syn": "tinyllama-1.1b-chat",
    "ggcristian/TinyEmo-CLIP-Phi-2": "phi-2",
}
VISION_TOWER = "clip-vit-l-14"  # every released projector reads CLIP ViT-L/14 `encode_image`
TRAINED_ON = (" + ".join(PAPER_TRAIN_DATASETS) + " jointly, as the paper says (Table VIII; upstream's "
              "train.py joins EmoSet and WEBEmo, with EmotionROI commented out)")
UPSTREAM_SPELLINGS = {"webemo": SHIPPED_SPELLING}  # dataset -> label -> upstream's label text
UPSTREAM_TEMPLATES = {"abstract": "scene-evoking-viewers"}  # dataset -> template (else bare)
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


# --------------------------------------------------------------------------- anchors
def label_texts(dataset: str, labels: Sequence[str]) -> list[str]:
    """The words upstream anchored `labels` of `dataset` on (its loaders' label names)."""
    spelled = UPSTREAM_SPELLINGS.get(dataset, {})
    return [spelled.get(label, label) for label in labels]


def folder_labels(dataset: str) -> dict[str, str]:
    """Upstream's folder name -> our label, where they differ (WEBEmo's misspelled folders)."""
    return {text: label for label, text in UPSTREAM_SPELLINGS.get(dataset, {}).items()}


@functools.lru_cache(maxsize=4)
def llm_encoder(llm: str) -> tuple[TextEncoder, int]:
    """(text encoder with upstream's tokens, embedding width) of a registry LLM or a model folder;
    only the input-embedding tensor and the tokenizer are read (cached: once per LLM)."""
    if Path(llm).is_dir():
        tokenizer, weight = load_folder_embedding_table(Path(llm))
    else:
        try:
            registry.llm_spec(llm)
        except registry.UnknownModelError as err:
            raise registry.UnknownModelError(f"{err}; or give a model folder (config.json, "
                                             "safetensors and tokenizer)") from None
        tokenizer, weight = llm_table(llm)
    return embedding_table_encoder(tokenizer, weight.float(), AS_TOKENIZED), weight.shape[1]


# --------------------------------------------------------------------------- a released projector
@dataclass
class Released:
    """An upstream checkpoint, loaded, with the LLM whose embedding space it maps into."""

    ref: CheckpointRef
    commit: str
    model: MetricProjector
    llm: str  # a registry name or a model folder
    encoder: TextEncoder

    @property
    def paper_llm(self) -> str | None:
        """The registry LLM the paper's numbers for this checkpoint were made with."""
        return self.llm if self.llm in registry.LLMS else self.ref.released_llm

    @property
    def paper_model(self) -> str | None:
        """The paper's name for the model of this checkpoint (Table VIII), if known."""
        published = published_for(self.paper_llm) if self.paper_llm else None
        return published[0] if published else None

    def paper_top1(self, dataset: str) -> tuple[str, float] | None:
        """(paper model, its published top-1 in %) on `dataset`, where the paper has one."""
        published = published_for(self.paper_llm) if self.paper_llm else None
        if published is None or dataset not in published[1]:
            return None
        return published[0], published[1][dataset]

    def artifact(self, dataset: str, labels: Sequence[str] | None = None,
                 template: str | None = None) -> ProjectorArtifact:
        """The projector with the anchors of `labels` (default: all of `dataset`'s), built from
        upstream's label texts and `template` (default: upstream's for the dataset)."""
        labels = tuple(labels or dataset_spec(dataset).label_names)
        template = template or UPSTREAM_TEMPLATES.get(dataset, "bare")
        texts = label_texts(dataset, labels)
        config = {"source": "upstream", "checkpoint": f"{PREFIX}{self.ref.text}", "repo": self.ref.repo,
                  "revision": self.ref.revision, "file": self.ref.filename, "commit": self.commit,
                  "llm": self.llm, "vision_tower": VISION_TOWER, "texts_of": dataset,
                  "template": template, "label_texts": dict(zip(labels, texts)), "trained_on": TRAINED_ON}
        return ProjectorArtifact(self.model, encode_words(self.encoder, texts, template), labels, config)


def open_released(ref_text: str, llm: str | None = None) -> Released:
    """Fetch and load an upstream checkpoint and its LLM's table; widths must agree."""
    ref = CheckpointRef.parse(ref_text)
    llm = llm or ref.released_llm
    if llm is None:
        raise UpstreamCheckpointError(
            f"{PREFIX}{ref.text} is not one of the released projectors, so its LLM is unknown: name "
            "the LLM whose input-embedding table it was trained against (--llm NAME or --llm DIR)")
    path, commit = ref.fetch()
    model = load_checkpoint(path)
    encoder, width = llm_encoder(str(llm))
    if width != model.out_dim:
        trained = f" (it was trained against {ref.released_llm})" if ref.released_llm else ""
        raise UpstreamCheckpointError(
            f"the checkpoint {PREFIX}{ref.text} projects into {model.out_dim} dimensions{trained}, "
            f"but the input embeddings of {llm} are {width}-d: give the LLM it was trained against")
    return Released(ref, commit, model, str(llm), encoder)


def evaluate_features(released: Released, dataset: str, features: FeatureSet,
                      template: str | None = None) -> tuple[Evaluation, ProjectorArtifact]:
    """Top-1 of the nearest anchor among the labels present in `features` (upstream's protocol)."""
    present = [name for name in features.label_names if name in set(features.labels)]
    artifact = released.artifact(dataset, present, template)
    if features.dim != artifact.feature_dim:
        raise UpstreamCheckpointError(
            f"the features have width {features.dim}, the checkpoint reads {artifact.feature_dim}-d "
            f"{VISION_TOWER} embeddings (encode_image, not normalised)")
    evaluation = evaluate_projector(artifact.model, features.pooled, label_positions(features.labels, present),
                                    artifact.anchors, present)
    return evaluation, artifact


def shares_images_with_training(dataset: str) -> bool:
    """Whether `dataset` shares images with a dataset the paper trained the released projectors on."""
    return bool(leaked_columns(PAPER_TRAIN_DATASETS, [dataset]))
