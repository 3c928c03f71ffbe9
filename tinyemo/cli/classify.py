"""`tinyemo classify FILE...`: the top-k emotions of images or precomputed features."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tinyemo import paths
from tinyemo.cli import CommandError, positive_int, upstream_options

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
FEATURE_SUFFIXES = {".pt", ".safetensors"}
PROJECTORS = paths.MODELS / "projector"
DEFAULT_FOR_IMAGES = PROJECTORS / "emoscenes"  # trained on the default vision tower's features
DEFAULT_FOR_FEATURES = (PROJECTORS / "emotion6", PROJECTORS / "emoscenes")  # first that fits
TRAINING_DATA = {  # a projector's config.json "dataset" -> what it was trained on, in words
    "emoscenes": "EmoScenes, the synthetic scenes of the synthesize stage (not photos)",
    "emotion6": "Emotion6 photos",
}
SYNTHETIC = {"emoscenes"}


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "classify",
        help="print the top-k emotions of image files or precomputed feature files",
        description="Classify images with the Metric Projector: each input is projected into "
        "the LLM's token-embedding space and scored against every emotion anchor (cosine "
        "similarity; the prediction is the nearest anchor). Inputs are image files (encoded "
        "with the vision tower the projector was trained on, named in its config.json) or "
        "feature files: .pt (a [D] or [N, D] tensor) or .safetensors (a tensor named "
        "'pooled', or a single tensor).",
        epilog="examples:\n"
        "  tinyemo classify photo.jpg                      # models/projector/emoscenes\n"
        "  tinyemo classify Emotion6/images/train/joy/1.pt  # the saved projector that fits\n"
        "  tinyemo classify a.png b.png --top-k 3 --json\n"
        "  tinyemo classify feats.pt --projector models/projector/emotion6\n"
        f"  tinyemo classify feats.pt --projector {upstream_options.EXAMPLE}  # the paper's weights\n\n"
        "Without --projector, images use models/projector/emoscenes (trained on the default "
        "vision tower's features) and feature files use the first of models/projector/emotion6 "
        "and models/projector/emoscenes whose input width matches. The projector used, and "
        "what it was trained on, is printed on stderr. models/projector/emoscenes learnt a "
        "synthetic world: for photos, use models/projector/emotion6 (it reads CLIP ViT-L/14 "
        "features, whose weights must be in the Hugging Face cache when offline).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("inputs", nargs="+", type=Path, metavar="FILE", help="image or feature files")
    parser.add_argument("--projector", default=None, metavar="DIR|upstream:REF",
                        help="a projector directory (default: see below), or a released upstream "
                        "checkpoint: its anchors are all the labels of --dataset")
    parser.add_argument("--top-k", type=positive_int, default=3, metavar="K",
                        help="emotions to print (default 3)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument("--batch-size", type=positive_int, default=16, metavar="N",
                        help="images encoded together (default 16)")
    upstream_options.add_arguments(parser)
    parser.set_defaults(handler=run)


def _kind(path: Path) -> str:
    if not path.is_file():
        raise CommandError(f"{path} does not exist or is not a file")
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in FEATURE_SUFFIXES:
        return "features"
    raise CommandError(
        f"{path}: unsupported file type {suffix or '(none)'}; give images "
        f"({', '.join(sorted(IMAGE_SUFFIXES))}) or feature files (.pt, .safetensors)"
    )


def read_feature_file(path: Path):
    """A [N, D] float tensor from a .pt or .safetensors feature file (real, finite values)."""
    import torch

    try:
        if path.suffix.lower() == ".pt":
            value = _load_pt(path)
        else:
            from safetensors.torch import load_file

            tensors = load_file(str(path))
            if "pooled" in tensors:
                value = tensors["pooled"]
            elif len(tensors) == 1:
                value = next(iter(tensors.values()))
            else:
                raise CommandError(f"{path} holds tensors {sorted(tensors)}; name the features 'pooled'")
    except CommandError:
        raise
    except Exception as err:
        raise CommandError(f"{path} is not a readable feature file ({type(err).__name__}: {err})") from None
    if not isinstance(value, torch.Tensor) or value.dim() not in (1, 2):
        shape = list(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise CommandError(f"{path} must hold a [D] or [N, D] tensor of pooled features, got {shape}")
    if value.is_complex():
        raise CommandError(f"{path} holds complex numbers ({value.dtype}); features are real vectors")
    value = value.float().reshape(-1, value.shape[-1])
    if not torch.isfinite(value).all():
        bad = int((~torch.isfinite(value)).any(dim=1).sum())
        raise CommandError(f"{path}: {bad} of {len(value)} feature rows hold NaN or infinite values")
    return value


def _load_pt(path: Path):
    """torch.load with weights_only=True, with messages that say what the file is (and
    never torch's advice to load untrusted pickles)."""
    import pickle
    import zipfile

    import torch

    not_tensors = CommandError(f"{path} is not a tensor file; give a file written by "
                               "torch.save(tensor, path) or a .safetensors file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        if not zipfile.is_zipfile(path):
            raise not_tensors from None
        raise CommandError(
            f"{path} holds Python objects besides tensors, and feature files are loaded "
            "without running any code they contain; save the features alone, "
            "torch.save(tensor, path), or as .safetensors"
        ) from None
    except Exception:
        raise not_tensors from None


def _load(directory: Path):
    from tinyemo.projector.artifact import load_projector

    return directory, load_projector(directory)


def _choose_projector(args, kinds: set[str], widths: set[int]):
    """(where it is, artifact) of the projector to use."""
    if upstream_options.is_upstream(args.projector):
        artifact = upstream_options.open_checkpoint(args).artifact(
            upstream_options.dataset_name(args), template=args.template)
        return args.projector, artifact
    if args.projector is not None:
        return _load(Path(args.projector))
    if "image" in kinds:
        return _load(DEFAULT_FOR_IMAGES)
    for directory in DEFAULT_FOR_FEATURES:
        if directory.is_dir():
            found = _load(directory)
            if widths <= {found[1].feature_dim}:
                return found
    raise CommandError(
        f"no saved projector accepts features of width {sorted(widths)} (looked in "
        f"{', '.join(str(d) for d in DEFAULT_FOR_FEATURES)}); pass --projector DIR, or run "
        "`dvc repro projector` first"
    )


def trained_on(artifact) -> str:
    """What a projector was trained on, in words (from its config.json)."""
    if artifact.config.get("source") == "upstream":
        return f"{artifact.config['trained_on']}; {artifact.vision_tower} features, anchors of {artifact.config['llm']}"
    dataset = artifact.config.get("dataset")
    data = TRAINING_DATA.get(dataset, dataset or "data its config.json does not name")
    return f"{data}, {artifact.vision_tower or 'an unnamed vision tower'} features"


def _announce(directory, artifact, has_images: bool) -> None:
    """On stderr (stdout stays the results): the projector used, and a word of warning
    when a projector that learnt the synthetic world is given image files."""
    print(f"projector {directory}: trained on {trained_on(artifact)}", file=sys.stderr)
    if has_images and artifact.config.get("dataset") in SYNTHETIC:
        print(f"warning: {directory} learnt the emotions of synthetic scenes; unless these images "
              "are EmoScenes images, its labels only say which synthetic scene they resemble. "
              f"For photos, use --projector {PROJECTORS / 'emotion6'}.", file=sys.stderr)


def _encode(artifact, images: list[Path], batch_size: int):
    from tinyemo.cli import weights
    from tinyemo.images import ImageFiles, UnreadableImageError
    from tinyemo.models.vision import encode_images, load_vision_tower

    tower_name = artifact.vision_tower
    if not tower_name:
        raise CommandError("this projector's config.json does not name its vision tower, so it "
                           "cannot classify images; give precomputed feature files instead")
    weights.check(tower_name)
    tower = load_vision_tower(tower_name)
    try:
        pooled, _ = encode_images(tower, ImageFiles(images), batch_size)
    except UnreadableImageError as err:
        raise CommandError(str(err)) from None
    return pooled


def run(args) -> int:
    import torch

    upstream_options.check_arguments(args)
    kinds = {path: _kind(path) for path in args.inputs}
    features = {path: read_feature_file(path) for path, kind in kinds.items() if kind == "features"}
    directory, artifact = _choose_projector(args, set(kinds.values()),
                                            {tensor.shape[1] for tensor in features.values()})
    _announce(directory, artifact, "image" in kinds.values())
    for path, tensor in features.items():
        if tensor.shape[1] != artifact.feature_dim:
            raise CommandError(
                f"{path} holds features of width {tensor.shape[1]}, which do not fit this projector: "
                f"it expects {artifact.feature_dim} ({artifact.vision_tower or 'its vision tower'}); "
                "classify files of one kind at a time, or pass --projector DIR"
            )
    images = [path for path, kind in kinds.items() if kind == "image"]
    encoded = _encode(artifact, images, args.batch_size) if images else torch.empty(0)
    names, rows = [], []
    for path in args.inputs:
        if kinds[path] == "image":
            names.append(str(path))
            rows.append(encoded[images.index(path)].unsqueeze(0))
        else:
            tensor = features[path]
            names += [str(path)] if len(tensor) == 1 else [f"{path}#{i}" for i in range(len(tensor))]
            rows.append(tensor)
    ids, scores = artifact.topk(torch.cat(rows), args.top_k)
    results = [
        {"input": name, "label": artifact.label_names[int(row_ids[0])],
         "top": [{"label": artifact.label_names[int(i)], "score": round(float(s), 4)}
                 for i, s in zip(row_ids, row_scores)]}
        for name, row_ids, row_scores in zip(names, ids, scores)
    ]
    if args.json:
        print(json.dumps({"projector": str(directory), "trained_on": artifact.config.get("dataset"),
                          "vision_tower": artifact.vision_tower, "results": results}))
    else:
        for result in results:
            tops = ", ".join(f"{t['label']} {t['score']:.3f}" for t in result["top"])
            print(f"{result['input']}: {tops}")
    return 0
