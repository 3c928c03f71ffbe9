"""The command line's error policy: the project's own errors are one line and exit 2; bugs
keep their traceback; a reader that closes the pipe ends the command quietly."""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tinyemo import cli, errors
from tinyemo.cli import main
from tinyemo.config import ConfigError
from tinyemo.emotion6 import DataUnavailableError
from tinyemo.models.registry import UnknownModelError

REPO = Path(__file__).resolve().parents[1]


def with_handler(monkeypatch, handler):
    """`tinyemo profile` with its handler replaced by `handler` (the parser stays real)."""
    real = cli.build_parser

    def build_parser():
        parser = real()
        parser._subparsers._group_actions[0].choices["profile"].set_defaults(handler=handler)
        return parser

    monkeypatch.setattr(cli, "build_parser", build_parser)


def raising(error):
    def handler(args):
        raise error
    return handler


@pytest.mark.parametrize("error", [
    errors.CommandError("no such projector"),
    ConfigError("n_train: bad"),
    UnknownModelError("llm nope"),
    DataUnavailableError("offline"),
])
def test_the_projects_own_errors_are_one_line_with_exit_2(monkeypatch, capsys, error):
    with_handler(monkeypatch, raising(error))
    assert main(["profile", "default"]) == 2
    assert capsys.readouterr().err == f"tinyemo profile: error: {error}\n"


@pytest.mark.parametrize("error", [
    RuntimeError("mat1 and mat2 shapes cannot be multiplied (2x3 and 4x5)"),
    ValueError("too many values to unpack"),
    FileNotFoundError("deep/inside/a/library"),
])
def test_a_bug_keeps_its_traceback(monkeypatch, error):
    with_handler(monkeypatch, raising(error))
    with pytest.raises(type(error)):
        main(["profile", "default"])


def test_every_project_error_class_is_a_tinyemo_error_and_keeps_its_builtin_base():
    from tinyemo import config, emotion6, feature_store, runner, taxonomy
    from tinyemo.bias import association, concepts, scores
    from tinyemo.mmllm import artifact as mmllm_artifact
    from tinyemo.mmllm import explainer
    from tinyemo.models import folders, registry
    from tinyemo.projector import anchors
    from tinyemo.projector import artifact as projector_artifact
    from tinyemo.scenes import catalogue, records

    expected = {
        feature_store.FeatureError: ValueError, config.ConfigError: ValueError,
        registry.UnknownModelError: ValueError, anchors.AnchorError: ValueError,
        emotion6.DataUnavailableError: FileNotFoundError, emotion6.FeatureFolderError: ValueError,
        mmllm_artifact.MissingModelError: FileNotFoundError,
        explainer.UnreadableImageError: ValueError,
        projector_artifact.ProjectorLoadError: ValueError,
        projector_artifact.FeatureWidthError: ValueError,
        folders.ModelNotPreparedError: FileNotFoundError, scores.ScoreError: ValueError,
        association.AssociationError: ValueError, concepts.ConceptBankError: ValueError,
        records.MissingDataError: FileNotFoundError, catalogue.UnknownSceneNameError: ValueError,
        runner.StageError: RuntimeError, taxonomy.UnknownTaxonomyError: ValueError,
    }
    for cls, builtin in expected.items():
        assert issubclass(cls, errors.TinyEmoError) and issubclass(cls, builtin), cls


def test_a_closed_pipe_ends_quietly(monkeypatch):
    def handler(args):
        raise BrokenPipeError(32, "Broken pipe")

    with_handler(monkeypatch, handler)
    # main points stdout's descriptor at devnull: give it a throwaway stdout, not pytest's
    with tempfile.TemporaryFile("w") as scratch:
        monkeypatch.setattr(sys, "stdout", scratch)
        assert main(["profile", "default"]) == cli.BROKEN_PIPE_STATUS


def test_a_closed_pipe_in_a_real_shell_pipeline_prints_no_traceback(in_tmp):
    script = (
        "import sys\n"
        "from tinyemo import cli\n"
        "def handler(args):\n"
        "    for i in range(100000):\n"
        "        print(f'line {i}')\n"
        "real = cli.build_parser\n"
        "def build():\n"
        "    p = real()\n"
        "    p._subparsers._group_actions[0].choices['profile'].set_defaults(handler=handler)\n"
        "    return p\n"
        "cli.build_parser = build\n"
        "sys.exit(cli.main(['profile', 'default']))\n"
    )
    (in_tmp / "writer.py").write_text(script)
    done = subprocess.run(f"{sys.executable} writer.py | head -3", shell=True, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.stdout == "line 0\nline 1\nline 2\n"
    assert done.stderr == "", done.stderr
