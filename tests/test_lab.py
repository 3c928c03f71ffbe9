"""JupyterLab on the notebooks (`make lab`): each notebook opens through jupytext with a
`parameters` cell that matches its stage's section, the lab copies carry the parameters the
runner passes, and a notebook run the way JupyterLab runs it writes only what the pipeline writes."""
import ast
import shutil

import jupytext
import nbformat
import pytest
import yaml

from tests.conftest import REPO, SmokePipeline, working_directory
from tinyemo import config, lab, runner
from tinyemo.stages import STAGES

RUNNER_ONLY = {"notebook.ipynb", "notebook.html", "provenance.json"}  # written by `tinyemo stage`


def parameters_cell(notebook) -> dict:
    cells = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, "exactly one cell tagged `parameters`"
    values = {}
    for node in ast.parse(cells[0].source).body:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1, "one `name = literal` per line"
        values[node.targets[0].id] = ast.literal_eval(node.value)  # literals only
    return values


def test_notebooks_are_jupytext_percent_scripts_by_configuration():
    from jupytext.config import find_jupytext_configuration_file, load_jupytext_configuration_file

    found = find_jupytext_configuration_file(str(REPO / "notebooks"))
    assert found == str(REPO / "notebooks" / "jupytext.toml")
    assert load_jupytext_configuration_file(found).formats == ["py:percent"]


@pytest.mark.parametrize("name", STAGES)
def test_each_notebook_opens_with_a_parameters_cell_matching_its_stage(name):
    stage = STAGES[name]
    notebook = jupytext.read(REPO / stage.source)
    nbformat.validate(notebook)
    names = set(parameters_cell(notebook))
    tree = config.render_profile("default", REPO / "profiles")
    own = set(tree[stage.section]) if stage.section else set()
    assert own <= names, f"{stage.source} lacks parameters {sorted(own - names)} of its section"
    borrowed = {key.split(".", 1)[1] for key in stage.reads}
    stray = names - own - borrowed - set(tree["base"])
    assert not stray, f"{stage.source} declares {sorted(stray)}, in no section it reads"


@pytest.mark.parametrize("profile", ["default", "smoke"])
def test_lab_notebooks_carry_the_parameters_the_runner_passes(in_tmp, profile):
    shutil.copytree(REPO / "profiles", in_tmp / "profiles")
    shutil.copytree(REPO / "notebooks", in_tmp / "notebooks")
    config.write_params(profile)
    written = lab.write_lab_notebooks()
    sections = config.load_params()
    assert [p.name for p in written] == [f"{s.source.stem}.ipynb" for s in STAGES.values()]
    for stage, path in zip(STAGES.values(), written):
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
        tags = [c.metadata.get("tags", []) for c in notebook.cells]
        at = tags.index(["parameters"])
        assert tags[at + 1] == ["injected-parameters"]  # right after, as papermill puts it
        injected = {}
        exec(notebook.cells[at + 1].source, {}, injected)
        expected = runner.stage_parameters(stage, sections, runner.notebook_parameters(stage.source))
        assert injected == expected
        assert notebook.metadata.kernelspec.name == "python3" and "jupytext" not in notebook.metadata


def test_kernels_start_in_the_repository_root(tmp_path):
    pytest.importorskip("jupyter_server")
    from tinyemo.lab_kernel import RepoRootKernelManager

    manager = RepoRootKernelManager(root_dir=str(tmp_path))
    (tmp_path / "lab").mkdir()
    assert manager.cwd_for_path("lab/01_synthesize.ipynb") == str(tmp_path)
    assert f"--ServerApp.kernel_manager_class={lab.KERNEL_MANAGER}" in lab.lab_command(tmp_path)


def test_saving_from_jupyterlab_keeps_the_notebooks_cells(tmp_path):
    pytest.importorskip("jupyter_server")
    from jupyter_server.services.contents.largefilemanager import LargeFileManager
    from jupytext.sync_contentsmanager import build_sync_jupytext_contents_manager_class

    shutil.copytree(REPO / "notebooks", tmp_path / "notebooks")
    manager = build_sync_jupytext_contents_manager_class(LargeFileManager)(root_dir=str(tmp_path))
    for stage in STAGES.values():
        path = f"notebooks/{stage.source.name}"
        model = manager.get(path)
        assert model["type"] == "notebook"
        manager.save(model, path)
        saved = (tmp_path / path).read_text()
        manager.save(manager.get(path), path)
        assert (tmp_path / path).read_text() == saved  # stable from the first save on
        assert [c.source for c in jupytext.read(tmp_path / path).cells] == \
            [c.source for c in jupytext.read(REPO / stage.source).cells]
        assert not list((tmp_path / "notebooks").glob("*.ipynb"))  # no paired copy appears


def test_default_viewer_setting_is_merged_into_overrides(tmp_path):
    path = tmp_path / "share/jupyter/lab/settings/overrides.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"@jupyterlab/apputils-extension:themes": {"theme": "JupyterLab Dark"}}')
    lab.set_default_viewer(tmp_path)
    settings = yaml.safe_load(path.read_text())
    assert settings["@jupyterlab/apputils-extension:themes"] == {"theme": "JupyterLab Dark"}
    assert settings["@jupyterlab/docmanager-extension:plugin"]["defaultViewers"]["python"] == "Jupytext Notebook"


@pytest.mark.slow
def test_a_notebook_run_as_in_jupyterlab_writes_only_what_the_pipeline_writes(tmp_path):
    from nbclient import NotebookClient

    pipeline = SmokePipeline(tmp_path / "repo")
    root = pipeline.run_through("synthesize")
    results = root / "results" / "synthesize"
    by_runner = {p.relative_to(results) for p in results.rglob("*") if p.is_file()}
    shutil.rmtree(results)
    with working_directory(root):
        notebook = lab.stage_notebook(STAGES["synthesize"], config.load_params())
    # the kernel works in the repository root, as RepoRootKernelManager starts it
    NotebookClient(notebook, kernel_name="python3", resources={"metadata": {"path": str(root)}}).execute()
    by_lab = {p.relative_to(results) for p in results.rglob("*") if p.is_file()}
    assert by_lab == {p for p in by_runner if p.name not in RUNNER_ONLY}
    declared = [str(p) for p in runner.declared_outputs("synthesize", root / "dvc.yaml")]
    assert all(any(str(results / p).startswith(str(root / d)) for d in declared) for p in by_lab)
    assert not (root / "lab").exists() and not list(root.glob("*.ipynb"))
