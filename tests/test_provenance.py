"""Provenance: the code revision a stage ran at, and whether the tree had uncommitted changes."""
import subprocess

from tinyemo import provenance


def git(*args):
    subprocess.run(["git", *args], check=True, capture_output=True)


def test_a_tree_is_dirty_with_changed_code_but_not_with_a_rewritten_dvc_lock(in_tmp):
    git("init", "-q")
    (in_tmp / "code.py").write_text("x = 1\n")
    (in_tmp / "dvc.lock").write_text("stages: {}\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "start")
    clean = provenance.git_revision()
    assert len(clean["commit"]) == 40 and clean["dirty"] is False
    (in_tmp / "dvc.lock").write_text("stages: {a: 1}\n")
    assert provenance.git_revision()["dirty"] is False
    (in_tmp / "code.py").write_text("x = 2\n")
    assert provenance.git_revision()["dirty"] is True
