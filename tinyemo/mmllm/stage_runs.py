"""The two training stages end to end, shared by the notebooks and `launch.py`.

`pretrain_run`: a fresh connector on the frozen base LLM learns from the EmoScenes
pre-training records (captions, visual QA, sentiment QA, or the captions only); the
word-grounded connector is first fitted without the LLM, on the training captions' words.
`finetune_run`: the pre-trained MM-LLM gets LoRA adapters (or its whole LLM is unfrozen)
and learns the instruct records, mixed with caption records of the training images
(TinyLLaVA's fine-tuning mix holds captions too: they name every object in the image).
Both read cached patch features, never images, and save to `models/mmllm/<stage>/` (a
reference connector's model to `models/mmllm/<stage>/<connector>/`).

Nothing trained is lost to a later failure. The run's resumable work goes to
`models/mmllm/checkpoints/<stage>/` (outside the stage's DVC output, which DVC clears
before a run; the runner removes it once the stage has succeeded): the records' token
cache, the checkpoints, and, when training ends, a copy of the finished model. The model
is saved, with its training record (`training.json`: the run's fingerprint, loss log and
measurements), before anything evaluates it; a rerun of the stage whose training has the
same fingerprint finds that model (in the stage's output, or its copy) and skips training.
After training the model stays on the training device and evaluates there, in the
precision it trained in (`tinyemo.devices`).

The measurements the notebooks share sit here too: held-out loss, image reliance, the test
images and the linear probe of their patches.
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from safetensors.torch import load_file

from tinyemo import config as tconfig
from tinyemo import devices
from tinyemo.devices import inference, model_device
from tinyemo.feature_store import load_features
from tinyemo.mmllm import artifact, ceiling, grounding, infer
from tinyemo.mmllm.checkpoint import PREFIX, checkpoint_dir, load_trainable
from tinyemo.mmllm.conversations import resolve
from tinyemo.mmllm.connector import match_embedding_norm
from tinyemo.mmllm.data import (LazyExamples, build_examples, cached_examples, image_id, pad_id_of,
                                subsample, summarise, to_device, training_batch)
from tinyemo.mmllm.processes import launched_run
from tinyemo.mmllm.records import record_examples, records_features
from tinyemo.mmllm.train import (Run, TrainConfig, TrainingRun, fingerprint, micro_batch_size,
                                 schedule, train, weights_digest)
from tinyemo.scenes import load_conversations
from tinyemo.scenes.teacher import CAPTION_QUESTION

TOKENS = "tokens"  # the token cache's folder in a run's checkpoint folder
FINISHED = "finished"  # the finished model's copy there

def section_from(name: str, namespace: dict) -> tconfig.Section:
    """The validated params section `name` from a notebook's parameter variables."""
    fields = tconfig.SECTION_SCHEMAS[name].model_fields
    return tconfig.validate_section(name, {k: namespace[k] for k in fields if k in namespace})


def caption_records(split: str) -> list[dict]:
    """The pre-training records that ask for a caption ("Describe the image.")."""
    return [record for record in load_conversations("pretrain", split)
            if record["conversations"][0]["value"].endswith(CAPTION_QUESTION)]


def caption_bags(split: str, feature_ids: list[str], vocabulary) -> "torch.Tensor":
    """[N, W] caption bag of words of each feature row's image (zero rows: no caption)."""
    text = {image_id(r): r["conversations"][1]["value"] for r in caption_records(split)}
    return grounding.bag_of_words([text.get(i, "") for i in feature_ids], vocabulary)


def training_features(kind: str, params):
    """The train split's cached features: EmoScenes', or those `params.records_features`
    names when the stage trains on a records file."""
    if params.records_file:
        return records_features(kind, params.records_features)
    return load_features("emoscenes", "train")


def examples_of(kind: str, split: str, tokenizer, features, n: int | None, seed: int,
                n_image_tokens: int, params, n_captions: int | None = 0,
                cache: Path | None = None, accelerator=None):
    """`n` records of `kind` plus `n_captions` caption records (None: all), tokenised.
    Pre-training params with `records: captions` draw the `n` from the captions only.
    With `params.records_file`, `n` records of that file (`features` from
    `training_features`), tokenised when read. With `cache` (a run's checkpoint folder),
    tokenised once into its token cache (`data.cached_examples`: by the main process of
    `accelerator`, with `params.num_workers` workers) and read from there."""
    if params.records_file:
        source = record_examples(kind, params, tokenizer, features, n, seed, n_image_tokens)
    else:
        captions_only = kind == "pretrain" and getattr(params, "records", "all") == "captions"
        pool = caption_records(split) if captions_only else load_conversations(kind, split)
        records = subsample(pool, n, seed)
        if n_captions != 0:
            records += subsample(caption_records(split), n_captions, seed + 1)
        if cache is None:
            return build_examples(records, tokenizer, features.ids, n_image_tokens,
                                  params.max_length, params.system_prompt)
        source = LazyExamples(records, tokenizer, features.ids, n_image_tokens, params.max_length,
                              params.system_prompt)
    if cache is None:
        return source
    return cached_examples(source, Path(cache) / TOKENS, accelerator, params.num_workers)


def held_out_captions(tokenizer, features, n: int, seed: int, n_image_tokens: int, params) -> list:
    """`n` caption records of the validation split, tokenised (the image-reliance set)."""
    records = subsample(caption_records("val"), n, seed)
    return build_examples(records, tokenizer, features.ids, n_image_tokens, params.max_length,
                          params.system_prompt)


def section_name(params) -> str:
    """The params section a validated section object is (`pretrain`, `finetune`)."""
    return next(name for name, schema in tconfig.SECTION_SCHEMAS.items() if type(params) is schema)


def train_config(params, seed: int, max_steps: int | None = None) -> TrainConfig:
    """The training loop's settings from a stage's params; a global batch the processes
    and accumulation steps do not divide is refused here, before any model loads."""
    config = TrainConfig(epochs=params.epochs, batch_size=params.batch_size, lr=params.lr,
                         warmup_ratio=params.warmup_ratio, max_steps=max_steps,
                         checkpoint_every=params.checkpoint_every, seed=seed,
                         gradient_accumulation_steps=params.gradient_accumulation_steps,
                         mixed_precision=params.mixed_precision,
                         gradient_checkpointing=params.gradient_checkpointing,
                         num_workers=params.num_workers)
    micro_batch_size(config, params.num_processes, section_name(params))
    return config


def finished_run(model, tokenizer, out_dir: Path, run_id: str) -> Run | None:
    """The finished model of the training named `run_id`, put into `model`, if the stage's
    output or its copy in the run's checkpoint folder holds one; else None."""
    for folder in (Path(out_dir), checkpoint_dir(out_dir) / FINISHED):
        record = artifact.training_record(folder)
        if record is None or record.get("fingerprint") != run_id:
            continue
        load_trainable(model, load_file(folder / artifact.WEIGHTS_FILE),
                       expected=[n for n, p in model.named_parameters() if p.requires_grad])
        print(f"training skipped: {folder} holds the finished model of this training "
              f"(fingerprint {run_id}, {record['result']['steps']} steps)")
        counts = [(p.numel(), p.requires_grad) for p in model.parameters()]
        return Run(model, tokenizer, TrainingRun(**record["result"]), record["n_records"],
                   sum(n for n, g in counts if g), sum(n for n, _ in counts),
                   curve=record["curve"], fingerprint=run_id)
    return None


def _fit(model, tokenizer, examples, features, params, seed, out_dir, max_steps, accelerator,
         every: int = 0, probe=None) -> Run:
    """Train; with `probe` ((model, tokenizer) -> dict of measures), measure every `every`
    steps (a negative `every`: at -every evenly spaced points) and at the end (`Run.curve`).
    The run is cut at those steps and resumed from its checkpoint, so it trains exactly as
    it would uninterrupted. A finished model of the same training (`finished_run`) is
    taken instead of training. Afterwards the model is on the training device, in the
    precision it trained in."""
    config = train_config(params, seed, max_steps)
    run = _trained(model, tokenizer, examples, features, config, out_dir, accelerator, every, probe)
    devices.place(run.model, config.mixed_precision,
                  accelerator.device if accelerator is not None else None)
    return run


def _trained(model, tokenizer, examples, features, config, out_dir, accelerator, every, probe) -> Run:
    counts = [(p.numel(), p.requires_grad) for p in model.parameters()]
    sizes = (sum(n for n, g in counts if g), sum(n for n, _ in counts))
    if not examples:
        return Run(model, tokenizer, TrainingRun(0, 0, 0.0, 0), 0, *sizes, curve=[])
    curve, cpu, seconds, samples, resumed_from = [], 0.0, 0.0, 0, None
    stops = [None]
    if every and probe:
        total = schedule(config, len(examples))[1]
        every = every if every > 0 else max(1, -(-total // -every))
        config = replace(config, checkpoint_every=every)
        stops = list(range(every, total, every)) + [None]
    summary = summarise(examples, features.patches)
    run_id = fingerprint(config, summary[1], model, weights_digest(model))  # one name for every stretch
    found = finished_run(model, tokenizer, out_dir, run_id)
    if found is not None:
        return found
    for stop in stops:
        started = time.process_time()
        result = train(model, examples, features.patches, pad_id_of(tokenizer), config,
                       checkpoint_dir(out_dir), accelerator, stop_after=stop, summary=summary,
                       run_id=run_id)
        cpu += time.process_time() - started
        seconds, samples = seconds + result.seconds, samples + result.samples
        resumed_from = result.resumed_from if resumed_from is None else resumed_from
        if probe and every:
            curve.append({"step": result.steps, "train_cpu_minutes": cpu / 60,
                          **probe(model, tokenizer)})
    result = replace(result, samples=samples, seconds=seconds, resumed_from=resumed_from or 0)
    return Run(model, tokenizer, result, len(examples), *sizes, curve=curve, fingerprint=run_id)


def training_record(run: Run) -> dict | None:
    """What `finished_run` needs to stand in for the training (None: nothing trained)."""
    if run.fingerprint is None:
        return None
    result = run.result
    return {"fingerprint": run.fingerprint, "n_records": run.n_records, "curve": run.curve,
            "result": {"steps": result.steps, "samples": result.samples, "seconds": result.seconds,
                       "resumed_from": result.resumed_from, "log": result.log}}


def finish(run: Run, out_dir: Path, saved_config: dict, accelerator=None) -> None:
    """Save the trained model with its training record, to the stage's output and to the
    run's checkpoint folder (which DVC does not clear before a rerun), and drop the
    resumable steps (the training is complete)."""
    if accelerator is None or accelerator.is_main_process:
        work = checkpoint_dir(out_dir)
        for folder in (out_dir, work / FINISHED):
            artifact.save_mmllm(folder, run.model, saved_config, training_record(run))
        for step in work.glob(f"{PREFIX}*"):
            shutil.rmtree(step, ignore_errors=True)


def reference_params(params):
    """The pre-training params of the reference connector (`params.reference_connector`):
    a free connector whose stage 1 reads caption records only, starting from tokens of
    word-embedding norm, with the LLM in the loop for `reference_records` records."""
    return params.model_copy(update={
        "connector": params.reference_connector, "records": "captions",
        "n_records": params.reference_records, "match_word_norm": True,
        "reference_connector": None})


def model_dir(stage: str, connector: str | None = None) -> Path:
    """models/mmllm/<stage> (the profile's connector), or the reference connector's model
    inside it, models/mmllm/<stage>/<connector> (one DVC output per stage)."""
    folder = artifact.MODEL_DIR / stage
    return folder / connector if connector else folder


def connector_vocabulary(base, params) -> grounding.Vocabulary | None:
    """The word-grounded connector's vocabulary from the training captions (else None)."""
    if params.connector != "word_grounded":
        return None
    from tinyemo.models.llm import load_embedding_table

    tokenizer, _ = load_embedding_table(base.llm)
    captions = [r["conversations"][1]["value"] for r in caption_records("train")]
    return grounding.caption_vocabulary(captions, tokenizer)


def pretrain_run(base, params, out_dir: Path, max_steps: int | None = None, accelerator=None,
                 every: int = 0, probe=None) -> Run:
    if params.num_processes > 1 and accelerator is None:  # the stage itself: launch the processes
        return launched_run("pretrain", params, out_dir, max_steps=max_steps)
    features = training_features("pretrain", params)
    vocabulary = connector_vocabulary(base, params)
    options = {"token_ids": vocabulary.token_ids, "top_k": params.top_k} if vocabulary else None
    torch.manual_seed(base.seed)  # the connector's initial weights
    model, tokenizer = artifact.build_mmllm(
        base.llm, base.vision_tower, features.patches.shape[1], params.connector,
        connector_options=options, conversation=params.conversation)
    table = model.llm.get_input_embeddings().weight
    word_fit = None
    if vocabulary:
        bags = caption_bags("train", features.ids, vocabulary)
        word_fit = grounding.fit_word_scorer(model.connector, features.patches, bags,
                                             params.fit_epochs, seed=base.seed)
    elif params.match_word_norm:
        match_embedding_norm(model.connector, features.patches[:256].float(), table.detach())
    artifact.set_trainable(model, "connector")
    examples = examples_of("pretrain", "train", tokenizer, features, params.n_records, base.seed,
                           model.n_image_tokens, params, cache=checkpoint_dir(out_dir),
                           accelerator=accelerator) if params.n_records != 0 else []
    run = _fit(model, tokenizer, examples, features, params, base.seed, out_dir, max_steps,
               accelerator, every, probe)
    run.word_fit, run.vocabulary = word_fit, vocabulary
    finish(run, out_dir, {
        "llm": base.llm, "vision_tower": base.vision_tower, "connector": params.connector,
        "connector_options": options, "connector_words": vocabulary.words if vocabulary else None,
        "n_patches": model.n_patches, "n_image_tokens": model.n_image_tokens,
        "conversation": resolve(params.conversation, base.llm),
        "system_prompt": params.system_prompt, "lora": None, "trained": "connector",
        "stage": "pretrain", "mixed_precision": params.mixed_precision,
    }, accelerator)
    return run


def finetune_run(base, params, pretrain_dir: Path, out_dir: Path, max_steps: int | None = None,
                 accelerator=None, every: int = 0, probe=None) -> Run:
    if params.num_processes > 1 and accelerator is None:  # the stage itself: launch the processes
        return launched_run("finetune", params, out_dir, pretrain_dir, max_steps)
    features = training_features("finetune", params)
    conversation = resolve(params.conversation, base.llm)
    model, tokenizer, saved = artifact.load_mmllm(
        pretrain_dir, merge=False, stage="pretrain", conversation=conversation,
        device=None)  # the CPU: accelerate places it
    lora = None
    torch.manual_seed(base.seed)  # the LoRA adapters' initial weights
    if params.trainable == "lora":
        lora = {"r": params.lora_r, "alpha": params.lora_alpha, "dropout": params.lora_dropout,
                "targets": params.lora_targets}
        artifact.add_lora(model, **lora)
    artifact.set_trainable(model, params.trainable)
    examples = examples_of("finetune", "train", tokenizer, features, params.n_records, base.seed,
                           model.n_image_tokens, params, params.caption_records,
                           cache=checkpoint_dir(out_dir), accelerator=accelerator)
    run = _fit(model, tokenizer, examples, features, params, base.seed, out_dir, max_steps,
               accelerator, every, probe)
    finish(run, out_dir, {**saved, "conversation": conversation,
                          "system_prompt": params.system_prompt, "lora": lora,
                          "trained": params.trainable, "stage": "finetune",
                          "mixed_precision": params.mixed_precision,
                          "decoding": infer.Decoding.of(params).as_dict()}, accelerator)
    return run


@torch.no_grad()
def image_token_words(model, patches: torch.Tensor, words: list[str]) -> list[list[str]] | None:
    """The caption words a word-grounded connector makes of each image, in its order (the
    image tokens the LLM reads); None for a free connector, whose tokens are no words."""
    shown = model.shown_token_ids(patches.to(model_device(model)))
    if shown is None:
        return None
    word_of = dict(zip(model.connector.token_ids.tolist(), words))
    return [[word_of[token] for token in row] for row in shown.tolist()]


@torch.no_grad()
def answer_losses(model, examples, patches, pad_id: int, batch_size: int = 8):
    """(per-token loss [n], target token id [n], on the CPU) over every answer token of
    `examples`; batches go to the model's device, in the precision it trained in."""
    model.eval()
    device = model_device(model)
    losses, targets = [], []
    for start in range(0, len(examples), batch_size):
        batch = to_device(training_batch(examples[start:start + batch_size], patches, pad_id), device)
        with inference(model):
            out = model(**batch)
        losses.append(torch.nn.functional.cross_entropy(out.logits.float(), out.targets,
                                                        reduction="none").cpu())
        targets.append(out.targets.cpu())
    return torch.cat(losses), torch.cat(targets)


def mean_loss(model, examples, patches, pad_id: int, batch_size: int = 8) -> float:
    """Answer-token loss of `model` on `examples` (weighted by answer tokens)."""
    return float(answer_losses(model, examples, patches, pad_id, batch_size)[0].mean())


def image_reliance(model, examples, patches, pad_id: int, batch_size: int = 8,
                   focus_ids: set[int] | None = None) -> dict[str, float]:
    """Does the model read the image? Its answer loss on `examples` with each record's own
    image, and with another record's image (every distinct image swapped for the next one).
    A model that ignores its image tokens scores the same on both. With `focus_ids` (the
    token ids of object names), also the rise on those answer tokens alone
    (`image_reliance_object_words`): the tokens that only the image can predict."""
    rows = sorted({e.patch_row for e in examples})
    if len(rows) < 2:
        raise ValueError("image reliance needs records of at least two different images")
    swap = dict(zip(rows, rows[1:] + rows[:1]))
    swapped = [replace(e, patch_row=swap[e.patch_row]) for e in examples]
    own, targets = answer_losses(model, examples, patches, pad_id, batch_size)
    other, _ = answer_losses(model, swapped, patches, pad_id, batch_size)
    result = {"loss_own_image": float(own.mean()), "loss_other_image": float(other.mean()),
              "image_reliance": float((other - own).mean())}
    if focus_ids is not None:
        focus = torch.isin(targets, torch.tensor(sorted(focus_ids), dtype=targets.dtype))
        result["object_word_tokens"] = int(focus.sum())
        result["image_reliance_object_words"] = (
            float((other - own)[focus].mean()) if focus.any() else float("nan"))
    return result


@dataclass
class TestImages:
    """A seeded subset of the EmoScenes test split, aligned across its sources."""

    scenes: list  # SceneRecord per image
    references: list[dict]  # the image's fine-tuning record (prompt naming the true label)
    pooled: torch.Tensor  # [N, D] for the Metric Projector
    patches: torch.Tensor  # [N, P, C] for the MM-LLM

    def examples(self, tokenizer, n_image_tokens: int, params) -> list:
        """The reference records tokenised, image i with patch row i (for `image_reliance`)."""
        return build_examples(self.references, tokenizer, [s.id for s in self.scenes],
                              n_image_tokens, params.max_length, params.system_prompt)


def scene_features(split: str):
    """(cached features, the SceneRecord of each feature row) of an EmoScenes split."""
    from tinyemo.scenes import load_scene_records

    features = load_features("emoscenes", split)
    by_id = {record.id: record for record in load_scene_records(split=split)}
    return features, [by_id[i] for i in features.ids]


def join_test_images(features, scenes: list, records: list[dict], n: int, seed: int) -> TestImages:
    """A seeded subset of `n` feature rows with their scene and fine-tuning record; every
    row's scene id, feature id and record image agree (else a ValueError)."""
    references = {image_id(r): r for r in records}
    order = torch.randperm(len(features.ids), generator=torch.Generator().manual_seed(seed))
    rows = sorted(order[:n].tolist())
    missing = [features.ids[r] for r in rows if features.ids[r] not in references]
    if missing or any(scenes[r].id != features.ids[r] for r in rows):
        raise ValueError(f"test features, scene records and fine-tuning records disagree "
                         f"(no record for {missing[:3]}); re-run `dvc repro synthesize features`")
    return TestImages([scenes[r] for r in rows], [references[features.ids[r]] for r in rows],
                      features.pooled[rows], features.patches[rows].float())


def test_images(n: int, seed: int, split: str = "test") -> TestImages:
    """`n` seeded images of an EmoScenes split (test: final reporting; val: measurements
    along training) with their scene records and fine-tuning records."""
    features, scenes = scene_features(split)
    return join_test_images(features, scenes, load_conversations("finetune", split), n, seed)


def grounding_measures(model, tokenizer, images: TestImages, params) -> dict:
    """Image reliance (all answer tokens and object words) on the images' reference answers,
    and key-object recall, hallucination and emotion naming of the reasonings the model
    writes for their prompts (the true label hinted): one point of a training curve."""
    from tinyemo.mmllm import evaluate

    examples = images.examples(tokenizer, model.n_image_tokens, params)
    measures = image_reliance(model, examples, images.patches, pad_id_of(tokenizer),
                              focus_ids=evaluate.object_token_ids(tokenizer))
    texts = infer.generate(model, tokenizer, [r["conversations"][0]["value"] for r in images.references],
                           images.patches, params.max_new_tokens, params.eval_batch_size,
                           params.system_prompt, "curve", infer.Decoding.of(params))
    summary = evaluate.summarize_reasonings(evaluate.scores_of(texts, images.scenes))
    return measures | {k: summary[k] for k in ("key_object_recall", "hallucination_rate",
                                                "reasoning_names_correct_emotion")}


def oracle_words(images: TestImages, split: str, saved_config: dict):
    """(token ids [N, T], words) of each image's own caption words, heaviest by IDF first
    (repeated in turn to fill the T image tokens): what a perfect word-grounded connector
    would show the LLM (`TinyLlava.embed` takes the ids in place of patches). None for a
    free connector, whose tokens are no words."""
    if saved_config["connector"] != "word_grounded":
        return None
    token_ids = saved_config["connector_options"]["token_ids"]
    vocabulary = grounding.Vocabulary(saved_config["connector_words"], token_ids)
    bags = caption_bags(split, [scene.id for scene in images.scenes], vocabulary)
    chosen = grounding.heaviest_words(grounding.idf_weighted(bags), saved_config["n_image_tokens"])
    return (torch.tensor(token_ids)[chosen],
            [[vocabulary.words[i] for i in row] for row in chosen.tolist()])


def vision_probe(fit_split: str = "train", test_split: str = "test",
                 calibration_split: str = "val") -> dict[str, float]:
    """What the cached patches carry, read on `test_split` by two probes fitted on
    `fit_split`: `ceiling.patch_probe` (an MLP on every patch, its threshold chosen on
    `calibration_split`; the plain keys) and the linear `ceiling.probe` of the grid's mean
    and max (keys `linear_*`)."""
    fit_features, fit_scenes = scene_features(fit_split)
    test_features, test_scenes = scene_features(test_split)
    calibration_features, calibration_scenes = scene_features(calibration_split)
    linear = ceiling.probe(fit_features.patches, fit_scenes, test_features.patches, test_scenes)
    return ceiling.patch_probe(fit_features.patches, fit_scenes, test_features.patches, test_scenes,
                               calibration_features.patches, calibration_scenes) | {
        f"linear_{key}": value for key, value in linear.items()}
