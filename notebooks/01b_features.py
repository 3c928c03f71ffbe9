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
# # 01b · Features
#
# The vision tower is frozen in every part of TinyEmo, so each image needs to be encoded
# only once. This stage caches two kinds of embedding per image, as safetensors files in
# `data/features/<dataset>/<split>.safetensors` (with a JSON sidecar of ids and labels):
#
# - a **pooled** embedding, the input of the Metric Projector (the paper uses CLIP
#   ViT-L/14's `encode_image`, 768-d; the default profile's EfficientNet-Lite0 gives the
#   global average of its 1280-channel head);
# - a **patch grid**, the input of the MM-LLM connector (the paper: the penultimate layer's
#   patch tokens; EfficientNet-Lite0: the 7x7 grid of its last block, 320-d, stored as
#   float16).
#
# Two datasets:
#
# - **EmoScenes** (stage `synthesize`), encoded here with the profile's tower. Labels are
#   Mikels-8 after label noise, the labels every model trains and is scored on.
# - **Emotion6**, real photographs, as the CLIP ViT-L/14 features that the TinyEmo
#   repository ships (`Emotion6/images/<split>/<emotion>/<id>.pt`). They are read, not
#   encoded: found through `$TINYEMO_DATA_DIR`, else downloaded once from the repository
#   at a pinned commit. Only `train/` ships with this project. Upstream selected models on
#   its test set (its `validation/` is a copy of `test/`); here a seeded, stratified
#   validation split is carved from `train/`, and a `test/` folder is used, when present,
#   only for final reporting. Emotion6 shares its images with EmotionROI, so no model may
#   train on one and call the other zero-shot.

# %% tags=["parameters"]
profile = "default"
seed = 0
threads = 2
vision_tower = "efficientnet-lite0"
batch_size = 32
emotion6_val_fraction = 0.2

# %%
import json

import torch
from IPython.display import Image, display

from tinyemo import featurize, paths
from tinyemo.features import feature_path
from tinyemo.vision import load_vision_tower

torch.set_num_threads(threads)
out = paths.stage_results("features")
(out / "figures").mkdir(parents=True, exist_ok=True)
metrics = {"profile": profile, "vision_tower": vision_tower, "emoscenes": {}, "emotion6": {}}

# %% [markdown]
# ## EmoScenes
#
# Each split is encoded in batches; the throughput is recorded because it bounds what a
# bigger EmoScenes would cost on this machine.

# %%
tower = load_vision_tower(vision_tower)
emoscenes = {}
for split in ("train", "val", "test"):
    features, rate = featurize.encode_emoscenes(tower, split, batch_size)
    features.save(feature_path("emoscenes", split))
    emoscenes[split] = features
    metrics["emoscenes"][split] = {**featurize.summary(features), "images_per_second": round(rate, 1)}
metrics["emoscenes"]

# %% [markdown]
# ## Emotion6

# %%
sets, source = featurize.emotion6_splits(emotion6_val_fraction, seed)
for split, features in sets.items():
    features.save(feature_path("emotion6", split))
    metrics["emotion6"][split] = featurize.summary(features)
metrics["emotion6_source"] = source
metrics["emotion6_has_test"] = "test" in sets
print("Emotion6 from", source)
metrics["emotion6"]

# %% [markdown]
# ## A first look
#
# The first two principal components of the pooled training embeddings, coloured by
# label. Classes that already separate here will be easy for any projector; overlap is
# what the Metric Projector has to untangle.

# %%
figure = featurize.plot_pca(
    {f"EmoScenes train ({vision_tower})": emoscenes["train"],
     "Emotion6 train (CLIP ViT-L/14)": sets["train"]},
    out / "figures" / "pca.png",
)
display(Image(filename=str(figure)))

# %%
(out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
metrics
