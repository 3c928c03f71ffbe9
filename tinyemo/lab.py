"""JupyterLab on the pipeline's notebooks, with the parameters the pipeline passes (`make lab`).

`python -m tinyemo.lab` writes `lab/<notebook>.ipynb` for every stage: the stage's jupytext
source followed, after its `parameters` cell, by the cell `tinyemo stage` injects (papermill's
`injected-parameters`, built by the runner's own `stage_parameters` from params.yaml), so a
notebook run in JupyterLab computes with exactly the values `dvc repro` uses. It then starts
JupyterLab with every kernel working in the repository root (the runner's working directory):
the notebook's relative paths (`results/<stage>/`, `data/`, `models/`) are the pipeline's,
and a run writes the stage's own outputs, the files `dvc repro` writes with the same
parameters, and nothing else (the runner alone adds the executed notebook, its HTML copy and
provenance.json). `lab/` is scratch space, rewritten by every `make lab`: to change a stage,
edit its source `notebooks/*.py`, which JupyterLab also opens as a notebook (jupytext's
contents manager and `notebooks/jupytext.toml`).
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from tinyemo import config, runner
from tinyemo.stages import STAGES, Stage

LAB_DIR = Path("lab")
KERNEL_MANAGER = "tinyemo.lab_kernel.RepoRootKernelManager"
# JupyterLab's environment-wide settings: open .py files with jupytext's notebook view
VIEWER_SETTINGS = {"@jupyterlab/docmanager-extension:plugin": {"defaultViewers": {"python": "Jupytext Notebook"}}}


def stage_notebook(stage: Stage, sections: dict[str, config.Section]):
    """The stage's notebook with the parameters `tinyemo stage` would inject."""
    import tempfile

    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    parameters = runner.stage_parameters(stage, sections, runner.notebook_parameters(stage.source))
    with tempfile.TemporaryDirectory() as tmp:
        notebook = load_notebook_node(str(runner.to_ipynb(stage.source, Path(tmp) / "source.ipynb")))
    notebook.metadata.pop("jupytext", None)  # an .ipynb of its own, not paired with the source
    return parameterize_notebook(notebook, parameters, kernel_name="python3", language="python")


def write_lab_notebooks(params_file: Path = config.PARAMS_FILE, out_dir: Path = LAB_DIR) -> list[Path]:
    import nbformat

    sections = config.load_params(params_file)
    out_dir.mkdir(exist_ok=True)
    written = []
    for stage in STAGES.values():
        target = out_dir / f"{stage.source.stem}.ipynb"
        nbformat.write(stage_notebook(stage, sections), target)
        written.append(target)
    return written


def set_default_viewer(prefix: Path = Path(sys.prefix)) -> Path:
    """Merge VIEWER_SETTINGS into this environment's JupyterLab overrides.json."""
    path = prefix / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    settings = json.loads(path.read_text()) if path.exists() else {}
    for plugin, values in VIEWER_SETTINGS.items():
        settings.setdefault(plugin, {}).setdefault("defaultViewers", {}).update(values["defaultViewers"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings, indent=2) + "\n")
    return path


def lab_command(root: Path) -> list[str]:
    return ["jupyter", "lab", f"--ServerApp.root_dir={root}",
            f"--ServerApp.kernel_manager_class={KERNEL_MANAGER}", f"--LabApp.default_url=/lab/tree/{LAB_DIR}"]


def main() -> None:
    written = write_lab_notebooks()
    print(f"{len(written)} notebooks with the parameters of {config.PARAMS_FILE} in {LAB_DIR}/ "
          "(rewritten by every `make lab`; edit notebooks/*.py to change a stage)")
    set_default_viewer()
    os.environ.pop("MPLBACKEND", None)  # `make` exports Agg for the pipeline; kernels draw inline
    command = lab_command(Path.cwd().resolve())
    os.execvp(command[0], command)


if __name__ == "__main__":
    main()
