"""The one figure helper: PNG at the house resolution, folder created, figure closed; and
importing the package (or asking the CLI for help) does not load matplotlib."""
import os
import subprocess
import sys

import pytest
from PIL import Image

from tinyemo.figures import DPI, pyplot, save_figure


def test_save_figure_writes_a_png_of_the_house_size_and_closes_the_figure(tmp_path):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(2.0, 1.5))
    ax.plot([0, 1], [1, 0])
    path = save_figure(fig, tmp_path / "new" / "folder" / "line.png")
    assert path == tmp_path / "new" / "folder" / "line.png"
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == (round(2.0 * DPI), round(1.5 * DPI))
    assert not plt.fignum_exists(fig.number)


def test_save_figure_refuses_a_path_that_is_not_png(tmp_path):
    fig, _ = pyplot().subplots()
    with pytest.raises(ValueError, match=r"\.png"):
        save_figure(fig, tmp_path / "figure.pdf")
    pyplot().close(fig)
    assert not (tmp_path / "figure.pdf").exists()


HELP = "sys.argv = ['tinyemo', '--help']\nfrom tinyemo.cli import main\ntry:\n    main()\nexcept SystemExit:\n    pass"


@pytest.mark.parametrize("body", ["import tinyemo", HELP], ids=["import", "cli-help"])
def test_matplotlib_is_not_loaded_without_a_figure(body):
    code = f"import sys\n{body}\nprint('matplotlib' in sys.modules)"
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_no_module_chooses_a_backend():
    import tinyemo

    root = os.path.dirname(tinyemo.__file__)
    offenders = []
    for folder, _, files in os.walk(root):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                with open(path) as handle:
                    if "matplotlib.use(" in handle.read():
                        offenders.append(os.path.relpath(path, root))
    assert offenders == []
