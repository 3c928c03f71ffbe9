"""Run one pipeline stage: execute its notebook with papermill and record provenance.

The runner passes the stage's parameter section (the `base` keys the notebook declares, and
the keys of other sections the stage `reads`) as Python values, refuses parameters the notebook does not declare, executes with
`kernel_name="python3"` from the repository root, and writes the executed notebook, an HTML
copy and `provenance.json` into `results/<stage>/`. If the notebook fails, the stage's
declared outputs are removed, so nothing half-written looks complete, except the finished
models among them (an MM-LLM folder whose `mmllm.json`, written last, is there): what was
trained is never lost to a failure after it, and the message names each kept model. A rerun
of the stage finds a kept model of the same training and skips that training. The failed
notebook is kept as `results/<stage>.failed.ipynb` for debugging. Once a stage has
succeeded, its resumable work (`paths.stage_checkpoints`) is removed.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import yaml

from tinyemo import config, paths, provenance
from tinyemo.errors import TinyEmoError
from tinyemo.stages import Stage, stage as get_stage

OFFLINE_PROFILES = ("default", "smoke")


class StageError(RuntimeError, TinyEmoError):
    pass


KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def to_ipynb(source: Path, target: Path) -> Path:
    """Convert a jupytext source into an output-free .ipynb that runs on the python3 kernel."""
    import jupytext

    notebook = jupytext.read(source)
    notebook.metadata["kernelspec"] = KERNELSPEC
    jupytext.write(notebook, target)
    return target


def notebook_parameters(source: Path) -> dict:
    """The parameters a notebook declares in its `parameters` cell, by name."""
    import papermill

    with tempfile.TemporaryDirectory() as tmp:
        ipynb = to_ipynb(source, Path(tmp) / (source.stem + ".ipynb"))
        return papermill.inspect_notebook(str(ipynb))


def stage_parameters(stage: Stage, sections: dict[str, config.Section], declared: dict) -> dict:
    own = sections[stage.section].model_dump() if stage.section else {}
    undeclared = sorted(set(own) - set(declared))
    if undeclared:
        raise config.ConfigError(
            f"the notebook {stage.source} does not declare the parameter(s) {undeclared} of "
            f"section {stage.section!r}; declare them in its `parameters` cell or remove them "
            "from profiles/"
        )
    borrowed = {}
    for dotted in stage.reads:
        section, key = dotted.split(".", 1)
        if key not in declared:
            raise config.ConfigError(
                f"stage {stage.name!r} reads {dotted!r}, but the notebook {stage.source} does not "
                f"declare the parameter {key!r} in its `parameters` cell"
            )
        borrowed[key] = sections[section].model_dump()[key]
    base = sections["base"].model_dump()
    shared = {key: value for key, value in base.items() if key in declared}
    return {**shared, **borrowed, **own}


def declared_outputs(stage_name: str, dvc_file: Path = Path("dvc.yaml")) -> list[Path]:
    if not dvc_file.exists():
        return []
    spec = yaml.safe_load(dvc_file.read_text()).get("stages", {}).get(stage_name, {})
    outs = []
    for kind in ("outs", "metrics", "plots"):
        for item in spec.get(kind, []) or []:
            outs.append(Path(next(iter(item)) if isinstance(item, dict) else item))
    return outs


def remove_unfinished(path: Path) -> list[Path]:
    """Remove `path` (a file or a folder), except the finished models in it; return those."""
    from tinyemo.mmllm.artifact import finished

    path = Path(path)
    if not path.is_dir():
        path.unlink(missing_ok=True)
        return []
    complete = finished(path) is not None
    kept = [path] if complete else []
    for child in sorted(path.iterdir()):
        if child.is_dir() or not complete:  # a finished model's own files stay
            kept += remove_unfinished(child)
    if not complete and not any(path.iterdir()):
        path.rmdir()
    return kept


def _drop_work(stage_name: str) -> None:
    """Remove a succeeded stage's resumable work, and its parent folder once empty."""
    work = paths.stage_checkpoints(stage_name)
    shutil.rmtree(work, ignore_errors=True)
    if work.parent.is_dir() and not any(work.parent.iterdir()):
        work.parent.rmdir()


def _environment(profile: str, threads: int) -> None:
    os.environ.setdefault("MPLBACKEND", "Agg")
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle OpenMP threads must not spin
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    if profile in OFFLINE_PROFILES:
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"


def _write_html(executed: Path) -> None:
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nbformat.read(executed, as_version=4))
    executed.with_suffix(".html").write_text(body)


def run(stage_name: str, params_file: Path = config.PARAMS_FILE) -> dict:
    """Execute one stage; return its provenance record."""
    import papermill

    stage = get_stage(stage_name)
    sections = config.load_params(params_file)
    if not stage.source.exists():
        raise StageError(f"the notebook {stage.source} of stage {stage.name!r} is missing")
    declared = notebook_parameters(stage.source)
    parameters = stage_parameters(stage, sections, declared)
    base = sections["base"]
    _environment(base.profile, base.threads)

    stage.results.mkdir(parents=True, exist_ok=True)
    executed = stage.results / "notebook.ipynb"
    failed = stage.results.parent / f"{stage.name}.failed.ipynb"
    failed.unlink(missing_ok=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        source_ipynb = to_ipynb(stage.source, Path(tmp) / f"{stage.name}.ipynb")
        try:
            papermill.execute_notebook(
                str(source_ipynb), str(executed), parameters=parameters,
                kernel_name="python3", cwd=str(Path.cwd()), progress_bar=False,
            )
        except Exception as err:
            if executed.exists():
                shutil.move(executed, failed)
            kept = [model for out in declared_outputs(stage.name) for model in remove_unfinished(out)]
            hint = f"; the executed notebook is kept at {failed}" if failed.exists() else ""
            if kept:
                hint += (f"; the finished model(s) {', '.join(map(str, kept))} are kept: rerun the "
                         f"stage (`tinyemo stage {stage.name}`, or `dvc repro {stage.name}`) and it "
                         "skips the training of any model whose training fingerprint matches, "
                         "running only what follows it")
            raise StageError(f"stage {stage.name!r} failed: {err}{hint}") from None
    _drop_work(stage.name)
    wall = time.perf_counter() - started
    _write_html(executed)
    record = provenance.record(stage.name, parameters, wall)
    provenance.write(stage.results / "provenance.json", record)
    return record
