"""Classification detachment, measured: the Metric Projector vs. the MM-LLM as classifiers.

In one run, on the same EmoScenes test images:

- classification throughput (images/s, batched) and latency (ms per image, one at a time)
  of the detached classifier (the projector on pooled embeddings; and end to end, with the
  vision tower encoding the image files) vs. generative classification (the fine-tuned
  MM-LLM reads the image tokens and writes until its `Emotion:` line), with both accuracies;
- training cost (samples/s, peak resident memory) of the projector vs. the MM-LLM (LoRA
  fine-tuning steps), each measured in a fresh process.

Run from the repository root after `dvc repro finetune`:

    python benchmarks/efficiency.py [--images 32] [--out results/benchmarks/efficiency.json]
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import sys
import time
from pathlib import Path

import torch

TARGET_RATIO = 50.0  # the target: detached >= 50x the generative throughput


def timed(fn, repeat: int = 1) -> float:
    """Seconds per call of fn (mean over `repeat` calls)."""
    started = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - started) / repeat


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _projector_training(threads: int) -> dict:
    from tinyemo.feature_store import load_features
    from tinyemo.projector.anchors import AnchorSet
    from tinyemo.projector.artifact import load_projector
    from tinyemo.projector.train import Recipe, train_projector

    torch.set_num_threads(threads)
    features = load_features("emoscenes", "train")
    projector = load_projector(Path("models/projector/emoscenes"))
    anchors = AnchorSet(projector.label_names, projector.anchors)
    recipe = Recipe()
    result = train_projector(features.pooled, features.label_ids(), anchors, recipe)
    samples = len(features) // recipe.batch_size * recipe.batch_size * recipe.epochs
    return {"samples_per_second": samples / result.seconds, "samples": samples,
            "seconds": result.seconds, "peak_rss_mb": peak_rss_mb(),
            "trainable_parameters": sum(p.numel() for p in result.model.parameters())}


def _mmllm_training(threads: int, steps: int, batch_size: int) -> dict:
    from tinyemo import config
    from tinyemo.feature_store import load_features
    from tinyemo.mmllm import artifact, stage_runs
    from tinyemo.mmllm.data import pad_id_of
    from tinyemo.mmllm.train import TrainConfig, train

    torch.set_num_threads(threads)
    params = config.load_params()["finetune"]
    features = load_features("emoscenes", "train")
    model, tokenizer, _ = artifact.load_mmllm(artifact.MODEL_DIR / "pretrain", merge=False,
                                              stage="pretrain")
    if params.trainable == "lora":
        artifact.add_lora(model, params.lora_r, params.lora_alpha, params.lora_dropout,
                          params.lora_targets)
    artifact.set_trainable(model, params.trainable)
    examples = stage_runs.examples_of("finetune", "train", tokenizer, features, steps * batch_size,
                                   0, model.n_image_tokens, params)
    result = train(model, examples, features.patches, pad_id_of(tokenizer),
                   TrainConfig(batch_size=batch_size, lr=params.lr, checkpoint_every=0))
    return {"samples_per_second": result.samples_per_second, "samples": result.samples,
            "seconds": result.seconds, "peak_rss_mb": peak_rss_mb(),
            "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad)}


def in_fresh_process(fn, *args) -> dict:
    """Run fn in a spawned process, so that its peak memory is its own."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, args)


def classification(args) -> dict:
    from tinyemo.mmllm import evaluate, infer, stage_runs
    from tinyemo.mmllm.explainer import Explainer, read_image
    from tinyemo import paths

    explainer = Explainer(args.model, args.projector)
    test = stage_runs.test_images(args.images, args.seed)
    files = [paths.EMOSCENES / "images" / s.image for s in test.scenes]
    truth = [s.label for s in test.scenes]
    projector, model, tokenizer = explainer.projector, explainer.model, explainer.tokenizer

    def encode(chunk):
        return explainer.encode([read_image(f) for f in chunk])

    pooled, patches = encode(files)
    head_batch = timed(lambda: projector.predict(pooled), repeat=20)
    head_single = timed(lambda: [projector.predict(p[None]) for p in pooled]) / len(files)
    encode_batch = timed(lambda: encode(files))
    end_batch = timed(lambda: projector.predict(encode(files)[0]))
    end_single = timed(lambda: [projector.predict(encode([f])[0]) for f in files]) / len(files)
    detached = [projector.label_names[i] for i in projector.predict(pooled)[0].tolist()]

    prompt = infer.generative_prompt(projector.label_names)
    answers: list[str] = []
    as_trained = {"system_prompt": explainer.config.get("system_prompt"),
                  "decoding": explainer.decoding}

    def generate_all():
        answers[:] = infer.generate(model, tokenizer, [prompt] * len(files), patches,
                                    args.max_new_tokens, args.gen_batch, desc="generative",
                                    **as_trained)

    gen_batch = timed(generate_all)
    n_single = min(args.latency_images, len(files))
    gen_single = timed(lambda: [infer.generate(model, tokenizer, [prompt], patches[i:i + 1],
                                               args.max_new_tokens, 1, **as_trained)
                                for i in range(n_single)]
                       ) / n_single
    encode_single = timed(lambda: [encode([f]) for f in files[:n_single]]) / n_single
    generative = infer.generative_labels(answers, projector.label_names)
    return {
        "images": len(files),
        "detached_accuracy": evaluate.label_accuracy(detached, truth),
        "generative_accuracy": evaluate.label_accuracy(generative, truth),
        "generative_answers_without_label": sum(g is None for g in generative) / len(files),
        "projector_images_per_second": len(files) / head_batch,
        "projector_latency_ms": 1000 * head_single,
        "detached_end_to_end_images_per_second": len(files) / end_batch,
        "detached_end_to_end_latency_ms": 1000 * end_single,
        "generative_images_per_second": len(files) / gen_batch,
        "generative_end_to_end_images_per_second": len(files) / (gen_batch + encode_batch),
        "generative_latency_ms": 1000 * gen_single,
        "generative_end_to_end_latency_ms": 1000 * (gen_single + encode_single),
        "generative_batch_size": args.gen_batch,
        "max_new_tokens": args.max_new_tokens,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=32, help="test images (seeded subset)")
    parser.add_argument("--latency-images", type=int, default=4,
                        help="images generated one at a time for the generative latency")
    parser.add_argument("--gen-batch", type=int, default=16, help="generation batch size")
    parser.add_argument("--max-new-tokens", type=int,
                        help="generation cap (default: the finetune stage's max_new_tokens)")
    parser.add_argument("--train-steps", type=int, default=3, help="MM-LLM steps timed")
    parser.add_argument("--train-batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", type=Path, default=Path("models/mmllm/finetune"))
    parser.add_argument("--projector", type=Path, default=Path("models/projector/emoscenes"))
    parser.add_argument("--out", type=Path, default=Path("results/benchmarks/efficiency.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.max_new_tokens is None:
        from tinyemo import config

        args.max_new_tokens = config.load_params()["finetune"].max_new_tokens

    report = {"classification": classification(args)}
    report["training"] = {
        "projector": in_fresh_process(_projector_training, args.threads),
        "mmllm": in_fresh_process(_mmllm_training, args.threads, args.train_steps, args.train_batch),
    }
    c, t = report["classification"], report["training"]
    report["throughput_ratio"] = c["projector_images_per_second"] / c["generative_images_per_second"]
    report["end_to_end_throughput_ratio"] = (c["detached_end_to_end_images_per_second"]
                                             / c["generative_end_to_end_images_per_second"])
    report["training_speed_ratio"] = (t["projector"]["samples_per_second"]
                                      / t["mmllm"]["samples_per_second"])
    accurate = c["detached_accuracy"] >= c["generative_accuracy"]
    report["target_met"] = report["throughput_ratio"] >= TARGET_RATIO and accurate
    report["target_met_end_to_end"] = report["end_to_end_throughput_ratio"] >= TARGET_RATIO and accurate
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")

    print(f"{c['images']} test images, {args.threads} threads")
    print(f"{'classifier':<34}{'images/s':>12}{'latency ms':>12}{'accuracy':>10}")
    rows = [("projector (cached features)", c["projector_images_per_second"], c["projector_latency_ms"], c["detached_accuracy"]),
            ("detached: tower + projector", c["detached_end_to_end_images_per_second"], c["detached_end_to_end_latency_ms"], c["detached_accuracy"]),
            ("generative (cached features)", c["generative_images_per_second"], c["generative_latency_ms"], c["generative_accuracy"]),
            ("generative: tower + MM-LLM", c["generative_end_to_end_images_per_second"], c["generative_end_to_end_latency_ms"], c["generative_accuracy"])]
    for name, speed, latency, accuracy in rows:
        print(f"{name:<34}{speed:>12.2f}{latency:>12.1f}{accuracy:>10.3f}")
    verdict = {True: "met", False: "NOT met"}
    print(f"throughput ratio detached/generative (target >= {TARGET_RATIO:.0f}x at equal or better "
          f"accuracy): {report['throughput_ratio']:.0f}x on cached features "
          f"({verdict[report['target_met']]}), {report['end_to_end_throughput_ratio']:.0f}x with the "
          f"vision tower that both modes share ({verdict[report['target_met_end_to_end']]})")
    for name, row in t.items():
        print(f"training {name:<10} {row['samples_per_second']:>10.1f} samples/s, peak RSS "
              f"{row['peak_rss_mb']:.0f} MB, {row['trainable_parameters']:,} trainable parameters")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
