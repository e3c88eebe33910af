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


def method_plugin(site, name, methods):
    """Install distribution ``dfqbench-NAME`` whose plugin ``NAME`` returns ``[METHODS]``."""
    pkg = site / f"dfqbench_{name}"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        f"from dfqbench.api import CNN, MethodInfo, hookimpl\n@hookimpl\ndef dfqbench_methods():\n    return [{methods}]\n"
    )
    install_dist(site, f"dfqbench-{name}", "0.1", {name: f"dfqbench_{name}"})


def test_clashing_name_is_rejected_and_the_builtin_kept(site):
    method_plugin(site, "clash", "MethodInfo('noise', 'Fake noise', 'x', (CNN,), 'x:y'), MethodInfo('fresh', 'Fresh', 'x', (CNN,), 'x:y')")
    reg = load_registry()
    assert reg.method("noise").info.display_name == "Noise"
    assert reg.method("fresh").plugin.distribution == "dfqbench-clash"
    (problem,) = reg.problems
    assert problem.plugin == "clash" and problem.distribution == "dfqbench-clash"
    assert "method name 'noise' clashes with plugin 'baselines'" in problem.error


def test_a_method_whose_labels_records_could_not_hold_is_a_problem_not_a_record(site):
    """Every record carries the method's display name, data-free flag and year; a plugin that
    gives a year of None is reported when it loads, not in records the reader then refuses."""
    method_plugin(site, "yearless", "MethodInfo('yearless', 'Yearless', 'x', (CNN,), 'x:y', year=None)")
    reg = load_registry()
    assert "yearless" not in reg.methods
    (problem,) = reg.problems
    assert problem.plugin == "yearless" and problem.error == "hook failed: TypeError: MethodInfo year=None is not int"


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
