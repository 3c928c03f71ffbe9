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
# # 02 · Features
#
# The vision tower is frozen in every part of TinyEmo, so each image needs to be encoded
# only once. Stage `encode` (one DVC stage per dataset of `encode.datasets` in
# `params.yaml`, command `tinyemo encode NAME`) did that; this notebook looks at what it
# wrote. Per image there are two kinds of embedding, in `data/features/<dataset>/<split>/`
# as safetensors shards with a JSON sidecar of ids and labels and a manifest:
#
# - a **pooled** embedding, the input of the Metric Projector (the paper uses CLIP
#   ViT-L/14's `encode_image`, 768-d, unnormalised, fp16; the default profile's
#   EfficientNet-Lite0 gives the global average of its 1280-channel head);
# - a **patch grid**, the input of the MM-LLM connector (the paper: the penultimate layer's
#   patch tokens; EfficientNet-Lite0: the 7x7 grid of its last block, 320-d), stored as
#   float16 and read from disk batch by batch, never loaded whole.
#
# The default profile has two datasets:
#
# - **EmoScenes** (stage `synthesize`), encoded with the profile's tower. Labels are
#   Mikels-8 after label noise, the labels every model trains and is scored on.
# - **Emotion6**, real photographs, as the CLIP ViT-L/14 features that the TinyEmo
#   repository ships (`Emotion6/images/<split>/<emotion>/<id>.pt`), copied into
#   `data/raw/emotion6-clip/` by stage `fetch-emotion6` and stored, not encoded. Only
#   `train/` ships with this project. Upstream selected models on its test set (its
#   `validation/` is a copy of `test/`); here a seeded, stratified validation split is
#   carved from `train/`, and a `test/` folder is used, when present, only for final
#   reporting. Emotion6 shares its images with EmotionROI, so no model may train on one and
#   call the other zero-shot.

# %% tags=["parameters"]
profile = "default"
threads = 2
vision_tower = "efficientnet-lite0"

# %%
import json

import torch
from IPython.display import Image, display

from tinyemo import features, paths

torch.set_num_threads(threads)
out = paths.stage_results("features")
(out / "figures").mkdir(parents=True, exist_ok=True)
metrics = {"profile": profile, "vision_tower": vision_tower}

# %% [markdown]
# ## What was encoded
#
# Per dataset and split: the number of images, the embedding widths and the images per
# class; the throughput of the encoding run (images per second on this machine) bounds what
# a bigger dataset would cost. Images that could not be read were skipped and counted.

# %%
datasets = features.load_all()
for name, splits in datasets.items():
    run = features.encode_metrics(name)
    metrics[name] = {}
    for split, feature_set in splits.items():
        rate = run.get("splits", {}).get(split, {}).get("images_per_second")
        metrics[name][split] = {**features.summary(feature_set), "images_per_second": rate}
    metrics[name]["skipped"] = run.get("skipped", {})
    metrics[name]["source"] = run.get("source", {})
    print(f"{name}: {run.get('vision_tower', '?')}, skipped {run.get('skipped') or 'none'}")
metrics["emotion6_has_test"] = "test" in datasets.get("emotion6", {})
{name: {split: (s["n"], s.get("images_per_second")) for split, s in m.items() if "n" in s}
 for name, m in metrics.items() if isinstance(m, dict) and name in datasets}

# %% [markdown]
# ## A first look
#
# The first two principal components of the pooled training embeddings, coloured by
# label. Classes that already separate here will be easy for any projector; overlap is
# what the Metric Projector has to untangle.

# %%
panels = {f"{name} train": splits["train"] for name, splits in datasets.items() if "train" in splits}
figure = features.plot_pca(panels, out / "figures" / "pca.png")
display(Image(filename=str(figure)))

# %%
(out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
metrics
