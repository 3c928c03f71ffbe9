"""`tinyemo evaluate`: score a projector on an `<emotion>/<id>.pt` feature folder."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from tinyemo.cli import CommandError, upstream_options


def add_parser(commands) -> None:
    import argparse

    parser = commands.add_parser(
        "evaluate",
        help="score a projector on a folder of <emotion>/<id>.pt feature files",
        description="Load a saved Metric Projector and score it on a folder laid out as "
        "<emotion>/<id>.pt (the Emotion6 layout: one [D] tensor per image, D = the width of "
        "the features the projector was trained on). Every label folder must be one of the "
        "projector's labels. Prints top-1 and per-class accuracy, and a warning when some of "
        "the images are among those the projector was trained on (its config.json names the "
        "data set; the stage `features` cache holds that training split). With --projector "
        "upstream:REF, one of the paper's released projectors is scored as upstream scored it "
        "(anchors from the LLM's input-embedding table, nearest anchor among the labels present), "
        "beside the paper's Table VIII number.",
        epilog="examples:\n"
        "  tinyemo evaluate --projector models/projector/emotion6 \\\n"
        "      --features-dir $TINYEMO_DATA_DIR/Emotion6/images/train  # warns: trained on most\n"
        "  tinyemo evaluate --projector models/projector/emotion6 --features-dir DIR --json\n"
        f"  tinyemo evaluate --projector {upstream_options.EXAMPLE} \\\n"
        "      --features-dir $TINYEMO_DATA_DIR/Emotion6/images/train --json  # the paper's weights\n"
        "  tinyemo evaluate --projector upstream:model.bin --llm DIR --dataset webemo --features-dir DIR",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--projector", required=True, metavar="DIR|upstream:REF",
                        help="a projector directory, e.g. models/projector/emotion6, or a released "
                        "upstream checkpoint (see below)")
    parser.add_argument("--features-dir", type=Path, required=True, metavar="DIR",
                        help="a folder of <emotion>/<id>.pt files")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object (keys: top1, n, per_class, ...)")
    upstream_options.add_arguments(parser)
    parser.set_defaults(handler=run)


def _row_keys(pooled) -> list[bytes]:
    """Feature rows as half-precision bytes (the feature files are float16), for exact matching."""
    import torch

    return [row.numpy().tobytes() for row in pooled.to(torch.float16)]


def seen_in_training(artifact, pooled) -> tuple[int, str] | None:
    """(how many rows of `pooled` the projector was trained on, where that training split is),
    or None when the projector's config.json names no data set whose cache is on disk."""
    from tinyemo.feature_store import DATASETS, FeatureError, feature_path, load_features

    dataset = artifact.config.get("dataset")
    if dataset not in DATASETS:
        return None
    try:
        train = load_features(dataset, "train")
    except FeatureError:
        return None
    training = set(_row_keys(train.pooled))
    return sum(key in training for key in _row_keys(pooled)), str(feature_path(dataset, "train"))


def _print(result: dict, features_dir: Path, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result))
        return
    low, high = result["top1_ci95"]
    print(f"{features_dir}: {result['n']} images, top-1 {100 * result['top1']:.2f} % "
          f"(95 % CI {100 * low:.2f}-{100 * high:.2f})")
    if result.get("paper"):
        paper = result["paper"]
        print(f"  paper ({paper['model']}, Table VIII, its test split): {paper['top1']:.2f} %, "
              f"difference {paper['delta']:+.2f} points")
    for name, accuracy in result["per_class"].items():
        print(f"  {name:12s} {'-' if accuracy is None else f'{100 * accuracy:.2f} %'}")


def run_upstream(args) -> dict:
    """Score a released upstream checkpoint on the folder, as upstream scored it."""
    from tinyemo.emotion6 import FeatureFolderError, read_feature_folder
    from tinyemo.datasets import dataset as dataset_spec
    from tinyemo.projector import upstream

    dataset = upstream_options.dataset_name(args)
    try:
        features = read_feature_folder(args.features_dir, dataset_spec(dataset).label_names,
                                       upstream.folder_labels(dataset))
    except FeatureFolderError as err:
        raise CommandError(f"{err} (labels of {dataset}; name the dataset with --dataset)") from None
    released = upstream_options.open_checkpoint(args)
    evaluation, artifact = upstream.evaluate_features(released, dataset, features, args.template)
    shared = upstream.shares_images_with_training(dataset)
    if shared:
        print(f"warning: {dataset} shares its images with EmotionROI, which the paper trained the "
              "released projectors on: this is not a zero-shot score", file=sys.stderr)
    paper = released.paper_top1(dataset)
    config = artifact.config
    return {"projector": args.projector, "features_dir": str(args.features_dir), "dataset": dataset,
            **{key: config[key] for key in ("repo", "revision", "file", "commit", "llm", "template",
                                            "label_texts", "trained_on")},
            "in_domain": dataset in upstream.PAPER_TRAIN_DATASETS, "shares_images_with_training": shared,
            **evaluation.summary(),
            "top1_ci95": list(evaluation.top1_ci95),
            "paper": None if paper is None else {
                "model": paper[0], "top1": paper[1], "delta": 100 * evaluation.top1 - paper[1],
                "note": "Table VIII, on upstream's test split; delta in points"}}


def run(args) -> int:
    from tinyemo.emotion6 import read_feature_folder
    from tinyemo.projector.artifact import load_projector
    from tinyemo.projector.evaluate import evaluate_projector

    upstream_options.check_arguments(args)
    if upstream_options.is_upstream(args.projector):
        _print(run_upstream(args), args.features_dir, args.json)
        return 0
    artifact = load_projector(Path(args.projector))
    features = read_feature_folder(args.features_dir, artifact.label_names)
    if features.dim != artifact.feature_dim:
        raise CommandError(
            f"the features in {args.features_dir} have width {features.dim} but the projector "
            f"expects {artifact.feature_dim} ({artifact.vision_tower or 'another encoder'}); "
            "use a projector trained on these features"
        )
    seen = seen_in_training(artifact, features.pooled)
    if seen is not None and seen[0]:
        print(f"warning: {seen[0]} of the {len(features)} images in {args.features_dir} are among "
              f"those {args.projector} was trained on ({seen[1]}); its score on them is not a "
              "held-out accuracy", file=sys.stderr)
    evaluation = evaluate_projector(artifact.model, features.pooled, features.label_ids(),
                                    artifact.anchors, artifact.label_names)
    result = {"projector": str(args.projector), "features_dir": str(args.features_dir),
              "seen_in_training": None if seen is None else seen[0], **evaluation.summary(),
              "top1_ci95": list(evaluation.top1_ci95)}
    _print(result, args.features_dir, args.json)
    return 0
