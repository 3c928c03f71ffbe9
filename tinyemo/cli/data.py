"""`tinyemo data check NAME ROOT`: validate a dataset folder and count what is usable."""
from __future__ import annotations

import json
from pathlib import Path

from tinyemo.cli import int_at_least


def add_parser(commands) -> None:
    import argparse
    import textwrap

    from tinyemo.datasets import DATASETS

    parser = commands.add_parser(
        "data", help="validate the image datasets of the paper",
        description="Work with the image datasets (Emotion6, EmotionROI, EmoSet, WEBEmo, FI, "
        "ArtPhoto, Abstract, UnbiasedEmo and the synthetic EmoScenes).",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    layouts = "\n\n".join(f"{name}:\n{textwrap.indent(spec.layout, '  ')}"
                           for name, spec in sorted(DATASETS.items()))
    check = actions.add_parser(
        "check", help="validate a dataset folder: layout, labels, splits, unreadable images",
        description=textwrap.fill(
            "List the dataset in ROOT by its layout, open every image, and print the number of "
            "usable images per class and per split and what was skipped, by reason (unreadable "
            "images, Abstract's vote ties, unknown folders, ...). A folder that lacks what the "
            "layout needs is an error naming what is missing and the expected layout (exit "
            "status 2).", width=90),
        epilog="examples:\n"
        "  tinyemo data check emotion6 /data/Emotion6\n"
        "  tinyemo data check webemo /data/WEBEmo --json\n"
        "  tinyemo data check emoscenes data/emoscenes\n\n"
        f"datasets and their layouts:\n{textwrap.indent(layouts, '  ')}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("name", metavar="NAME", help="the dataset (exact name, e.g. emotion6)")
    check.add_argument("root", metavar="ROOT", type=Path, help="the dataset's folder")
    check.add_argument("--json", action="store_true",
                       help="print one JSON object: dataset, n_images, classes, splits, skipped")
    check.add_argument("--seed", type=int_at_least(0), default=0, metavar="N",
                       help="seed of the splits carved where upstream has none (default 0)")
    check.set_defaults(handler=run_check)


def run_check(args) -> int:
    from tinyemo.datasets import check

    summary = check(args.name, args.root, seed=args.seed)
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"{summary['dataset']} in {args.root}: {summary['n_images']} usable images")
    for title, counts in (("split", summary["splits"]), ("class", summary["classes"]),
                          ("skipped", summary["skipped"])):
        if counts:
            width = max(len(title), *(len(key) for key in counts))
            print(f"\n  {title:<{width}}  images")
            for key, count in counts.items():
                print(f"  {key:<{width}}  {count:>6}")
    return 0
