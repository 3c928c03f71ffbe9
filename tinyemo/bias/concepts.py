"""The concept bank: words and short phrases, grouped, that can be ranked against images.

Because the Metric Projector maps images into an LLM's token-embedding space, any phrase can
become an anchor there, built exactly like the emotion anchors: the same input-embedding
table and the same grounding template as the projector artifact (see
`tinyemo.projector.anchors`). The default bank (`concepts.yaml` beside this file) holds
colours, objects, scene and weather words, frames and marks, and people-related words.

A user extends it with a file:
- `.yaml` / `.yml`: a mapping `group: [concept, ...]` (the layout of the default bank);
- `.txt`: one concept per line, `#` starts a comment; lines may be `group: concept`,
  otherwise the concept joins the group `user`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
import yaml

from tinyemo.errors import TinyEmoError

DEFAULT_BANK = Path(__file__).with_name("concepts.yaml")
USER_GROUP = "user"


class ConceptBankError(ValueError, TinyEmoError):
    """A missing, unreadable or malformed concept file; the message says what to fix."""


@dataclass(frozen=True)
class ConceptBank:
    concepts: tuple[str, ...]  # unique, in file order
    groups: tuple[str, ...]  # the group of each concept

    def __len__(self) -> int:
        return len(self.concepts)

    def group_of(self, concept: str) -> str:
        return self.groups[self.concepts.index(concept)]

    def merged(self, other: "ConceptBank") -> "ConceptBank":
        """This bank plus the concepts of `other` it lacks (first occurrence wins)."""
        pairs = dict(zip(self.concepts, self.groups))
        for concept, group in zip(other.concepts, other.groups):
            pairs.setdefault(concept, group)
        return ConceptBank(tuple(pairs), tuple(pairs.values()))


def _clean(concept, where: str) -> str:
    if not isinstance(concept, str) or not concept.strip():
        raise ConceptBankError(f"{where}: every concept must be a non-empty string, got {concept!r}")
    return " ".join(concept.split())


def _from_pairs(pairs: list[tuple[str, str]], path: Path) -> ConceptBank:
    if not pairs:
        raise ConceptBankError(f"{path} holds no concepts")
    first: dict[str, str] = {}
    for group, concept in pairs:
        first.setdefault(concept, group)
    return ConceptBank(tuple(first), tuple(first.values()))


def _read_yaml(path: Path) -> ConceptBank:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConceptBankError(f"{path} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConceptBankError(
            f"{path} must be a mapping of groups to lists of concepts, e.g. `colours: [red, teal]`; "
            f"got {type(data).__name__}"
        )
    pairs = []
    for group, items in data.items():
        if not isinstance(items, list):
            raise ConceptBankError(f"{path}: group {group!r} must hold a list of concepts, got {items!r}")
        pairs += [(str(group), _clean(item, f"{path}, group {group!r}")) for item in items]
    return _from_pairs(pairs, path)


def _read_text(path: Path) -> ConceptBank:
    pairs = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        group, _, concept = line.rpartition(":")
        pairs.append((group.strip() or USER_GROUP, _clean(concept, f"{path}, line {number}")))
    return _from_pairs(pairs, path)


def read_concept_file(path: str | Path) -> ConceptBank:
    """A concept bank from a `.yaml`/`.yml` or `.txt` file."""
    path = Path(path)
    if not path.is_file():
        raise ConceptBankError(f"concept file {path} does not exist; give a .yaml or .txt file of concepts")
    if path.suffix in (".yaml", ".yml"):
        return _read_yaml(path)
    if path.suffix == ".txt":
        return _read_text(path)
    raise ConceptBankError(
        f"concept file {path} has an unknown type {path.suffix!r}; use .yaml/.yml (group: [concepts]) "
        "or .txt (one concept per line)"
    )


def load_concept_bank(extra: str | Path | None = None) -> ConceptBank:
    """The default bank, extended by the concepts of `extra` (a file) when given."""
    bank = read_concept_file(DEFAULT_BANK)
    return bank.merged(read_concept_file(extra)) if extra else bank


def null_phrases(n: int, seed: int = 0) -> list[str]:
    """`n` distinct meaningless phrases: one or two random lowercase letter strings of 3-9
    letters. Under the same template they are the null a meaningful concept must beat."""
    import numpy as np

    rng = np.random.default_rng([seed, 0x5EED])
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    phrases: dict[str, None] = {}
    while len(phrases) < n:
        words = ["".join(rng.choice(letters, int(rng.integers(3, 10)))) for _ in range(int(rng.integers(1, 3)))]
        phrases[" ".join(words)] = None
    return list(phrases)


def concept_anchors(bank: ConceptBank | Sequence[str], config: dict, seed: int = 0,
                    chunk: int = 2048) -> torch.Tensor:
    """`[C, d]` unit anchors of the concepts (a bank or a list of phrases), built like a
    projector artifact's anchors (in chunks, so many phrases fit in memory).

    `config` is the artifact's config: its `anchor_source`, `template` and `llm` are reused,
    so concept anchors live in exactly the space the projector was trained against.
    """
    from tinyemo.projector.anchors import encode_words, text_encoder

    missing = [key for key in ("anchor_source", "template", "llm") if key not in config]
    if missing:
        raise ConceptBankError(f"the projector config lacks {missing}; cannot build concept anchors like its own")
    encoder = text_encoder(config["anchor_source"], config["llm"], seed)
    texts = list(bank.concepts) if isinstance(bank, ConceptBank) else list(bank)
    return torch.cat([encode_words(encoder, texts[i:i + chunk], config["template"])
                      for i in range(0, len(texts), chunk)])
