"""The connector between the vision tower's patch tokens and the LLM's input embeddings.

- `mlp2x_gelu` (TinyLLaVA's): Linear(patch_dim, d) -> GELU -> Linear(d, d), applied to
  every patch token, so a 7x7 patch grid becomes 49 free "image tokens" in the LLM's
  embedding space. `linear` is its one-layer variant.
- `word_grounded`: a small MLP (LayerNorm, Linear, GELU, Linear) scores a vocabulary of
  caption words per patch, and the image tokens are *exact rows of the LLM's own
  input-embedding table*: the top word of every patch (`top_k` 0), or the `top_k` most
  likely distinct words of the image (patch distributions averaged). The choice is hard in
  the forward pass; the gradient goes through the softmax (straight-through). The LLM
  reads words it already knows, so no alignment has to be learned through it; the scorer
  is fitted first without the LLM (`grounding.fit_word_scorer`). TinyEmo's metric
  projection into the LLM's embedding space, applied per patch; LiMBeR, LQAE, SPAE and
  the V2L tokenizer map images to (frozen) LLM token embeddings the same way.

Connectors are built by exact name from `CONNECTORS`. A connector that reads the LLM's
embedding table says so with `reads_embedding_table`; `image_tokens` calls every connector
the right way.
"""
from __future__ import annotations

import torch
from torch import nn


def mlp2x_gelu(patch_dim: int, hidden: int) -> nn.Module:
    return nn.Sequential(nn.Linear(patch_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden))


def linear(patch_dim: int, hidden: int) -> nn.Module:
    return nn.Linear(patch_dim, hidden)


def patch_scorer(patch_dim: int, width: int, n_scores: int) -> nn.Module:
    """LayerNorm, Linear, GELU, Linear: `n_scores` scores for every patch token (the
    word-grounded connector's words; the patch probe's object kinds)."""
    return nn.Sequential(nn.LayerNorm(patch_dim), nn.Linear(patch_dim, width), nn.GELU(),
                         nn.Linear(width, n_scores))


class WordGrounded(nn.Module):
    """Per patch, scores over `token_ids` (single-token caption words); image tokens are
    the chosen words' rows of the LLM's input-embedding table (so `hidden`, the LLM's
    width, shapes nothing here; `width` is the scorer's hidden layer)."""

    reads_embedding_table = True

    def __init__(self, patch_dim: int, hidden: int, token_ids: list[int], top_k: int = 0,
                 width: int = 128):
        super().__init__()
        if len(token_ids) < 2 or len(set(token_ids)) != len(token_ids):
            raise ValueError("a word-grounded connector needs at least two distinct token ids")
        if not 0 <= top_k <= len(token_ids):
            raise ValueError(f"top_k {top_k} must lie in [0, {len(token_ids)}] (0: a word per patch)")
        self.top_k = top_k
        self.register_buffer("token_ids", torch.tensor(token_ids, dtype=torch.long), persistent=False)
        self.scorer = patch_scorer(patch_dim, width, len(token_ids))

    def n_image_tokens(self, n_patches: int) -> int:
        return self.top_k or n_patches

    def word_probabilities(self, patches: torch.Tensor) -> torch.Tensor:
        """[B, P, C] patches (wherever they are) -> [B, P, W] distributions over the
        vocabulary, on the connector's device."""
        return self.scorer(patches.float().to(self.token_ids.device)).softmax(dim=-1)

    def image_distribution(self, patches: torch.Tensor) -> torch.Tensor:
        """[B, W]: the patch distributions averaged (the image's bag of words)."""
        return self.word_probabilities(patches).mean(dim=1)

    def chosen_words(self, patches: torch.Tensor) -> torch.Tensor:
        """[B, T] vocabulary indices of the image tokens (T = top_k, or one per patch)."""
        if self.top_k:
            return self.image_distribution(patches).topk(self.top_k, dim=-1).indices
        return self.word_probabilities(patches).argmax(dim=-1)

    def forward(self, patches: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        rows = table[self.token_ids]  # [W, d]
        probs = self.word_probabilities(patches)
        if self.top_k:
            mean = probs.mean(dim=1)
            top = mean.topk(self.top_k, dim=-1).indices  # [B, K], distinct words
            chosen = rows[top]
            weight = mean.gather(1, top).to(chosen.dtype)
            # value: exactly the rows; gradient: d(token)/d(p_word) = the word's row
            return chosen + chosen * (weight - weight.detach()).unsqueeze(-1)
        soft = probs.to(rows.dtype) @ rows  # [B, P, d]
        return rows[probs.argmax(dim=-1)] + (soft - soft.detach())


CONNECTORS = {"mlp2x_gelu": mlp2x_gelu, "linear": linear, "word_grounded": WordGrounded}


def build_connector(kind: str, patch_dim: int, hidden: int, **options) -> nn.Module:
    """A connector by exact name; an unknown name lists the valid ones. `options` go to
    connectors that take them (word_grounded: token_ids, top_k)."""
    try:
        factory = CONNECTORS[kind]
    except KeyError:
        raise ValueError(
            f"unknown connector {kind!r}; valid connectors: {', '.join(sorted(CONNECTORS))}"
        ) from None
    return factory(patch_dim, hidden, **options)


def n_image_tokens(connector: nn.Module, n_patches: int) -> int:
    """How many image tokens `connector` makes of a grid of `n_patches` patches."""
    counter = getattr(connector, "n_image_tokens", None)
    return counter(n_patches) if counter else n_patches


def image_tokens(connector: nn.Module, patches: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """[B, T, d] image tokens of [B, P, C] patches; `table` is the LLM's input embedding."""
    if getattr(connector, "reads_embedding_table", False):
        return connector(patches, table)
    return connector(patches.to(table.dtype))


@torch.no_grad()
def match_embedding_norm(connector: nn.Module, patches: torch.Tensor, table: torch.Tensor) -> float:
    """Scale a free connector's last layer so its image tokens have the mean norm of the
    LLM's word embeddings (a fresh `mlp2x_gelu` emits tokens ~4x longer than any word,
    which the LLM reads as noise). Returns the factor applied."""
    last = connector[-1] if isinstance(connector, nn.Sequential) else connector
    if not isinstance(last, nn.Linear):
        raise ValueError("only a connector that ends in a Linear layer can be rescaled")
    current = connector(patches.to(table.dtype)).norm(dim=-1).mean()
    factor = float(table.norm(dim=-1).mean() / current)
    last.weight.mul_(factor)
    if last.bias is not None:
        last.bias.mul_(factor)
    return factor
