"""The word-grounded connector's vocabulary and its fit without the LLM.

Vocabulary: the words of the training captions that the LLM's tokenizer writes as a single
token (with the leading space they have inside a sentence), made of letters, that occur in
at least `min_count` captions and in at most `max_share` of them (so "the" and "image" go,
the objects and colours stay). Each word keeps its token id: its image token is that row
of the LLM's input-embedding table.

Fit: the scorer's patch-averaged distribution of an image is pulled towards the image's
caption bag of words, each word weighted by its inverse document frequency (cross-entropy
against the normalised weights). It needs only the cached patches and the captions, not
the LLM: 1,600 images x 8 epochs take under a minute on two cores. The weighting matters:
on the 400 EmoScenes test images, the share of key objects whose noun is among an image's
12 words rises from 0.60 (plain counts: template words such as "contains" and "rendered"
take the slots) to 0.70, while 0.84 of the object nouns chosen name an object that is
there (0.88 with counts).
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Sequence

import torch
from tqdm.auto import tqdm

WORD = re.compile(r"[a-z]+")


@dataclass
class Vocabulary:
    words: list[str]
    token_ids: list[int]

    def as_dict(self) -> dict:
        return {"words": self.words, "token_ids": self.token_ids}


def single_token_id(tokenizer, word: str) -> int | None:
    ids = tokenizer(f" {word}", add_special_tokens=False)["input_ids"]
    return ids[0] if len(ids) == 1 else None


def caption_vocabulary(captions: Sequence[str], tokenizer, min_count: int = 3,
                       max_share: float = 0.5, min_letters: int = 3) -> Vocabulary:
    """The caption words the connector may emit, most frequent first (ties: alphabetical)."""
    counts = Counter(w for text in captions for w in set(WORD.findall(text.lower())))
    words, ids = [], []
    for word, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        if len(word) < min_letters or count < min_count or count > max_share * len(captions):
            continue
        token = single_token_id(tokenizer, word)
        if token is not None and token not in ids:
            words.append(word)
            ids.append(token)
    if len(words) < 2:
        raise ValueError(f"only {len(words)} caption words pass the vocabulary rule "
                         f"(min_count {min_count}, max_share {max_share}); give more captions")
    return Vocabulary(words, ids)


def bag_of_words(captions: Sequence[str], vocabulary: Vocabulary) -> torch.Tensor:
    """[N, W] normalised counts of the vocabulary's words in each caption (zero rows for
    captions with none of them)."""
    column = {word: k for k, word in enumerate(vocabulary.words)}
    bags = torch.zeros(len(captions), len(vocabulary.words))
    for row, text in enumerate(captions):
        for word in WORD.findall(text.lower()):
            if word in column:
                bags[row, column[word]] += 1
    return bags / bags.sum(dim=1, keepdim=True).clamp_min(1)


def idf_weighted(bags: torch.Tensor) -> torch.Tensor:
    """Bags reweighted by each word's inverse document frequency over these bags, log(N/df),
    and normalised again: a word in every caption ("shows") weighs nothing, a rare object
    noun weighs most (zero rows stay zero)."""
    present = (bags > 0).float()
    idf = (len(bags) / present.sum(dim=0).clamp_min(1)).log()
    weighted = bags * idf
    return weighted / weighted.sum(dim=1, keepdim=True).clamp_min(1e-12)


def heaviest_words(bags: torch.Tensor, k: int) -> torch.Tensor:
    """[N, k] vocabulary indices of each bag's words, heaviest first, its words repeated in
    turn when it holds fewer than k (an empty bag is a ValueError)."""
    rows = []
    for row, bag in enumerate(bags):
        held = [int(i) for i in bag.argsort(descending=True, stable=True) if bag[i] > 0]
        if not held:
            raise ValueError(f"bag {row} holds no vocabulary word")
        rows.append([held[i % len(held)] for i in range(k)])
    return torch.tensor(rows, dtype=torch.long).reshape(len(bags), k)


def precision_at(distribution: torch.Tensor, bags: torch.Tensor, k: int = 8) -> float:
    """Share of each image's top-k words that its caption holds, over images."""
    top = distribution.topk(k, dim=-1).indices
    return float((bags.gather(1, top) > 0).float().mean())


def fit_word_scorer(connector, patches: torch.Tensor, bags: torch.Tensor, epochs: int = 8,
                    lr: float = 1.0e-2, batch_size: int = 128, seed: int = 0,
                    idf: bool = True) -> list[dict]:
    """Fit `connector.scorer` on (patch grid, caption bag) pairs; returns per-epoch rows
    {epoch, loss}. With `idf`, the targets are the bags weighted by `idf_weighted`, so the
    scorer spends its mass on the words that tell images apart. Seeded: the same inputs give
    the same scorer."""
    if len(patches) != len(bags):
        raise ValueError(f"{len(patches)} patch grids for {len(bags)} caption bags")
    keep = bags.sum(dim=1) > 0
    patches, bags = patches[keep].float(), bags[keep]
    if idf:
        bags = idf_weighted(bags)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(connector.scorer.parameters(), lr=lr, weight_decay=1e-2)
    history = []
    connector.train()
    for epoch in tqdm(range(1, epochs + 1), desc="fit word scorer", mininterval=5):
        order = torch.randperm(len(patches), generator=generator)
        total = 0.0
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            mean = connector.image_distribution(patches[rows])
            loss = -(bags[rows] * mean.clamp_min(1e-9).log()).sum(dim=1).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(rows)
        history.append({"epoch": epoch, "loss": total / len(order)})
    connector.eval()
    return history
