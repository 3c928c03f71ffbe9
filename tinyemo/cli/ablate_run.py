"""`tinyemo ablate-run FACTOR`: one cell of the projector ablation (the DVC matrix stage)."""
from tinyemo import config, provenance
from tinyemo.cli import CommandError
from tinyemo.projector import ABLATION_FACTORS


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "ablate-run",
        help="run one factor of the projector ablation (called by `dvc repro ablate-cell`)",
        description="Train the Metric Projector at every level of one factor (loss, template, "
        "synonyms, source, width), once per seed of the `ablate` params section, and write "
        "the validation top-1 to results/ablate/FACTOR/metrics.json. Runs are spread over "
        "`base.threads` processes (each trains on one thread). The notebook of stage "
        "`ablate` gathers the cells into a table and charts.",
        epilog="example: tinyemo ablate-run loss",
    )
    parser.add_argument("factor", choices=ABLATION_FACTORS, help="the factor to vary")
    parser.set_defaults(handler=run)


def run(args) -> int:
    import time

    import torch

    started = time.perf_counter()

    from tinyemo.projector.ablation import run_cell, write_cell

    try:
        sections = config.load_params()
    except config.ConfigError as err:
        raise CommandError(str(err)) from None
    base = sections["base"]
    torch.set_num_threads(base.threads)
    result = run_cell(args.factor, sections["ablate"], base.llm, base.seed, workers=base.threads)
    path = write_cell(result)
    parameters = {"factor": args.factor, **sections["ablate"].model_dump(), "llm": base.llm, "seed": base.seed}
    record = provenance.record(f"ablate-cell@{args.factor}", parameters, time.perf_counter() - started)
    provenance.write(path.parent / "provenance.json", record)
    print(f"ablation {args.factor}: {len(result['levels'])} levels in {result['wall_seconds']:.1f} s -> {path}")
    return 0
