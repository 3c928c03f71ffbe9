"""Every pipeline stage depends on each package module its code imports.

Stage dependencies in `dvc.yaml` are written per module, so that an edit reruns only the
stages that use it. This test derives, from the imports, the modules a stage really runs
(its notebook or command module, followed through `tinyemo` imports, lazy ones inside
functions included) and fails when `dvc.yaml` leaves one out: a change there would leave a
stale result that `dvc status` calls up to date.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
# Modules every stage runs through (the runner and its helpers), declared once per stage too.
COMMAND_MODULE = {"stage": "tinyemo/cli/stage.py", "encode": "tinyemo/cli/encode.py",
                  "ablate-run": "tinyemo/cli/ablate_run.py", "fetch-emotion6": "tinyemo/cli/fetch_emotion6.py"}


def module_file(name: str) -> Path | None:
    path = REPO / Path(*name.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def imported_modules(source: str, package: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            names.add(base)
            names |= {f"{base}.{alias.name}" for alias in node.names}
    return {name for name in names if name == "tinyemo" or name.startswith("tinyemo.")}


def closure(start: list[Path]) -> set[Path]:
    seen, todo = set(), list(start)
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        rel = path.relative_to(REPO).with_suffix("")
        package = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts[:-1])
        for name in imported_modules(path.read_text(), package or "tinyemo"):
            parts = name.split(".")
            for depth in range(2, len(parts) + 1):  # a package's __init__ runs on import
                found = module_file(".".join(parts[:depth]))
                if found is not None and found not in seen:
                    todo.append(found)
    return seen


def stage_entry_points(cmd: str) -> list[Path]:
    words = cmd.split()
    entry = [REPO / COMMAND_MODULE[words[1]]]
    if words[1] == "stage":
        from tinyemo.stages import stage

        entry.append(REPO / stage(words[2]).source)
    return entry


def covered(path: Path, deps: list[str]) -> bool:
    rel = path.relative_to(REPO).as_posix()
    return any(rel == dep or rel.startswith(dep.rstrip("/") + "/") for dep in deps)


def stages():
    pipeline = yaml.safe_load((REPO / "dvc.yaml").read_text())
    for name, stage in pipeline["stages"].items():
        body = stage.get("do", stage)
        cmd = re.sub(r"\$\{[^}]+\}", "x", body["cmd"])
        if cmd.split()[1] == "stage":
            cmd = f"tinyemo stage {cmd.split()[2]}"
        yield name, cmd, [d for d in body.get("deps", []) if "${" not in d]


@pytest.mark.parametrize("name,cmd,deps", list(stages()), ids=[s[0] for s in stages()])
def test_the_stage_depends_on_every_module_it_imports(name, cmd, deps):
    used = closure(stage_entry_points(cmd))
    missing = sorted(p.relative_to(REPO).as_posix() for p in used
                     if p.is_relative_to(REPO / "tinyemo") and not covered(p, deps))
    assert not missing, f"dvc.yaml stage {name} imports {missing} but does not depend on them"
