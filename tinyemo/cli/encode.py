"""`tinyemo encode NAME`: one dataset's images -> data/features/NAME/<split>/ (the DVC foreach stage)."""
from tinyemo import config, paths, provenance
from tinyemo.cli import CommandError


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "encode",
        help="encode one dataset of params.yaml `encode.datasets` with the profile's vision tower",
        description="Read the dataset's records (tinyemo.datasets, from the root given in "
        "params.yaml), run the frozen vision tower over its images in batches and write "
        "data/features/NAME/<split>/: safetensors shards, their JSON sidecars and a manifest "
        "written last. Unreadable images are skipped and counted. An interrupted run resumes "
        "from its complete shards. A root of upstream's precomputed Emotion6 features "
        "(Emotion6/images/train/<emotion>/<id>.pt) is stored as is, with a seeded, stratified "
        "validation split carved from train. Metrics (images, per class, skipped, images/s) go "
        "to results/encode/NAME/metrics.json, with provenance.json beside them.",
        epilog="example: tinyemo encode emoscenes",
    )
    parser.add_argument("name", help="a dataset listed in params.yaml `encode.datasets`")
    parser.set_defaults(handler=run)


def run(args) -> int:
    import time

    started = time.perf_counter()
    try:
        sections = config.load_params()
    except config.ConfigError as err:
        raise CommandError(str(err)) from None
    base, params = sections["base"], sections["encode"]
    if args.name not in params.datasets:
        raise CommandError(f"{args.name!r} is not in params.yaml encode.datasets "
                           f"({', '.join(params.datasets)}); add it to profiles/*.yaml")
    from tinyemo.encode import encode_configured

    metrics = encode_configured(args.name, base, params)
    out = paths.stage_results("encode") / args.name
    out.mkdir(parents=True, exist_ok=True)
    import json

    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    parameters = {"dataset": args.name, **params.model_dump(), "vision_tower": base.vision_tower,
                  "seed": base.seed, "source": metrics.get("source")}
    record = provenance.record(f"encode@{args.name}", parameters, time.perf_counter() - started)
    provenance.write(out / "provenance.json", record)
    rate = metrics.get("images_per_second")
    print(f"encode {args.name}: {metrics['n_images']} images, skipped {metrics['skipped'] or 'none'}"
          + (f", {rate} images/s" if rate else "") + f" -> {paths.FEATURES / args.name}")
    return 0
