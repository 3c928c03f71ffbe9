"""The paper's released Metric Projectors, anchored and scored as upstream did.

`upstream_checkpoint` reads a released file into our `MetricProjector`; this module builds its
anchors from the LLM it was trained against as upstream built them and scores it as upstream
did, so that Table VIII can be checked with the paper's own weights.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from tinyemo.datasets import dataset as dataset_spec
from tinyemo.datasets.webemo import SHIPPED_SPELLING
from tinyemo.emotion6 import UPSTREAM_TOWER
from tinyemo.feature_store import FeatureSet
from tinyemo.models import registry
from tinyemo.models.embedding_table import load_folder_embedding_table
from tinyemo.projector.anchors import AS_TOKENIZED, TextEncoder, embedding_table_encoder, encode_words, llm_table
from tinyemo.projector.artifact import ProjectorArtifact
from tinyemo.projector.evaluate import Evaluation, evaluate_projector
from tinyemo.projector.joint import leaked_columns
from tinyemo.projector.paper_numbers import PAPER_TRAIN_DATASETS, published_for
from tinyemo.projector.upstream_checkpoint import PREFIX, CheckpointRef, UpstreamCheckpointError, load_checkpoint
from tinyemo.taxonomy import label_positions

VISION_TOWER = UPSTREAM_TOWER  # every released projector reads CLIP ViT-L/14 `encode_image`
TRAINED_ON = (" + ".join(PAPER_TRAIN_DATASETS) + " jointly, as the paper says (Table VIII; upstream's "
              "train.py joins EmoSet and WEBEmo, with EmotionROI commented out)")
UPSTREAM_SPELLINGS = {"webemo": SHIPPED_SPELLING}  # dataset -> label -> upstream's label text
UPSTREAM_TEMPLATES = {"abstract": "scene-evoking-viewers"}  # dataset -> template (else bare)


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
