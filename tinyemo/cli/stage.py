"""`tinyemo stage NAME`: run one pipeline stage (what each dvc.yaml command calls)."""
from tinyemo import runner
from tinyemo.stages import STAGES


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "stage",
        help="run one pipeline stage's notebook with the parameters of params.yaml",
        description="Execute the stage's notebook with papermill, writing the executed "
        "notebook, an HTML copy and provenance.json to results/STAGE/. Normally called by "
        "`dvc repro`; run it by hand to debug one stage.",
    )
    parser.add_argument("name", choices=list(STAGES), help="the stage to run")
    parser.set_defaults(handler=run)


def run(args) -> int:
    record = runner.run(args.name)
    print(f"stage {args.name}: done in {record['wall_time_s']:.1f} s")
    return 0
