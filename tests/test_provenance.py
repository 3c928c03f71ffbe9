"""Provenance: the code revision a stage ran at, and whether the tree had uncommitted changes."""
import subprocess

from tinyemo import provenance


def git(*args):
    subprocess.run(["git", *args], check=True, capture_output=True)


def test_a_tree_is_dirty_with_changed_code_but_not_with_what_the_pipeline_writes(in_tmp):
    git("init", "-q")
    (in_tmp / "code.py").write_text("x = 1\n")
    (in_tmp / "dvc.lock").write_text("stages: {}\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "start")
    clean = provenance.git_revision()
    assert len(clean["commit"]) == 40 and clean["dirty"] is False
    (in_tmp / "dvc.lock").write_text("stages: {a: 1}\n")
    for output in ("results/assets/metrics.json", "models/.gitignore", "reports/README.md", "data/x.json"):
        (in_tmp / output).parent.mkdir(parents=True, exist_ok=True)
        (in_tmp / output).write_text("written by a stage\n")
    assert provenance.git_revision()["dirty"] is False
    (in_tmp / "new_module.py").write_text("y = 1\n")
    assert provenance.git_revision()["dirty"] is True
    (in_tmp / "new_module.py").unlink()
    (in_tmp / "code.py").write_text("x = 2\n")
    assert provenance.git_revision()["dirty"] is True


def test_outside_a_git_work_tree_dirty_is_unknown_not_false(in_tmp, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(in_tmp.parent))  # no repository above
    revision = provenance.git_revision()
    assert revision == {"commit": "unknown", "dirty": None}


def test_without_git_installed_dirty_is_unknown(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    assert provenance.git_revision() == {"commit": "unknown", "dirty": None}
