"""OpenELM (Apple, 2024) written out here, so the paper's default LLM runs on the pinned
transformers without downloading any modelling code.

OpenELM is a decoder-only transformer whose layers are not all the same size ("layer-wise
scaling"): the first layer is the narrowest and the last the widest. Two pairs of numbers
in the configuration say how: `qkv_multipliers = (0.5, 1.0)` and `ffn_multipliers =
(0.5, 4.0)` are spread evenly over the layers (rounded to two decimals) and turned into
widths that divide nicely (`make_divisible`):

- attention of layer i: `model_dim * qkv_multiplier[i]` rounded to a multiple of
  `head_dim * num_gqa_groups`, split into query heads of `head_dim`; every `num_gqa_groups`
  query heads share one key/value head (grouped-query attention). OpenELM-270M runs 12 to 20
  query heads over 3 to 5 key/value heads;
- feed-forward of layer i: a gated linear unit, `proj_2(silu(a) * b)` where `proj_1` gives
  `a` and `b`, of width `model_dim * ffn_multiplier[i]` rounded to a multiple of
  `ffn_dim_divisor` (768 to 5120 for OpenELM-270M).

A layer is pre-norm: `x + attn(rmsnorm(x))`, then `x + ffn(rmsnorm(x))`. Attention projects
queries, keys and values with one matrix (`qkv_proj`), normalises every query and key head
with its own RMSNorm (`q_norm`, `k_norm`), rotates them by their position (RoPE, base
`rope_freq_constant`) and attends causally. The output head is the input embedding table
itself (`share_input_output_layers`): logits are `hidden @ token_embeddings.weight.T`, so the
model has no separate head and `get_output_embeddings()` is None.

Nothing here is a buffer that a loader could leave unset: the rotation frequencies and the
causal mask are computed in every forward pass. Positions are counted over the tokens the
attention mask keeps, so a left-padded prompt gives the same answer as the same prompt
alone (Apple's code counts the padding too; without padding the two agree). Parameter names
are those of Apple's checkpoints (`transformer.layers.{i}.attn.qkv_proj.weight`, ...), so
`model.safetensors` of apple/OpenELM-*-Instruct loads as it is; the KV cache is
transformers' own `DynamicCache`.
"""
from __future__ import annotations

from numbers import Number

import numpy as np
import torch
from huggingface_hub.dataclasses import strict
from torch import nn
from torch.nn import functional as F
from transformers import GenerationMixin, PreTrainedConfig, PreTrainedModel
from transformers.cache_utils import Cache, DynamicCache
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast
from transformers.modeling_utils import slice_logits_to_keep

RMS_EPS = 1e-6  # epsilon of every RMSNorm in Apple's modeling_openelm.py


def make_divisible(value: float, divisor: int, min_value: int | None = None) -> int:
    """`value` rounded to the nearest multiple of `divisor`, never more than 10 % below it."""
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def per_layer(multipliers, n_layers: int) -> list[float]:
    """One multiplier per layer: a number for all, or (first, last) spread evenly and rounded
    to two decimals, or already one per layer."""
    if isinstance(multipliers, Number):
        return [float(multipliers)] * n_layers
    if len(multipliers) == 2:
        return [float(round(v, 2)) for v in np.linspace(multipliers[0], multipliers[1],
                                                         num=n_layers, dtype=float)]
    if len(multipliers) != n_layers:
        raise ValueError(f"{len(multipliers)} multipliers for {n_layers} layers: give a number, "
                         "a (first, last) pair or one per layer")
    return [float(v) for v in multipliers]


@strict
class OpenELMConfig(PreTrainedConfig):
    """The fields of Apple's config.json; the per-layer head counts are derived from them.
    Defaults are those of Apple's OpenELMConfig class (no published model uses them all),
    but for the shared head, which every published checkpoint has and the only one here."""

    model_type = "openelm"
    attribute_map = {"hidden_size": "model_dim", "num_hidden_layers": "num_transformer_layers",
                     "max_position_embeddings": "max_context_length"}

    vocab_size: int = 32000
    max_context_length: int = 2048  # longest prompt + answer the model was trained on
    num_transformer_layers: int = 12
    model_dim: int = 2048  # width of the residual stream and of the embedding table
    head_dim: int = 128
    qkv_multipliers: list[int | float] | int | float = 1.0  # attention width / model_dim, per layer
    num_gqa_groups: int = 1  # query heads per key/value head
    ffn_multipliers: list[int | float] | int | float = 4.0  # feed-forward width / model_dim, per layer
    ffn_with_glu: bool = True
    ffn_dim_divisor: int = 256  # feed-forward widths are multiples of this
    activation_fn_name: str = "swish"
    normalization_layer_name: str = "rms_norm"
    normalize_qk_projections: bool = False  # RMSNorm on every query and key head
    share_input_output_layers: bool = True  # the head is the input embedding table
    rope_freq_constant: int = 10000  # RoPE base
    rope_max_length: int = 4096  # positions RoPE was prepared for (twice the context)
    initializer_range: float = 0.02
    use_cache: bool = True
    pad_token_id: int | None = None
    bos_token_id: int | None = 1
    eos_token_id: int | list[int] | None = 2
    num_query_heads: list[int] | None = None  # derived; a config.json that lists them must agree
    num_kv_heads: list[int] | None = None  # derived; likewise

    def __post_init__(self, **kwargs):
        kwargs.pop("auto_map", None)  # the hub's pointer to Apple's modelling code, never used
        layers = self.num_transformer_layers
        query_dims = [make_divisible(self.model_dim * m, self.head_dim * self.num_gqa_groups)
                      for m in per_layer(self.qkv_multipliers, layers)]
        derived = {"num_query_heads": [dim // self.head_dim for dim in query_dims]}
        derived["num_kv_heads"] = [q // self.num_gqa_groups for q in derived["num_query_heads"]]
        for key, values in derived.items():
            if getattr(self, key) is not None and list(getattr(self, key)) != values:
                raise ValueError(f"{key} {getattr(self, key)} disagrees with the {values} that "
                                 "model_dim, head_dim, num_gqa_groups and qkv_multipliers give")
            setattr(self, key, values)
        self.ffn_multipliers = per_layer(self.ffn_multipliers, layers)
        super().__post_init__(**kwargs)

    def validate_architecture(self):
        """Refuse the variants that no published OpenELM checkpoint uses."""
        published = {"ffn_with_glu": True, "activation_fn_name": "swish",
                     "normalization_layer_name": "rms_norm", "share_input_output_layers": True}
        wrong = {k: getattr(self, k) for k, v in published.items() if getattr(self, k) != v}
        if wrong:
            raise ValueError(f"OpenELM variant {wrong} is not implemented; the published "
                             f"checkpoints use {published}")

    def ffn_dims(self) -> list[int]:
        """The feed-forward width of every layer."""
        return [make_divisible(m * self.model_dim, self.ffn_dim_divisor) for m in self.ffn_multipliers]


class RMSNorm(nn.Module):
    """x / rms(x) in float32, back in x's dtype, times a learned scale (Apple's order)."""

    def __init__(self, width: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + RMS_EPS)
        return normed.type_as(x) * self.weight


def rotary(positions: torch.Tensor, head_dim: int, base: int, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin [B, 1, T, head_dim] of RoPE at `positions` [B, T]."""
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, device=positions.device,
                                            dtype=torch.float32) / head_dim))
    angles = positions.float()[..., None] * inv_freq
    angles = torch.cat((angles, angles), dim=-1)[:, None]
    return angles.cos().to(dtype), angles.sin().to(dtype)


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return x * cos + torch.cat((-second, first), dim=-1) * sin


def attention_mask_4d(attention_mask: torch.Tensor | None, batch: int, n_queries: int,
                      n_past: int, device) -> torch.Tensor:
    """[B, 1, Q, K] True where query i (at cache index n_past + i) may attend to key j: keys
    up to its own index that the 2-D `attention_mask` keeps. A query with no such key (a
    left-padding position) attends to all keys instead; its output is never used."""
    n_keys = n_past + n_queries
    query_index = torch.arange(n_past, n_keys, device=device)[:, None]
    allowed = (torch.arange(n_keys, device=device)[None, :] <= query_index)[None, None]
    if attention_mask is not None:
        if attention_mask.dim() != 2 or attention_mask.shape[-1] != n_keys:
            raise ValueError(f"attention_mask of shape {tuple(attention_mask.shape)}: expected "
                             f"[batch, {n_keys}] (cached and new tokens)")
        allowed = allowed & attention_mask.bool()[:, None, None, :]
    allowed = allowed.expand(batch, 1, n_queries, n_keys)
    return allowed | ~allowed.any(dim=-1, keepdim=True)


class Attention(nn.Module):
    def __init__(self, config: OpenELMConfig, layer: int):
        super().__init__()
        self.layer = layer
        self.head_dim = config.head_dim
        self.q_heads = config.num_query_heads[layer]
        self.kv_heads = config.num_kv_heads[layer]
        self.qkv_proj = nn.Linear(config.model_dim, (self.q_heads + 2 * self.kv_heads) * self.head_dim,
                                  bias=False)
        if config.normalize_qk_projections:
            self.q_norm = RMSNorm(self.head_dim)
            self.k_norm = RMSNorm(self.head_dim)
        self.out_proj = nn.Linear(self.q_heads * self.head_dim, config.model_dim, bias=False)

    def forward(self, x, cos, sin, mask, cache: Cache | None) -> torch.Tensor:
        batch, length, _ = x.shape
        qkv = self.qkv_proj(x).view(batch, length, -1, self.head_dim).transpose(1, 2)
        queries, keys, values = qkv.split([self.q_heads, self.kv_heads, self.kv_heads], dim=1)
        if hasattr(self, "q_norm"):
            queries, keys = self.q_norm(queries), self.k_norm(keys)
        queries, keys = rotate(queries, cos, sin), rotate(keys, cos, sin)
        if cache is not None:
            keys, values = cache.update(keys, values, self.layer)
        group = self.q_heads // self.kv_heads
        keys = keys.repeat_interleave(group, dim=1)
        values = values.repeat_interleave(group, dim=1)
        out = F.scaled_dot_product_attention(queries, keys, values, attn_mask=mask)
        return self.out_proj(out.transpose(1, 2).reshape(batch, length, -1))


class FeedForward(nn.Module):
    def __init__(self, config: OpenELMConfig, layer: int):
        super().__init__()
        width = config.ffn_dims()[layer]
        self.proj_1 = nn.Linear(config.model_dim, 2 * width, bias=False)
        self.proj_2 = nn.Linear(width, config.model_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.proj_1(x).chunk(2, dim=-1)
        return self.proj_2(F.silu(gate) * up)


class DecoderLayer(GradientCheckpointingLayer):
    def __init__(self, config: OpenELMConfig, layer: int):
        super().__init__()
        self.attn_norm = RMSNorm(config.model_dim)
        self.attn = Attention(config, layer)
        self.ffn_norm = RMSNorm(config.model_dim)
        self.ffn = FeedForward(config, layer)

    def forward(self, x, cos, sin, mask, past_key_values: Cache | None = None) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), cos, sin, mask, past_key_values)
        return x + self.ffn(self.ffn_norm(x))


class OpenELMPreTrainedModel(PreTrainedModel):
    config_class = OpenELMConfig
    base_model_prefix = "transformer"
    supports_gradient_checkpointing = True
    _no_split_modules = ["DecoderLayer"]
    _skip_keys_device_placement = ["past_key_values"]
    _supports_sdpa = True

    def _init_weights(self, module: nn.Module) -> None:
        """Apple's initialisation: normal with std 1/sqrt(fan-in); the projections that write
        into the residual stream smaller by 1/sqrt(2 * layers); norms at 1."""
        if isinstance(module, nn.Linear):
            std = module.in_features ** -0.5
            if getattr(module, "_writes_residual", False):
                std = self.config.model_dim ** -0.5 * (2 * self.config.num_transformer_layers) ** -0.5
            nn.init.normal_(module.weight, mean=0.0, std=std)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=module.embedding_dim ** -0.5)
        elif isinstance(module, RMSNorm):
            nn.init.ones_(module.weight)


class OpenELMModel(OpenELMPreTrainedModel):
    """Embeddings, the decoder layers and the final norm: hidden states, not logits."""

    def __init__(self, config: OpenELMConfig):
        super().__init__(config)
        self.token_embeddings = nn.Embedding(config.vocab_size, config.model_dim)
        self.layers = nn.ModuleList(DecoderLayer(config, i) for i in range(config.num_transformer_layers))
        self.norm = RMSNorm(config.model_dim)
        for layer in self.layers:
            layer.attn.out_proj._writes_residual = layer.ffn.proj_2._writes_residual = True
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.token_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.token_embeddings = value

    def forward(self, input_ids=None, attention_mask=None, position_ids=None,
                past_key_values: Cache | None = None, inputs_embeds=None, use_cache=None,
                **kwargs) -> BaseModelOutputWithPast:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("give exactly one of input_ids and inputs_embeds")
        if inputs_embeds is None:
            inputs_embeds = self.token_embeddings(input_ids)
        use_cache = self.config.use_cache if use_cache is None else use_cache
        if use_cache and past_key_values is None:
            past_key_values = DynamicCache(config=self.config)
        batch, length = inputs_embeds.shape[:2]
        n_past = past_key_values.get_seq_length() if past_key_values is not None else 0
        if position_ids is None:
            if attention_mask is None:
                position_ids = torch.arange(n_past, n_past + length, device=inputs_embeds.device)[None]
            else:
                position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)[:, -length:]
        position_ids = position_ids.expand(batch, length)
        cos, sin = rotary(position_ids, self.config.head_dim, self.config.rope_freq_constant,
                          inputs_embeds.dtype)
        mask = attention_mask_4d(attention_mask, batch, length, n_past, inputs_embeds.device)
        hidden = inputs_embeds
        for layer in self.layers:
            hidden = layer(hidden, cos, sin, mask, past_key_values=past_key_values)
        return BaseModelOutputWithPast(last_hidden_state=self.norm(hidden),
                                       past_key_values=past_key_values if use_cache else None)


class OpenELMForCausalLM(OpenELMPreTrainedModel, GenerationMixin):
    """OpenELM with its tied head: logits over the vocabulary, generation with `generate`."""

    def __init__(self, config: OpenELMConfig):
        super().__init__(config)
        self.transformer = OpenELMModel(config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.transformer.token_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.transformer.token_embeddings = value

    def get_output_embeddings(self) -> None:
        """None: the head is the input embedding table (`get_input_embeddings`)."""
        return None

    def get_decoder(self) -> OpenELMModel:
        return self.transformer

    def forward(self, input_ids=None, attention_mask=None, position_ids=None,
                past_key_values: Cache | None = None, inputs_embeds=None, labels=None,
                use_cache=None, logits_to_keep: int | torch.Tensor = 0,
                **kwargs) -> CausalLMOutputWithPast:
        out = self.transformer(input_ids=input_ids, attention_mask=attention_mask,
                               position_ids=position_ids, past_key_values=past_key_values,
                               inputs_embeds=inputs_embeds, use_cache=use_cache)
        hidden = slice_logits_to_keep(out.last_hidden_state, logits_to_keep)
        logits = F.linear(hidden, self.transformer.token_embeddings.weight)
        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels,
                                      vocab_size=self.config.vocab_size, **kwargs)
        return CausalLMOutputWithPast(loss=loss, logits=logits, past_key_values=out.past_key_values)
