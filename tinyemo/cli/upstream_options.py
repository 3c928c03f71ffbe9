"""The options `classify` and `evaluate` share for the paper's released projectors.

`--projector upstream:REF` names an upstream checkpoint (tinyemo.projector.upstream_checkpoint): a hub
repository `owner/name[@revision][/file.bin]` or a local `.bin` file. It carries no anchors,
so three more options say how to build them: `--llm` (the LLM whose input-embedding table it
maps into; known for the four released repositories), `--dataset` (whose labels, and upstream's
label texts for them) and `--template` (default: upstream's for that dataset).
"""
from __future__ import annotations

from tinyemo.cli import CommandError

DEFAULT_DATASET = "emotion6"
EXAMPLE = "upstream:ggcristian/TinyEmo-CLIP-Phi-2"


def add_arguments(parser) -> None:
    group = parser.add_argument_group(
        "released projectors (--projector upstream:REF)",
        "REF: a hub repository owner/name[@revision][/file.bin] (default file <name>.bin) or a "
        "local .bin file, e.g. " + EXAMPLE)
    group.add_argument("--llm", default=None, metavar="NAME_OR_DIR",
                       help="the LLM whose input-embedding table gives the anchors: a registry name "
                       "or a model folder (default: the LLM of a released repository)")
    group.add_argument("--dataset", default=None, metavar="NAME",
                       help=f"the dataset the features come from: its labels and upstream's label "
                       f"texts for them (default {DEFAULT_DATASET})")
    group.add_argument("--template", default=None, metavar="T",
                       help="grounding template of the label texts (default: upstream's, bare; "
                       "Abstract: scene-evoking-viewers)")


def is_upstream(projector: str | None) -> bool:
    from tinyemo.projector.upstream_checkpoint import PREFIX

    return projector is not None and projector.startswith(PREFIX)


def check_arguments(args) -> None:
    """--llm, --dataset and --template belong to upstream checkpoints (saved projectors carry
    their anchors); a template must exist."""
    if not is_upstream(args.projector):
        given = [f"--{name}" for name in ("llm", "dataset", "template") if getattr(args, name)]
        if given:
            raise CommandError(f"{', '.join(given)} apply to --projector upstream:REF only; a saved "
                               "projector directory carries its own anchors")
    elif args.template:
        from tinyemo.projector.hyperparameters import check_templates

        try:
            check_templates(args.template)
        except ValueError as err:
            raise CommandError(f"--template: {err}") from None


def dataset_name(args) -> str:
    """The dataset named by --dataset (checked against the registry), default Emotion6."""
    from tinyemo.datasets import dataset

    return dataset(args.dataset or DEFAULT_DATASET).name


def open_checkpoint(args):
    """The released projector of `--projector upstream:REF` with its LLM (`upstream.Released`)."""
    from tinyemo.projector.upstream import open_released

    return open_released(args.projector, args.llm)
