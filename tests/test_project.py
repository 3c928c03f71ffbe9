"""The house: pinned environments agree, the DVC pipeline resolves, stages match notebooks."""
import subprocess
import tomllib

import yaml

from tests.conftest import REPO
from tinyemo.runner import notebook_parameters
from tinyemo.stages import STAGES


def pyproject_pins() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    pins = set(project["project"]["dependencies"])
    pins |= set(project["project"]["optional-dependencies"]["test"])
    return pins


def test_environment_yml_and_pyproject_pin_the_same_packages():
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert set(pip_section) == pyproject_pins()
    assert all("==" in pin for pin in pyproject_pins()), "every dependency is pinned"


def test_no_deps_packages_are_installed_by_make_and_named_in_environment_yml():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    makefile = (REPO / "Makefile").read_text()
    environment = (REPO / "environment.yml").read_text()
    for pin in project["tool"]["tinyemo"]["no-deps"]:
        assert f"--no-deps {pin}" in makefile
        assert f"--no-deps {pin}" in environment


def test_every_stage_has_a_notebook_and_a_dvc_stage_reading_its_section():
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for name, stage in STAGES.items():
        assert name in dvc, f"stage {name} missing from dvc.yaml"
        assert dvc[name]["cmd"] == f"tinyemo stage {name}"
        assert str(stage.source) in dvc[name]["deps"]
        if stage.section:
            assert stage.section in dvc[name]["params"]
        assert (REPO / stage.source).exists()
        declared = notebook_parameters(REPO / stage.source)
        assert declared, f"{stage.source} has no parameters cell"
        for dotted in stage.reads:  # keys of other sections: tracked by DVC, declared by the notebook
            assert dotted in dvc[name]["params"] and dotted.split(".", 1)[1] in declared


def test_dvc_pipeline_resolves():
    result = subprocess.run(
        ["dvc", "dag", "--md"], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    for name in STAGES:
        if name in yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]:
            assert name in result.stdout
