"""Word-grounded decoding: a reasoning names only objects its image tokens show.

The word-grounded connector shows the LLM its image as words, so the decoder knows which
objects the image supports. While decoding, every token that begins the head noun of a
catalogue object's name is blocked unless one of the objects it can begin is among the
image's words (`evaluate.head_words`: "flower" shows flower and wilted flower). The LLM keeps its style
and its choice among the objects it was shown; it cannot fall back on the label's stock
objects. This is lexically constrained decoding with the image's own detected words, as in
constrained beam search for captioning (Anderson et al., 2017), with the detector being the
connector itself: no ground truth is read.

Free connectors (`mlp2x_gelu`) show no words, so their decoding is never constrained.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import torch
from transformers import LogitsProcessor

from tinyemo.mmllm import evaluate


@lru_cache(maxsize=4)
def _name_starts(tokenizer) -> dict[int, frozenset[str]]:
    """First token of the head noun of every catalogue object name, as written inside a
    sentence (" flower" of "wilted flower", " tomb" of "tombstone", " flies" of "swarm of
    flies") -> the object kinds whose names it begins. Head nouns rather than whole names,
    so that modifiers ("great", "broken", "party") stay free words."""
    starts: dict[int, set[str]] = {}
    for kind, term in evaluate.object_terms():
        head = term.split(" of ", 1)[-1].split()[-1].lower()
        first = tokenizer(f" {head}", add_special_tokens=False)["input_ids"][0]
        starts.setdefault(first, set()).add(kind)
    return {token: frozenset(kinds) for token, kinds in starts.items()}


def blocked_tokens(tokenizer, word_lists: Sequence[Sequence[str]], vocab_size: int) -> torch.Tensor:
    """[B, vocab_size] True where a token begins only names of objects image b does not show."""
    blocked = torch.zeros(len(word_lists), vocab_size, dtype=torch.bool)
    starts = _name_starts(tokenizer)
    for row, words in enumerate(word_lists):
        kinds = evaluate.kinds_named_by(words)
        for token, named in starts.items():
            if token < vocab_size and not named & kinds:
                blocked[row, token] = True
    return blocked


class ShownObjectsOnly(LogitsProcessor):
    """Sets the scores of each row's blocked tokens to -inf (rows: the batch's images)."""

    def __init__(self, blocked: torch.Tensor):
        self.blocked = blocked

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        vocab = min(scores.shape[1], self.blocked.shape[1])
        mask = torch.zeros_like(scores, dtype=torch.bool)
        mask[:, :vocab] = self.blocked[:, :vocab].to(scores.device)
        return scores.masked_fill(mask, float("-inf"))


def processor(model, tokenizer, images: torch.Tensor) -> ShownObjectsOnly | None:
    """The constraint for a batch of `images` (patch grids, or token ids shown as image
    tokens), or None when the model's image tokens are no words."""
    shown = model.shown_token_ids(images)
    if shown is None:
        return None
    words = [[tokenizer.decode([token]) for token in row] for row in shown.tolist()]
    return ShownObjectsOnly(blocked_tokens(tokenizer, words, len(tokenizer)))
