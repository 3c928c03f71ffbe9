"""Small shared builders for the MM-LLM tests: a tiny model and hand-made records."""
from __future__ import annotations

import torch

from tinyemo.mmllm.artifact import build_mmllm
from tinyemo.mmllm.data import build_examples

N_IMAGE_TOKENS = 4


def tiny_mmllm():
    torch.manual_seed(0)
    return build_mmllm("tiny-random-llama", "tiny-random-cnn", N_IMAGE_TOKENS)


def records(n: int = 8) -> list[dict]:
    answers = ["A red sun.", "Two spiders.", "Grey rain.", "A gift box."]
    return [{"id": f"r{i}", "image": f"train/{i:03d}.png", "conversations": [
        {"from": "human", "value": "<image>\nDescribe the image."},
        {"from": "gpt", "value": answers[i % len(answers)]}]} for i in range(n)]


def examples_and_patches(tokenizer, n: int = 8):
    ids = [f"{i:03d}" for i in range(n)]
    patches = torch.randn(n, N_IMAGE_TOKENS, 16, generator=torch.Generator().manual_seed(1))
    return build_examples(records(n), tokenizer, ids, N_IMAGE_TOKENS), patches
