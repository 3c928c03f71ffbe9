"""Stage `assets`: put the base models into `models/base/` and check that they are sane.

The vision check classifies a scikit-image photo with the tower's ImageNet head (towers
without one report their output shapes only); the LLM check continues a prompt greedily and
compares the model's loss on the prompt with that of a uniform guess over its vocabulary.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import torch
from PIL import Image

from tinyemo import paths
from tinyemo.models import llm as llm_lib
from tinyemo.models.vision import load_vision_tower, prepare_vision_tower

# scikit-image photos usable as the vision check, with the ImageNet classes that count as right.
SANITY_PHOTOS: dict[str, tuple[str, tuple[int, ...]]] = {
    "chelsea": ("a cat class", (281, 282, 283, 284, 285)),  # tabby, tiger, Persian, Siamese, Egyptian
    "coffee": ("a cup of coffee", (504, 967, 968)),  # coffee mug, espresso, cup
}


def sanity_photo(name: str) -> Image.Image:
    from skimage import data

    if name not in SANITY_PHOTOS:
        raise ValueError(f"unknown sanity image {name!r}; valid: {', '.join(SANITY_PHOTOS)}")
    return Image.fromarray(getattr(data, name)())


def count_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def prepare(vision_tower: str, llm: str, *,
            base_dir: Path = paths.BASE_MODELS) -> dict:
    """Prepare both base models under `base_dir/<name>/`; return their manifests."""
    return {
        "vision": prepare_vision_tower(vision_tower, Path(base_dir) / vision_tower),
        "llm": llm_lib.prepare_llm(llm, Path(base_dir) / llm),
    }


@torch.inference_mode()
def vision_sanity(tower, photo_name: str, k: int = 5) -> dict:
    """Top-k ImageNet classes of the photo (if the tower has an ImageNet head) and output shapes."""
    from timm.data import ImageNetInfo

    pixels = tower.preprocess([sanity_photo(photo_name)])
    pooled, patches = tower(pixels)
    result = {"pooled_dim": pooled.shape[1], "patch_tokens": patches.shape[1],
              "patch_dim": patches.shape[2], "finite": bool(torch.isfinite(pooled).all())}
    if not hasattr(tower, "imagenet_probabilities"):
        return result
    probs = tower.imagenet_probabilities(pixels)[0]
    top = probs.topk(k)
    info = ImageNetInfo()
    expected_what, expected = SANITY_PHOTOS[photo_name]
    result["top"] = [
        {"id": i, "name": info.index_to_description(i).split(",")[0], "prob": round(p, 4)}
        for i, p in zip(top.indices.tolist(), top.values.tolist())
    ]
    result["expected"] = expected_what
    result["top1_expected"] = result["top"][0]["id"] in expected
    result["expected_probability"] = round(probs[list(expected)].sum().item(), 4)
    return result


@torch.inference_mode()
def llm_sanity(model, tokenizer, prompt: str, max_new_tokens: int = 12) -> dict:
    """Greedy continuation of `prompt`, and the model's mean next-token loss on it."""
    ids = tokenizer(prompt, return_tensors="pt")
    started = time.perf_counter()
    out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False,
                         pad_token_id=tokenizer.pad_token_id)
    seconds = time.perf_counter() - started
    continuation = tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
    loss = model(**ids, labels=ids["input_ids"]).loss.item()
    chat = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                         add_generation_prompt=True)
    return {
        "continuation": continuation, "tokens_per_second": round(max_new_tokens / seconds, 1),
        "prompt_loss": round(loss, 3), "uniform_loss": round(math.log(len(tokenizer)), 3),
        "chat_prompt": chat,
    }


def plot_vision_sanity(photo: Image.Image, sanity: dict, title: str, path: Path) -> Path:
    """The photo beside its top-k ImageNet classes (or its output shapes if it has no head)."""
    from tinyemo.figures import pyplot, save_figure

    fig, (left, right) = pyplot().subplots(1, 2, figsize=(9, 3.4), gridspec_kw={"width_ratios": [1, 1.3]})
    left.imshow(photo)
    left.set_axis_off()
    left.set_title(title, fontsize=10)
    if "top" in sanity:
        names = [f"{t['name']} ({t['id']})" for t in sanity["top"]][::-1]
        probs = [t["prob"] for t in sanity["top"]][::-1]
        right.barh(names, probs, color="tab:blue")
        right.set_xlim(0, 1)
        right.set_xlabel("ImageNet probability")
    else:
        right.set_axis_off()
        right.text(0.0, 0.5, f"pooled: {sanity['pooled_dim']}-d\npatches: {sanity['patch_tokens']}"
                   f" x {sanity['patch_dim']}-d\n(no ImageNet head)", fontsize=11, va="center")
    return save_figure(fig, path)
