"""The counting behind the time-per-cell estimate of docs/real-suites.md (tools/estimate_paper_cells.py)."""

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

TOOL = Path(__file__).parents[2] / "tools" / "estimate_paper_cells.py"


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("estimate_paper_cells", TOOL)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_flops_of_the_cifar_generator_are_its_multiply_adds_twice(tool):
    macs = 100 * 128 * 8 * 8 + 16 * 16 * 9 * 128 * 128 + 32 * 32 * 9 * 128 * 64 + 32 * 32 * 9 * 64 * 3
    g = tool.generator(32).train()
    with torch.no_grad():
        work = tool.count(lambda: g(torch.randn(2, 100)))
    assert work.flops == 2 * 2 * macs  # batch 2, two FLOPs per multiply-add
    assert work.ops >= len(g)  # at least one operation per layer


def test_backward_to_the_input_counts_about_twice_the_forward(tool):
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.Flatten(), torch.nn.Linear(8 * 30 * 30, 10)).requires_grad_(False)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        forward = tool.count(lambda: net(x)).flops
    both = tool.count(lambda: tool.forward_backward(net, x.clone().requires_grad_(True))).flops
    assert both == pytest.approx(2 * forward, rel=0.01)


def test_time_is_flops_over_throughput_plus_launches(tool):
    work = tool.Work(flops=1e12, ops=1000)
    assert work.seconds(batch=2, scenario=tool.Scenario("x", tflops=100.0, launch_us=5.0)) == pytest.approx(0.02 + 0.005)
    # 6,000 steps × (2e12 / 150e12 + 1000 × 4 µs) = 104 s; 6,000 × (2e12 / 40e12 + 1000 × 10 µs) = 360 s
    row = tool.line("r", "m", work, batch=2, steps=6000, evaluation=tool.Work(0.0, 0), val_images=256)
    assert (row["GFLOP/step"], row["cell, optimistic"], row["cell, pessimistic"]) == (2000.0, "2 min", "6 min")


def test_zaq_iteration_counts_its_spatial_relation(tool, monkeypatch):
    """ZAQ's estimate includes its discrepancy: six forwards (five student steps, one generator
    step) of the spatial relation of teacher and student, each two HW × HW × C products."""
    from collections import OrderedDict

    size, channels = 16, 4

    def work():
        torch.manual_seed(0)
        teacher = torch.nn.Sequential(OrderedDict([
            ("stage1", torch.nn.Sequential(torch.nn.Conv2d(3, channels, 3, padding=1), torch.nn.ReLU())),
            ("pool", torch.nn.AdaptiveAvgPool2d(1)), ("flatten", torch.nn.Flatten()), ("output", torch.nn.Linear(channels, 10)),
        ])).eval()
        qmodel = tool.student(teacher, size)
        teacher.requires_grad_(False)
        return tool.zaq_iteration(tool.generator(size), teacher, qmodel).flops

    positions = size * size
    relation = 2 * (2 * positions * positions * channels)  # XᵀX and X·A_sᵀ, two FLOPs per multiply-add
    with_features = work()
    monkeypatch.setattr(tool.zaq_losses, "feature_discrepancy", lambda fq, fp: fq[0].sum() * 0)
    assert with_features - work() >= 6 * 2 * relation
