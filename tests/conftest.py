"""Shared fixtures: run the CLI in-process, and install plugins through real metadata."""

from __future__ import annotations

import os

# Before torch is imported (subprocesses inherit it): the suites' small models run fastest
# on one thread, and on a shared 2-core CI machine two spinning threads per process
# oversubscribe the cores (measured: the whole suite 33 s vs 594 s).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

THIRDPARTY = Path(__file__).parent / "thirdparty"


@pytest.fixture(autouse=True, scope="session")
def ray_logs_to_the_sessions_stream():
    """Ray binds its log handler to the sys.stderr of the moment it is first imported. In a
    test's ``cli`` call that is the test's capture stream, closed when the test ends, and a
    later test's ``ray.init`` warning then prints a logging traceback into that test's
    output. Imported here, before any test captures, it logs to the session's stream."""
    try:
        import ray  # noqa: F401
    except ImportError:  # the Ray tests skip themselves
        pass


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys):
    """``cli("run", "--methods", "noise")`` → CliResult(code, stdout, stderr)."""
    from dfqbench.cli import main

    def invoke(*args: str) -> CliResult:
        capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
        out, err = capsys.readouterr()
        return CliResult(code, out, err)

    return invoke


def install_dist(site: Path, name: str, version: str, entry_points: dict[str, str], packages: list[Path] = ()) -> None:
    """Lay out what ``pip install`` leaves in site-packages: the packages and a .dist-info
    whose ``entry_points.txt`` registers them in the ``dfqbench`` group."""
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = "".join(f"{ep} = {target}\n" for ep, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[dfqbench]\n{lines}")
    for package in packages:
        shutil.copytree(package, site / package.name)


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A site-packages folder on sys.path (and PYTHONPATH, for subprocesses)."""
    path = tmp_path / "site"
    path.mkdir()
    monkeypatch.syspath_prepend(str(path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(path), os.environ.get("PYTHONPATH")])))
    return path


@pytest.fixture
def example_plugin(site):
    install_dist(site, "dfqbench-example", "0.2.0", {"example": "dfqbench_example"}, [THIRDPARTY / "dfqbench-example" / "dfqbench_example"])
    return site


@pytest.fixture
def probes(site):
    install_dist(site, "dfqbench-probes", "0.0.1", {"probes": "dfqbench_probes"}, [THIRDPARTY / "dfqbench-probes" / "dfqbench_probes"])
    return site


@pytest.fixture
def zeroq_bench():
    """What ZeroQ's ``distill`` needs, without a session: a randomly initialised digits
    ResNet-20 (eval mode), its task, and a context with a silent progress bar."""
    import contextlib
    from types import SimpleNamespace

    import torch

    from dfqbench.api import Task
    from dfqbench.models.cifar_resnet import CIFARResNet

    torch.manual_seed(0)
    teacher = CIFARResNet(1, 10, 20, (4, 8, 16)).eval()
    task = Task("s", "digits", "r", "cnn", 10, (1, 8, 8), (0.5,), (0.5,), 4, 4)
    ctx = SimpleNamespace(device=torch.device("cpu"), progress=lambda *_: contextlib.nullcontext(SimpleNamespace(advance=lambda: None)))
    return teacher, task, ctx
