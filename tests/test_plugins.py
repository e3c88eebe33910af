"""Plugin discovery through entry points: third-party, broken and clashing plugins."""

import subprocess
import sys

from conftest import install_dist

from dfqbench.registry import load_registry


def test_builtin_plugins_load_through_entry_points():
    reg = load_registry()
    assert {"suites", "baselines"} <= {p.name for p in reg.plugins}
    assert reg.method("noise").plugin.distribution == "dfqbench"
    assert not reg.problems


def test_list_shows_every_entry_with_its_distribution_and_version(cli, example_plugin):
    result = cli("list")
    assert result.code == 0
    line = next(l for l in result.out.splitlines() if l.strip().startswith("uniform-calib"))
    assert "[dfqbench-example 0.2.0]" in line
    noise = next(l for l in result.out.splitlines() if l.strip().startswith("noise"))
    assert "[dfqbench 0.1.0]" in noise
    for section in ("methods:", "models:", "datasets:", "suites:", "plugins:"):
        assert section in result.out


def test_broken_plugin_is_reported_and_the_others_still_load(cli, site):
    broken = site / "dfqbench_broken"
    broken.mkdir()
    (broken / "__init__.py").write_text("import a_dependency_that_is_not_installed\n")
    install_dist(site, "dfqbench-broken", "1.0", {"broken": "dfqbench_broken"})
    result = cli("list", "methods")
    assert result.code == 0
    assert "noise" in result.out and "real-calib" in result.out
    assert "plugin 'broken' (distribution dfqbench-broken): failed to load: ModuleNotFoundError" in result.err
    assert "a_dependency_that_is_not_installed" in result.err


def test_clashing_name_is_rejected_and_the_builtin_kept(site):
    pkg = site / "dfqbench_clash"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        "from dfqbench.api import CNN, MethodInfo, hookimpl\n"
        "@hookimpl\n"
        "def dfqbench_methods():\n"
        "    return [MethodInfo('noise', 'Fake noise', 'x', (CNN,), 'x:y'), MethodInfo('fresh', 'Fresh', 'x', (CNN,), 'x:y')]\n"
    )
    install_dist(site, "dfqbench-clash", "0.1", {"clash": "dfqbench_clash"})
    reg = load_registry()
    assert reg.method("noise").info.display_name == "Noise"
    assert reg.method("fresh").plugin.distribution == "dfqbench-clash"
    (problem,) = reg.problems
    assert problem.plugin == "clash" and problem.distribution == "dfqbench-clash"
    assert "method name 'noise' clashes with plugin 'baselines'" in problem.error


def test_list_imports_no_torch():
    code = (
        "import sys\nfrom dfqbench.cli import main\n"
        "try:\n    main(['list'])\nexcept SystemExit as stop:\n    assert stop.code in (0, None), stop.code\n"
        "assert 'torch' not in sys.modules, 'dfqbench list imported torch'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert "methods:" in done.stdout


def test_unknown_list_kind(cli):
    result = cli("list", "widgets")
    assert result.code == 2
    assert result.err.strip() == (
        "dfqbench: error: unknown list kind 'widgets'; valid choices: datasets, methods, models, plugins, suites"
    )
