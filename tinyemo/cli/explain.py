"""`tinyemo explain IMAGE...`: the projector's emotion and the MM-LLM's reasoning per image."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from tinyemo import paths
from tinyemo.cli import CommandError, positive_int


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
    parser.add_argument("--top-k", type=positive_int, default=3,
                        help="labels offered in the prompt and shown with scores (default: 3)")
    parser.add_argument("--max-new-tokens", type=positive_int, default=None,
                        help="cap on the reasoning's length in tokens (default: finetune."
                        "max_new_tokens of params.yaml, the cap the finetune stage evaluated with)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON list for machines instead of streaming text")
    parser.set_defaults(handler=run)


def default_max_new_tokens() -> int:
    """The finetune stage's decoding cap: params.yaml's, else the schema's default."""
    from tinyemo import config
    from tinyemo.mmllm.params import FinetuneParams

    try:
        return config.load_params()["finetune"].max_new_tokens
    except (config.ConfigError, KeyError):
        return FinetuneParams.model_fields["max_new_tokens"].default


def check_model_files(folder: Path) -> None:
    """Name the file when the MM-LLM's config or weights are unreadable (before loading the LLM)."""
    from safetensors import SafetensorError, safe_open

    from tinyemo.mmllm.artifact import CONFIG_FILE, WEIGHTS_FILE, read_config

    try:
        read_config(folder)
    except json.JSONDecodeError as err:
        raise CommandError(f"{folder / CONFIG_FILE} is not valid JSON ({err}); rerun "
                           "`dvc repro finetune` to write it again") from None
    try:
        with safe_open(str(folder / WEIGHTS_FILE), "pt"):
            pass
    except SafetensorError as err:
        raise CommandError(f"{folder / WEIGHTS_FILE} is unreadable, truncated or corrupt ({err}); "
                           "rerun `dvc repro finetune` to write it again") from None


def run(args) -> int:
    from tinyemo.mmllm.explainer import Explainer, read_image

    max_new_tokens = args.max_new_tokens or default_max_new_tokens()
    images = [read_image(path) for path in args.images]
    check_model_files(args.model)
    explainer = Explainer(args.model, args.projector)
    pooled, patches = explainer.encode(images)
    verdicts = explainer.classify([str(p) for p in args.images], pooled, args.top_k)
    if args.json:
        out = [{"image": v.image, "label": v.label, "score": round(v.score, 4),
                "options": [{"label": l, "score": round(s, 4)} for l, s in v.options],
                "reasoning": explainer.reasoning(v, patches[i], max_new_tokens)}
               for i, v in enumerate(verdicts)]
        print(json.dumps(out, indent=2))
        return 0
    for i, verdict in enumerate(verdicts):
        others = ", ".join(f"{label} {score:.2f}" for label, score in verdict.options[1:])
        print(f"{verdict.image}: {verdict.label} (score {verdict.score:.2f}"
              f"{'; then ' + others if others else ''})")
        for piece in explainer.stream(verdict, patches[i], max_new_tokens):
            sys.stdout.write(piece)
            sys.stdout.flush()
        print("\n")
    return 0
