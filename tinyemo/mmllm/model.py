"""The TinyLLaVA-style MM-LLM: patch features -> connector -> image tokens spliced into the LLM.

The vision tower stays outside: the model takes patch grids ([B, P, patch_dim], cached by
the `features` stage or encoded at inference). The connector turns them into T image tokens
of the LLM's embedding width (one per patch, or `top_k` words for the word-grounded
connector), which replace the T `IMAGE_TOKEN_ID` markers that the prompt builder put where
`<image>` stood. The loss is the LLM's own causal-LM loss on the
labels, which are `IGNORE` everywhere but the answers.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from tinyemo.mmllm.connector import build_connector, image_tokens, n_image_tokens
from tinyemo.mmllm.prompts import IGNORE, IMAGE_TOKEN_ID


@dataclass
class Output:
    loss: torch.Tensor | None
    logits: torch.Tensor  # [B, T, V] without labels; [n labelled positions, V] with them
    targets: torch.Tensor | None = None  # [n] the labels those logits predict


class TinyLlava(nn.Module):
    precision = "no"  # autocast of inference on a GPU ("no", "fp16", "bf16"): what it trained in

    def __init__(self, llm: nn.Module, patch_dim: int, n_patches: int,
                 connector: str = "mlp2x_gelu", connector_options: dict | None = None):
        super().__init__()
        self.llm = llm
        self.n_patches = n_patches
        hidden = llm.get_input_embeddings().weight.shape[1]
        self.connector = build_connector(connector, patch_dim, hidden, **(connector_options or {}))
        self.n_image_tokens = n_image_tokens(self.connector, n_patches)

    def embed(self, input_ids: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
        """Input embeddings with the connector's image tokens at the image markers; `patches`
        [B, P, C] features, or [B, T] integer token ids whose own embeddings are shown as
        the T image tokens."""
        embedding = self.llm.get_input_embeddings()
        image_mask = input_ids == IMAGE_TOKEN_ID
        embeds = embedding(input_ids.masked_fill(image_mask, 0))
        per_row = image_mask.sum(dim=1)
        expected = self.n_patches if patches.is_floating_point() else self.n_image_tokens
        if patches.shape[0] != input_ids.shape[0] or patches.shape[1] != expected:
            raise ValueError(
                f"patches of shape {tuple(patches.shape)} do not fit a batch of "
                f"{input_ids.shape[0]} prompts with {expected} patches (or token ids) each"
            )
        if not input_ids.is_meta and not bool((per_row == self.n_image_tokens).all()):  # meta: shapes only
            raise ValueError(
                f"every prompt needs exactly one <image> ({self.n_image_tokens} markers); "
                f"found {per_row.tolist()}"
            )
        if patches.is_floating_point():
            tokens = image_tokens(self.connector, patches.to(embeds.dtype), embedding.weight)
        else:  # token ids shown as the image tokens (`stage_runs.oracle_words`)
            tokens = embedding(patches)
        tokens = tokens.to(embeds.dtype)
        return embeds.masked_scatter(image_mask.unsqueeze(-1), tokens.reshape(-1, embeds.shape[-1]))

    @torch.no_grad()
    def shown_token_ids(self, patches: torch.Tensor) -> torch.Tensor | None:
        """[B, T] token ids of the words the image tokens are (token ids given in place of
        patches, or a word-grounded connector's words); None for a free connector."""
        if not patches.is_floating_point():
            return patches
        if not hasattr(self.connector, "chosen_words"):
            return None
        return self.connector.token_ids[self.connector.chosen_words(patches.float())]

    def lm_head(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits of `hidden`: the LLM's output head, or, for a model whose head is its input
        embedding matrix and that exposes no output embeddings (OpenELM), that matrix."""
        causal = self.causal_lm()
        head = causal.get_output_embeddings()
        if head is not None:
            return head(hidden)
        return nn.functional.linear(hidden, causal.get_input_embeddings().weight)

    def causal_lm(self) -> nn.Module:
        """The transformers causal LM (inside its peft wrapper when LoRA is on)."""
        return self.llm.get_base_model() if hasattr(self.llm, "get_base_model") else self.llm

    def forward(self, input_ids, patches, attention_mask=None, labels=None) -> Output:
        """Next-token loss on the labelled positions; the LM head runs only where labels are
        (a prompt is mostly image and instruction tokens, and the vocabulary is large)."""
        embeds = self.embed(input_ids, patches)
        causal = self.causal_lm()
        decoder = getattr(causal, causal.base_model_prefix)
        hidden = decoder(inputs_embeds=embeds, attention_mask=attention_mask,
                         use_cache=False).last_hidden_state
        if labels is None:
            return Output(None, self.lm_head(hidden))
        targets = labels[:, 1:].masked_fill(input_ids[:, 1:] == IMAGE_TOKEN_ID, IGNORE)
        where = targets != IGNORE
        logits = self.lm_head(hidden[:, :-1][where])
        loss = nn.functional.cross_entropy(logits.float(), targets[where])
        return Output(loss, logits, targets[where])

    @torch.no_grad()
    def generate(self, input_ids, patches, attention_mask=None, max_new_tokens: int = 64,
                 streamer=None, **kwargs) -> torch.Tensor:
        """Greedy continuation of left-padded prompts; returns the new token ids only."""
        embeds = self.embed(input_ids, patches)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        kwargs.setdefault("do_sample", False)
        return self.llm.generate(
            inputs_embeds=embeds, attention_mask=attention_mask, max_new_tokens=max_new_tokens,
            streamer=streamer, **kwargs,
        )
