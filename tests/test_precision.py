"""``--precision bf16`` and ``--channels-last``: what runs in bfloat16, what must not, and
how the setting reaches records, keys and tables."""

import pytest
import torch

from dfqbench.dfq.bn_stats import BNInputs, gdfq_bns_loss
from dfqbench.quant.functional import asym_fake_quant
from dfqbench.quant.modules import QuantAct
from dfqbench.records import RecordStore


def bf16():
    return torch.autocast("cpu", dtype=torch.bfloat16)


def test_activation_quantizer_stays_fp32_under_autocast():
    """A bf16 activation is quantized on the fp32 grid of the fp32 range: a range or grid
    rounded to bfloat16 (8 bits of mantissa) would move the levels."""
    act = QuantAct(4)
    act.x_min.fill_(-0.3337)
    act.x_max.fill_(1.2345)  # neither is a bfloat16 value
    act.num_updates.fill_(1)
    x = torch.linspace(-0.5, 1.5, 101).to(torch.bfloat16).requires_grad_(True)
    with bf16():
        out = act(x)
    expected = asym_fake_quant(x.detach().float(), torch.tensor(-0.3337), torch.tensor(1.2345), 4)
    assert out.dtype == torch.float32
    assert torch.equal(out, expected)
    assert len(torch.unique(out)) <= 16
    out.sum().backward()
    assert x.grad.dtype == torch.bfloat16 and torch.equal(x.grad, torch.ones_like(x.grad))  # identity STE


def test_bn_statistics_are_fp32_under_autocast():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8)).eval()
    net[1].running_mean.uniform_(-1, 1)
    net[1].running_var.uniform_(0.5, 2)
    x = torch.randn(16, 3, 8, 8)
    with BNInputs(net) as bn, bf16():
        net(x)
        loss = gdfq_bns_loss(bn)
        captured = bn.inputs[0]
    assert captured.dtype == torch.float32 and loss.dtype == torch.float32
    # the same loss, by hand, on the bf16 convolution's output
    y = torch.nn.functional.conv2d(x.bfloat16(), net[0].weight.bfloat16(), net[0].bias.bfloat16()).float()
    mean, var = y.mean((0, 2, 3)), y.var((0, 2, 3), unbiased=False)
    expected = ((mean - net[1].running_mean) ** 2).mean() + ((var - net[1].running_var) ** 2).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_patch_similarity_entropy_is_computed_in_fp32():
    from dfqbench_psaqvit.losses import differential_entropy, patch_similarity_entropy

    torch.manual_seed(0)
    attn_v = torch.randn(2, 3, 17, 8)
    reference = patch_similarity_entropy(attn_v, 2)
    with bf16():
        assert torch.equal(patch_similarity_entropy(attn_v, 2), reference)
        tokens = torch.nn.functional.normalize(attn_v.mean(dim=1)[:, 1:], dim=-1)
        rounded = tokens @ tokens.transpose(1, 2)  # what autocast alone would make of the similarities
    assert rounded.dtype == torch.bfloat16
    assert differential_entropy(rounded.float().reshape(2, -1)) != pytest.approx(reference.item(), rel=1e-3)


def test_generators_stay_fp32_under_autocast():
    """The ACGAN trunk is never autocast: its BN (eps 0.8) after a bf16 convolution leaves
    mostly rounding, and GDFQ's generator then never learns (README, --precision)."""
    from dfqbench.dfq.generators import GDFQGenerator, QimeraGenerator, UnconditionalGenerator

    torch.manual_seed(0)
    z, labels = torch.randn(8, 100), torch.randint(0, 10, (8,))
    for generator, args in [
        (GDFQGenerator(10, (1, 8, 8)), (z, labels)),
        (QimeraGenerator(10, (1, 8, 8), 100), (z, labels)),
        (QimeraGenerator(10, (1, 8, 8), 100, dm_dim=100), (z, labels)),  # with the disentanglement mapping
        (QimeraGenerator(10, (1, 8, 8), 100, dm_dim=100), (z[:, None].expand(8, 2, 100), labels[:, None].expand(8, 2), torch.full((8, 2), 0.5))),
        (UnconditionalGenerator((1, 8, 8), 100), (z,)),
    ]:
        reference = generator(*args)
        with bf16():
            images = generator(*args)
        assert images.dtype == torch.float32 and torch.equal(images, reference), type(generator).__name__


def test_zeroq_distils_in_fp32_under_autocast(zeroq_bench):
    """In bf16 the distillation stalled (loss 2667 vs 258, top-1 at chance): it runs in fp32."""
    import dataclasses

    import dfqbench_zeroq.method as zeroq

    teacher, digits, ctx = zeroq_bench
    cfg = dataclasses.replace(zeroq.ZeroQConfig(), iterations=5)
    runs = []
    for autocast in (False, True):
        torch.manual_seed(1)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            runs.append(zeroq.distill(teacher, digits, cfg, ctx))
    assert torch.equal(runs[0][0], runs[1][0]) and runs[0][1] == runs[1][1]


def test_fp64_activations_are_quantized_in_fp64():
    act = QuantAct(4)
    act.x_min.fill_(-0.3337)
    act.x_max.fill_(1.2345)
    act.num_updates.fill_(1)
    x = torch.linspace(-0.5, 1.5, 1001, dtype=torch.float64)
    expected = asym_fake_quant(x, torch.tensor(-0.3337).double(), torch.tensor(1.2345).double(), 4)
    assert torch.equal(act(x), expected)


def test_bf16_needs_bf16_tensor_cores(monkeypatch):
    """A GPU before compute capability 8.0 only emulates bfloat16: one clear error, though
    torch.cuda.is_bf16_supported() would say yes."""
    from dfqbench import precision
    from dfqbench.errors import DfqError

    capability = {0: (8, 0), 1: (7, 0)}
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device: capability[device.index])
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: f"GPU {device.index}")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert precision.check("bf16", torch.device("cuda:0")) == "bf16"
    assert precision.check("fp32", torch.device("cuda:1")) == "fp32"
    with pytest.raises(DfqError, match=r"^--precision bf16: GPU 1 has no bfloat16 tensor cores; valid choices here: fp32$"):
        precision.check("bf16", torch.device("cuda:1"))


def test_bf16_cell_runs_under_autocast_and_is_recorded_apart(cli, probes, tmp_path):
    from dfqbench_probes import methods

    methods.SEEN.clear()
    args = ("run", "--methods", "probe-spy", "--models", "resnet20-digits", "--bits", "4", "--budget", "smoke", "--results", str(tmp_path))
    res = cli(*args, "--precision", "bf16", "--channels-last")
    assert res.code == 0, res.err
    seen = methods.SEEN[-1]
    assert seen["autocast"]["cpu"] and seen["ctx"].precision == "bf16"
    convs = [m for m in (seen["teacher"], seen["qmodel"]) for m in m.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    assert not torch.is_autocast_enabled("cpu")  # and only inside the method
    assert "precision `bf16`" in res.out

    # fp32 is another cell: not resumed from the bf16 record, and tabled apart
    res = cli(*args)
    assert res.code == 0, res.err
    assert "1 cells planned, 0 already done" in res.err
    assert not methods.SEEN[-1]["autocast"]["cpu"]
    recs = RecordStore(tmp_path / "digits" / "records.jsonl").read()
    assert [(r["cell"]["precision"], r["cell"]["channels_last"]) for r in recs] == [("bf16", True), ("fp32", False)]
    assert recs[0]["key"] != recs[1]["key"]
    assert res.out.count("### Suite `digits`") == 2
    summary = (tmp_path / "digits" / "table.csv").read_text().splitlines()
    assert summary[0].split(",")[:5] == ["suite", "budget", "quantizer", "data", "precision"]
    assert sorted(line.split(",")[4] for line in summary[1:]) == ["bf16", "fp32"]


def test_bf16_gdfq_and_zeroq_reach_the_smoke_floor_and_share_no_work_with_fp32(tmp_path):
    """A bf16 method trains for real (the smoke floors of the fp32 tests), and ZeroQ's
    distilled batch, made under bf16, is never reused by an fp32 cell."""
    from dataclasses import replace

    from dfqbench.plan import make_plan
    from dfqbench.registry import load_registry
    from dfqbench.session import Session

    reg = load_registry()
    cells = make_plan(reg, "digits", ["gdfq", "zeroq"], ["resnet20-digits"], [(4, 4)], [0], "smoke", precision="bf16").cells
    session = Session(reg, torch.device("cpu"))
    recs = [session.run(cell) for cell in cells]
    assert [r["status"] for r in recs] == ["ok", "ok"]
    assert min(r["top1"] for r in recs) >= 40.0
    fp32 = replace(cells[1], precision="fp32")
    hits = session.shared.hits
    shared_top1 = session.run(fp32)["top1"]
    assert session.shared.hits == hits
    assert shared_top1 == Session(reg, torch.device("cpu")).run(fp32)["top1"]


def test_bad_precision_is_one_line(cli, tmp_path):
    res = cli("run", "--methods", "noise", "--precision", "fp16", "--results", str(tmp_path))
    assert res.code == 2
    assert res.err.strip().splitlines() == ["dfqbench: error: unknown precision 'fp16'; valid choices: bf16, fp32"]
    assert not (tmp_path / "digits").exists()


def test_dry_run_names_the_precision(cli, tmp_path):
    res = cli("run", "--methods", "noise", "--models", "resnet20-digits", "--bits", "4", "--precision", "bf16", "--dry-run",
              "--results", str(tmp_path))
    assert res.code == 0, res.err
    header, _, row = res.out.strip().splitlines()[:3]
    assert "precision" in header and "bf16" in row
    assert not (tmp_path / "digits").exists()
