"""A Jupyter kernel manager that starts every kernel in the server's root directory.

Jupyter starts a kernel in its notebook's folder; the pipeline runs every notebook from the
repository root (its paths are relative to it). `make lab` starts JupyterLab with this
manager (`--ServerApp.kernel_manager_class=tinyemo.lab_kernel.RepoRootKernelManager`) and
the repository as root, so a notebook finds `data/`, `models/` and `results/` as in
`dvc repro`, with no `os.chdir` in the notebook.
"""
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager


class RepoRootKernelManager(AsyncMappingKernelManager):
    def cwd_for_path(self, path, **kwargs):
        return self.root_dir
