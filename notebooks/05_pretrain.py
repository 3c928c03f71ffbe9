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
# # 05 · Pre-train the MM-LLM's connector
#
# TinyEmo's reasoning model is TinyLLaVA-shaped: a frozen **vision tower** turns the image
# into a grid of patch tokens, a small **connector** (`mlp2x_gelu`: Linear, GELU, Linear)
# maps each patch into the LLM's input-embedding space, and those *image tokens* are spliced
# into the prompt where `<image>` stands. The LLM then reads them like words.
#
# Stage 1 (this notebook) trains **only the connector**, with the LLM and the vision tower
# frozen, on the EmoScenes pre-training records: a caption, a visual question-answer and a
# sentiment question-answer per image, as separate single-turn conversations (the paper's
# Bunny-written pre-training set, here written by the scene-graph teacher). The point is to
# align the two spaces, so that the LLM can say what is in the picture (the *image
# reliance* at the end measures how far it got).
#
# Choices made here (the paper does not say; TinyLLaVA's defaults where they fit a CPU):
#
# - Patch tokens come from the `features` stage's cache (the vision tower is frozen, so
#   re-encoding images every step would only cost time). The default EfficientNet-Lite0
#   gives a 7x7 grid of 320-d patches: **49 image tokens**.
# - Prompts use the LLM's **own chat template**; the loss covers the **answer tokens only**
#   (and the end-of-turn marker, so the model learns to stop).
# - The LM head runs only on the answer positions: most of a sequence is image and prompt
#   tokens, and SmolLM2's vocabulary has 49k entries.
# - The default profile subsamples the records and runs one short epoch to fit a 2-core
#   CPU; the paper profile uses them all with TinyLLaVA's lr 1e-3.
# - Checkpoints every `checkpoint_every` steps (weights of the connector, optimizer,
#   scheduler, RNG, loss log) let an interrupted run resume; the loop runs unchanged under
#   `accelerate launch` (see `tinyemo/mmllm/launch.py`).

# %% tags=["parameters"]
profile = "default"
seed = 0
threads = 2
vision_tower = "efficientnet-lite0"
llm = "smollm2-135m-instruct"
trust_remote_code = False
n_records = 96
epochs = 1
batch_size = 8
lr = 1.0e-3
warmup_ratio = 0.03
max_length = 256
checkpoint_every = 25
system_prompt = ""
connector = "mlp2x_gelu"
n_val_records = 32
gradient_accumulation_steps = 1
mixed_precision = "no"
gradient_checkpointing = False
num_processes = 1
accelerate_config = None
num_workers = 0

# %%
import json
import time

import torch
from IPython.display import Image, display

from tinyemo import paths
from tinyemo.features import load_features
from tinyemo.mmllm import artifact, figures, recipes
from tinyemo.mmllm.data import pad_id_of
from tinyemo.mmllm.prompts import IMAGE_TOKEN_ID
from tinyemo.mmllm.train import write_loss_log

torch.set_num_threads(threads)
base = recipes.section_from("base", globals())
params = recipes.section_from("pretrain", globals())
out = paths.stage_results("pretrain")
(out / "figures").mkdir(parents=True, exist_ok=True)
model_dir = artifact.MODEL_DIR / "pretrain"

# %% [markdown]
# ## Before training
#
# The held-out loss of the untrained model (a randomly initialised connector, seeded like
# the one that will train) on pre-training records of the validation split: the number to
# beat.

# %%
val_features = load_features("emoscenes", "val")
torch.manual_seed(seed)
untrained, tokenizer = artifact.build_mmllm(llm, vision_tower, val_features.patches.shape[1],
                                            connector, trust_remote_code)
val_examples = recipes.examples_of("pretrain", "val", tokenizer, val_features, n_val_records,
                                   seed, untrained.n_image_tokens, params)
val_loss_before = recipes.mean_loss(untrained, val_examples, val_features.patches,
                                    pad_id_of(tokenizer))
del untrained
example = val_examples[0]
print(f"a record: {len(example.input_ids)} tokens, of which "
      f"{example.input_ids.count(IMAGE_TOKEN_ID)} image tokens and "
      f"{sum(label >= 0 for label in example.labels)} answer tokens")
print(f"validation loss before training: {val_loss_before:.3f}")

# %% [markdown]
# ## Train the connector

# %%
started = time.perf_counter()
run = recipes.pretrain_run(base, params, model_dir)
train_seconds = time.perf_counter() - started
print(f"{run.result.steps} steps on {run.n_records} records in {train_seconds:.0f} s "
      f"({run.result.samples_per_second:.2f} samples/s); trainable parameters "
      f"{run.trainable_parameters:,} of {run.total_parameters:,}")

# %% [markdown]
# Only the connector may have trained: the saved weights hold nothing of the LLM.

# %%
from safetensors import safe_open

with safe_open(model_dir / artifact.WEIGHTS_FILE, framework="pt") as saved:
    saved_names = list(saved.keys())
assert saved_names and all(name.startswith("connector.") for name in saved_names), saved_names
assert run.trainable_parameters == sum(p.numel() for p in run.model.connector.parameters())

# %% [markdown]
# ## After training
#
# The held-out loss again, and a check that the loss fell *because of the images*: the same
# records scored with another record's image. A connector whose tokens carry the picture
# makes that loss higher; tokens that only steer the LLM's style (a learned prompt, the same
# for every image) leave it unchanged. The difference is the **image reliance**, in nats
# per answer token.

# %%
reliance = recipes.image_reliance(run.model, val_examples, val_features.patches,
                                  pad_id_of(tokenizer))
val_loss_after = reliance["loss_own_image"]
write_loss_log(run.result.log, out / "loss.csv")
figure = figures.plot_loss(run.result.log, out / "figures" / "loss.png",
                           f"pre-training (connector only), {llm}")
display(Image(filename=str(figure)))
print(f"validation loss: {val_loss_before:.3f} -> {val_loss_after:.3f}; with another "
      f"record's image {reliance['loss_other_image']:.3f} (image reliance "
      f"{reliance['image_reliance']:+.4f})")

# %%
first = run.result.log[: max(1, len(run.result.log) // 10)]
last = run.result.log[-max(1, len(run.result.log) // 10):]
metrics = {
    "profile": profile,
    "records": run.n_records,
    "steps": run.result.steps,
    "resumed_from_step": run.result.resumed_from,
    "train_seconds": round(train_seconds, 1),
    "train_samples_per_second": round(run.result.samples_per_second, 3),
    "train_loss_start": round(sum(r["loss"] for r in first) / len(first), 4),
    "train_loss_end": round(sum(r["loss"] for r in last) / len(last), 4),
    "val_loss_before": round(val_loss_before, 4),
    "val_loss_after": round(val_loss_after, 4),
    "val_loss_other_image": round(reliance["loss_other_image"], 4),
    "image_reliance": round(reliance["image_reliance"], 4),
    "trainable_parameters": run.trainable_parameters,
    "total_parameters": run.total_parameters,
    "image_tokens": run.model.n_image_tokens,
}
(out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
metrics
