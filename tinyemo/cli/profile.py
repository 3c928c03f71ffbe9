"""`tinyemo profile NAME`: render a profile into params.yaml."""
from tinyemo import config


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "profile",
        help="switch the pipeline to a profile (renders params.yaml)",
        description="Render profiles/default.yaml deep-merged with profiles/NAME.yaml into "
        "params.yaml, validating every section. `default` runs offline on a 2-core CPU; "
        "`smoke` uses tiny random models (seconds per stage, for tests); `paper` uses the "
        "paper's models and sizes (GPUs, network).",
    )
    parser.add_argument("name", choices=config.PROFILE_NAMES, help="the profile to use")
    parser.set_defaults(handler=run)


def run(args) -> int:
    config.write_params(args.name)
    print(f"params.yaml now holds the {args.name!r} profile; run `dvc repro` to rebuild.")
    return 0
