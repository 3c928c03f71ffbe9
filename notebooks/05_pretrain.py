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
# into a grid of patch tokens, a small **connector** turns them into *image tokens* in the
# LLM's input-embedding space, and those are spliced into the prompt where `<image>`
# stands. The LLM then reads them like words.
#
# ## The connector: words the LLM already knows
#
# TinyLLaVA's connector (`mlp2x_gelu`: Linear, GELU, Linear) emits free vectors that the
# LLM has to learn to read; LLaVA and TinyLLaVA spend about 2,200 optimiser steps of stage 1
# on that alignment. On a CPU budget of a few dozen steps it does not happen: a fresh
# `mlp2x_gelu` emits tokens about four times longer than any word embedding, the mean
# tokens of two different images point the same way, and the cheapest thing to learn is an
# image-independent soft prompt (the *image reliance* below measures exactly this).
#
# The default profile's connector, **`word_grounded`**, makes the image tokens *words*:
# per patch, a small MLP (LayerNorm, Linear, GELU, Linear) scores a vocabulary of caption
# words, and the image tokens are the chosen words' **exact rows of the LLM's own
# input-embedding table** (`top_k` distinct words per image, the patch distributions
# averaged; or the top word of every patch when `top_k` is 0). The choice is hard; the
# gradient flows through the softmax (straight-through), so fine-tuning can still adjust
# the scorer. This is the paper's own idea, a metric projection into the LLM's embedding
# space, applied per patch instead of per image. It has published precedents: LiMBeR
# (Merullo et al., 2023: a linear map from a frozen image encoder into a frozen LM's input
# space suffices), LQAE (Liu et al., 2023: images quantised onto a frozen LM's token
# embeddings), SPAE (Yu et al., 2023: a pyramid of lexical tokens an LLM can read) and the
# V2L tokenizer (Zhu et al., 2024: image features mapped onto an LLM's vocabulary).
#
# Because the tokens are words, the scorer is **fitted first without the LLM**: its
# patch-averaged distribution is pulled towards each training image's caption bag of words
# (cross-entropy; the vocabulary is the single-token caption words found in at least 3
# captions and at most half of them). That takes seconds and replaces most of the
# LLM-in-the-loop stage 1; `n_records` caption records with the LLM in the loop may follow.
# The vocabulary (words and token ids) is saved in `mmllm.json`, so `load_mmllm` and
# `tinyemo explain` rebuild the same connector.
#
# ## The reference connector
#
# `reference_connector` (`mlp2x_gelu`, the paper profile's connector) trains beside it, so
# the report can show both: its stage 1 reads **caption records only** (they name every
# object), starts from tokens of **word-embedding norm** (its last layer rescaled), warms up
# and runs `reference_records` records, with the image reliance measured every
# `curve_every` steps on held-out captions: the curve says what more steps would buy.
#
# Choices made here (the paper does not say; TinyLLaVA's defaults where they fit a CPU):
#
# - Patch tokens come from the `features` stage's cache (the vision tower is frozen, so
#   re-encoding images every step would only cost time). The default EfficientNet-Lite0
#   gives a 7x7 grid of 320-d patches.
# - Prompts are rendered by a **conversation template** (`conversation`, see
#   `tinyemo/mmllm/conversations.py`): the default profile's SmolLM2 uses its **own chat
#   template**; the paper profile uses TinyLLaVA's recipe, its `plain` template in this stage
#   (`<image>` + caption) and its USER/ASSISTANT template with its system sentence in the next,
#   with a BOS token where the LLM's tokenizer adds one. The loss covers the **answer tokens
#   only** (and the end-of-turn marker, so the model learns to stop).
# - The LM head runs only on the answer positions: most of a sequence is image and prompt
#   tokens, and SmolLM2's vocabulary has 49k entries.
# - Checkpoints every `checkpoint_every` steps (weights of the connector, optimizer,
#   scheduler, RNG, loss log) let an interrupted run resume; the loop runs unchanged under
#   `accelerate launch` (see `tinyemo/mmllm/launch.py`).

# %% tags=["parameters"]
profile = "default"
seed = 0
threads = 2
vision_tower = "efficientnet-lite0"
llm = "smollm2-135m-instruct"
n_records = 0
records = "captions"
epochs = 1
batch_size = 8
lr = 1.0e-3
warmup_ratio = 0.1
max_length = 256
checkpoint_every = 25
conversation = "auto"
system_prompt = ""
connector = "word_grounded"
match_word_norm = False
top_k = 12
fit_epochs = 8
n_val_records = 32
reference_connector = "mlp2x_gelu"
reference_records = 240
curve_every = 10
gradient_accumulation_steps = 1
mixed_precision = "no"
gradient_checkpointing = False
num_processes = 1
accelerate_config = None
num_workers = 0
records_file = None
records_features = None

# %%
import json
import time

import pandas as pd
import torch
from IPython.display import Image, display

from tinyemo import devices, paths
from tinyemo.feature_store import load_features
from tinyemo.mmllm import artifact, figures, grounding, stage_runs
from tinyemo.mmllm.data import pad_id_of
from tinyemo.mmllm.prompts import IMAGE_TOKEN_ID
from tinyemo.mmllm.train import write_loss_log

torch.set_num_threads(threads)
base = stage_runs.section_from("base", globals())
params = stage_runs.section_from("pretrain", globals())
out = paths.stage_results("pretrain")
(out / "figures").mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## Before training
#
# The held-out loss of the untrained model (the connector seeded like the one that will
# train) on caption records of the validation split: the number to beat.

# %%
val_features = load_features("emoscenes", "val")
vocabulary = stage_runs.connector_vocabulary(base, params)
torch.manual_seed(seed)
untrained, tokenizer = artifact.build_mmllm(
    llm, vision_tower, val_features.patches.shape[1], connector,
    connector_options={"token_ids": vocabulary.token_ids, "top_k": top_k} if vocabulary else None,
    conversation=conversation)
devices.place(untrained, mixed_precision)  # measured where the trained model will be
pad_id = pad_id_of(tokenizer)
val_examples = stage_runs.held_out_captions(tokenizer, val_features, n_val_records, seed,
                                         untrained.n_image_tokens, params)
val_loss_before = stage_runs.mean_loss(untrained, val_examples, val_features.patches, pad_id)
del untrained
example = val_examples[0]
print(f"a record: {len(example.input_ids)} tokens, of which "
      f"{example.input_ids.count(IMAGE_TOKEN_ID)} image tokens and "
      f"{sum(label >= 0 for label in example.labels)} answer tokens")
print(f"validation loss before training: {val_loss_before:.3f}")
if vocabulary:
    print(f"vocabulary: {len(vocabulary.words)} caption words, e.g. {', '.join(vocabulary.words[:30])}")

# %% [markdown]
# ## Train the connector
#
# The word scorer's fit without the LLM first (word-grounded connector), then the
# LLM-in-the-loop steps, if `n_records` asks for any.

# %%
started, cpu_started = time.perf_counter(), time.process_time()
run = stage_runs.pretrain_run(base, params, stage_runs.model_dir("pretrain"))
train_seconds = time.perf_counter() - started
train_cpu_seconds = time.process_time() - cpu_started
print(f"{run.result.steps} LLM-in-the-loop steps on {run.n_records} records; "
      f"{train_seconds:.0f} s in all; trainable parameters "
      f"{run.trainable_parameters:,} of {run.total_parameters:,}")

# %% [markdown]
# How well the fitted scorer names a held-out image's caption words: the share of its
# `top_k` words that the image's caption holds (precision@k), on the validation images.

# %%
word_precision = None
if run.word_fit:
    val_bags = stage_runs.caption_bags("val", val_features.ids, run.vocabulary)
    with torch.no_grad():
        distribution = run.model.connector.image_distribution(val_features.patches)
    word_precision = grounding.precision_at(distribution, val_bags, top_k or 8)
    display(Image(filename=str(figures.plot_curve(
        run.word_fit, "epoch", ["loss"], out / "figures" / "word_fit.png",
        "word scorer fitted without the LLM (caption bags of words)"))))
    words = run.vocabulary.words
    chosen = run.model.connector.chosen_words(val_features.patches[:3])
    for image, row in zip(val_features.ids[:3], chosen.tolist()):
        print(f"{image}: {' '.join(words[i] for i in row)}")
    print(f"validation precision@{top_k or 8} of the image's words: {word_precision:.3f}")

# %% [markdown]
# Only the connector may have trained: the saved weights hold nothing of the LLM.

# %%
from safetensors import safe_open

with safe_open(stage_runs.model_dir("pretrain") / artifact.WEIGHTS_FILE, framework="pt") as saved:
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
reliance = stage_runs.image_reliance(run.model, val_examples, val_features.patches, pad_id)
write_loss_log(run.result.log, out / "loss.csv")  # header only when no LLM-in-the-loop step ran
print(f"validation loss: {val_loss_before:.3f} -> {reliance['loss_own_image']:.3f}; with another "
      f"record's image {reliance['loss_other_image']:.3f} (image reliance "
      f"{reliance['image_reliance']:+.4f})")

# %% [markdown]
# ## The reference connector
#
# `mlp2x_gelu` with the stage 1 described above, and its image reliance on the same
# held-out captions every `curve_every` steps. On the default profile it climbs by about
# 0.004 nats per answer token every 10 steps (0.010 after 30 steps, about 4 CPU-minutes),
# against 0.19 for the word-grounded connector before any LLM-in-the-loop step: at that
# rate the reference would need several hundred steps to reach it, so its budget stays
# small and the figure in the finetune notebook shows the comparison per CPU-minute.

# %%
reference = None
if reference_connector:
    reference_params = stage_runs.reference_params(params)
    started = time.perf_counter()
    reference_examples = stage_runs.held_out_captions(tokenizer, val_features, n_val_records, seed,
                                                   val_features.patches.shape[1], params)
    reference = stage_runs.pretrain_run(
        base, reference_params, stage_runs.model_dir("pretrain", reference_connector),
        every=curve_every, probe=lambda model, _: stage_runs.image_reliance(
            model, reference_examples, val_features.patches, pad_id))
    reference_seconds = time.perf_counter() - started
    curve = pd.DataFrame(reference.curve)
    display(Image(filename=str(figures.plot_curve(
        reference.curve, "step", ["image_reliance"], out / "figures" / "reference_reliance.png",
        f"{reference_connector} stage 1: image reliance on held-out captions"))))
    display(curve.round(4))

# %%
def stage_one(run, reliance, seconds) -> dict:
    return {
        "records": run.n_records,
        "steps": run.result.steps,
        "resumed_from_step": run.result.resumed_from,
        "train_seconds": round(seconds, 1),
        "val_loss_after": round(reliance["loss_own_image"], 4),
        "val_loss_other_image": round(reliance["loss_other_image"], 4),
        "image_reliance": round(reliance["image_reliance"], 4),
        "trainable_parameters": run.trainable_parameters,
        "image_tokens": run.model.n_image_tokens,
    }


metrics = {
    "profile": profile,
    "connector": connector,
    "val_loss_before": round(val_loss_before, 4),
    **stage_one(run, reliance, train_seconds),
    "train_cpu_seconds": round(train_cpu_seconds, 1),
    "total_parameters": run.total_parameters,
    "vocabulary_words": len(run.vocabulary.words) if run.vocabulary else None,
    "word_precision_val": round(word_precision, 4) if word_precision is not None else None,
}
if reference:
    metrics[reference_connector] = {
        **stage_one(reference, reference.curve[-1], reference_seconds),
        "reliance_curve": [{k: round(v, 4) for k, v in row.items()} for row in reference.curve],
    }
(out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
metrics
