"""`tinyemo explain IMAGE...`: the projector's emotion and the MM-LLM's reasoning per image."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from tinyemo import paths
from tinyemo.cli import CommandError


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "explain",
        help="classify images with the Metric Projector and explain them with the MM-LLM",
        description="For each image: the Metric Projector picks the emotion (nearest text "
        "anchor, with its cosine score and the runners-up), then the fine-tuned MM-LLM writes "
        "an emotional reasoning for that label (classification detachment: the LLM never "
        "classifies). The reasoning is printed token by token as it is generated. Needs the "
        "outputs of the `finetune` and `projector` stages (`dvc repro finetune`).",
    )
    parser.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="PNG/JPEG files")
    parser.add_argument("--model", type=Path, default=paths.MODELS / "mmllm" / "finetune",
                        help="fine-tuned MM-LLM folder (default: %(default)s)")
    parser.add_argument("--projector", type=Path, default=paths.MODELS / "projector" / "emoscenes",
                        help="Metric Projector folder (default: %(default)s)")
    parser.add_argument("--top-k", type=int, default=3,
                        help="labels offered in the prompt and shown with scores (default: 3)")
    parser.add_argument("--max-new-tokens", type=int, default=128,
                        help="cap on the reasoning's length in tokens (default: 128)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON list for machines instead of streaming text")
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="allow LLMs that ship modelling code (OpenELM)")
    parser.set_defaults(handler=run)


def run(args) -> int:
    from tinyemo.mmllm.artifact import MissingModelError
    from tinyemo.mmllm.explainer import Explainer, UnreadableImageError, read_image
    from tinyemo.projector.artifact import ProjectorLoadError

    if args.top_k < 1 or args.max_new_tokens < 1:
        raise CommandError("--top-k and --max-new-tokens must be at least 1")
    try:
        images = [read_image(path) for path in args.images]
    except UnreadableImageError as err:
        raise CommandError(str(err)) from None
    try:
        explainer = Explainer(args.model, args.projector, args.trust_remote_code)
    except (MissingModelError, ProjectorLoadError) as err:
        raise CommandError(str(err)) from None
    pooled, patches = explainer.encode(images)
    verdicts = explainer.classify([str(p) for p in args.images], pooled, args.top_k)
    if args.json:
        out = [{"image": v.image, "label": v.label, "score": round(v.score, 4),
                "options": [{"label": l, "score": round(s, 4)} for l, s in v.options],
                "reasoning": explainer.reasoning(v, patches[i], args.max_new_tokens)}
               for i, v in enumerate(verdicts)]
        print(json.dumps(out, indent=2))
        return 0
    for i, verdict in enumerate(verdicts):
        others = ", ".join(f"{label} {score:.2f}" for label, score in verdict.options[1:])
        print(f"{verdict.image}: {verdict.label} (score {verdict.score:.2f}"
              f"{'; then ' + others if others else ''})")
        for piece in explainer.stream(verdict, patches[i], args.max_new_tokens):
            sys.stdout.write(piece)
            sys.stdout.flush()
        print("\n")
    return 0
