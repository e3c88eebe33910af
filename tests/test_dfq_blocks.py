"""The shared DFQ building blocks, each pinned to an independent computation."""

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dfqbench.dfq.bn_stats import BNInputs, gdfq_bns_loss, zeroq_bns_loss
from dfqbench.dfq.generators import ConditionalBatchNorm2d, GDFQGenerator, QimeraGenerator
from dfqbench.dfq.kd import gdfq_student_loss, kl_batchmean, kl_elementwise_mean, soft_cross_entropy

# Two samples, two channels, 1×2 pixels. Channel 0: [1, 3] and [-1, 1]; channel 1: [2, 2] and [0, 4].
X = torch.tensor([[[[1.0, 3.0]], [[2.0, 2.0]]], [[[-1.0, 1.0]], [[0.0, 4.0]]]])


def bn_with_stats():
    bn = nn.BatchNorm2d(2).eval()
    bn.running_mean.copy_(torch.tensor([0.0, 1.0]))
    bn.running_var.copy_(torch.tensor([1.0, 4.0]))
    return bn


def captured(model, x):
    hooks = BNInputs(model)
    hooks.__enter__()
    model(x)
    return hooks


def test_gdfq_bns_loss_hand_computed():
    hooks = captured(nn.Sequential(bn_with_stats()), X)
    # batch means (1, 2), biased variances (2, 2): MSE(mean) = (1 + 1)/2, MSE(var) = (1 + 4)/2
    assert gdfq_bns_loss(hooks).item() == pytest.approx(1.0 + 2.5)


def test_gdfq_bns_loss_averages_over_layers():
    model = nn.Sequential(bn_with_stats(), nn.Identity(), bn_with_stats())
    first = ((X.mean((0, 2, 3)) - torch.tensor([0.0, 1.0])) ** 2).mean() + ((X.var((0, 2, 3), unbiased=False) - torch.tensor([1.0, 4.0])) ** 2).mean()
    out = model[0](X)
    hooks = captured(model, X)
    second = ((out.mean((0, 2, 3)) - torch.tensor([0.0, 1.0])) ** 2).mean() + ((out.var((0, 2, 3), unbiased=False) - torch.tensor([1.0, 4.0])) ** 2).mean()
    assert gdfq_bns_loss(hooks).item() == pytest.approx(((first + second) / 2).item(), rel=1e-6)


def test_zeroq_bns_loss_hand_computed():
    hooks = captured(nn.Sequential(bn_with_stats()), X)
    s = math.sqrt
    eps = 1e-6
    # per-sample means: (2, 2) and (0, 2); unbiased variances: (2, 0) and (2, 8)
    target_std = (s(1 + eps), s(4 + eps))
    stds = [(s(2 + eps), s(0 + eps)), (s(2 + eps), s(8 + eps))]
    means = [(2.0, 2.0), (0.0, 2.0)]
    bn_term = sum((0 - m[0]) ** 2 + (1 - m[1]) ** 2 + (target_std[0] - d[0]) ** 2 + (target_std[1] - d[1]) ** 2 for m, d in zip(means, stds)) / 2
    input_term = sum(m[0] ** 2 + m[1] ** 2 + (1 - d[0]) ** 2 + (1 - d[1]) ** 2 for m, d in zip(means, stds)) / 2
    assert zeroq_bns_loss(hooks, X).item() == pytest.approx(bn_term + input_term, rel=1e-5)


def test_bn_inputs_refuse_a_stale_capture():
    model = nn.Sequential(bn_with_stats())
    hooks = captured(model, X)
    model(X)  # a second forward without clear()
    with pytest.raises(RuntimeError, match="call clear"):
        gdfq_bns_loss(hooks)


def test_bn_inputs_pair_each_layer_with_its_own_input_when_call_order_differs():
    from dfqbench.models.cifar_resnet import CIFARResNet

    torch.manual_seed(0)
    model = CIFARResNet(in_channels=1, num_classes=10, depth=8, widths=(2, 4, 8)).eval()
    layers = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for layer in layers:  # distinct statistics per layer, so a mix-up shows in the loss
        layer.running_mean.uniform_(-1, 1)
        layer.running_var.uniform_(0.5, 2)
    seen, call_order = {}, []

    def record(module, args):
        seen[module] = args[0]
        call_order.append(module)

    handles = [layer.register_forward_pre_hook(record) for layer in layers]
    x = torch.randn(4, 1, 8, 8)
    hooks = captured(model, x)
    for handle in handles:
        handle.remove()
    assert call_order != layers  # the downsampling units call their identity conv first
    assert all(torch.equal(inp, seen[layer]) for inp, layer in hooks.pairs())
    expected = torch.stack([
        F.mse_loss(seen[m].mean((0, 2, 3)), m.running_mean) + F.mse_loss(seen[m].var((0, 2, 3), unbiased=False), m.running_var)
        for m in layers
    ]).mean()  # fmt: skip
    assert gdfq_bns_loss(hooks).item() == pytest.approx(expected.item(), rel=1e-6)


def test_kl_conventions_hand_computed_and_against_torch():
    q = torch.tensor([[0.0, 0.0]])
    t = torch.tensor([[math.log(3.0), 0.0]])
    kl = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    assert kl_batchmean(q, t, 1.0).item() == pytest.approx(kl, rel=1e-6)
    assert kl_elementwise_mean(q, t, 1.0).item() == pytest.approx(kl / 2, rel=1e-6)  # divided by B·N
    torch.manual_seed(0)
    q, t = torch.randn(5, 10), torch.randn(5, 10) * 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = nn.KLDivLoss()(F.log_softmax(q / 20, 1), F.softmax(t / 20, 1))
    assert kl_elementwise_mean(q, t, 20.0).item() == pytest.approx(reference.item(), rel=1e-5)


def test_soft_cross_entropy_and_gdfq_student_loss():
    logits = torch.tensor([[0.0, 0.0]])
    assert soft_cross_entropy(logits, torch.tensor([[0.3, 0.7]])).item() == pytest.approx(math.log(2))
    torch.manual_seed(1)
    q, t = torch.randn(4, 10), torch.randn(4, 10)
    labels = torch.tensor([1, 2, 3, 4])
    total, kd, ce = gdfq_student_loss(q, t, F.one_hot(labels, 10).float(), temperature=20, alpha=1)
    assert ce.item() == pytest.approx(F.cross_entropy(q, labels).item(), rel=1e-6)
    assert kd.item() == pytest.approx(400 * kl_batchmean(q, t, 20).item() / 10, rel=1e-5)  # 400/N per sample
    assert total.item() == pytest.approx(kd.item() + ce.item())


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 32, 32)])
@pytest.mark.parametrize("conditioning", ["embedding", "cbn"])
def test_gdfq_generator_shapes_and_standardised_output(shape, conditioning):
    torch.manual_seed(0)
    gen = GDFQGenerator(10, shape, 100, conditioning)
    assert gen.trunk.l1.out_features == 128 * (shape[1] // 4) ** 2
    assert [m.eps for m in gen.modules() if isinstance(m, nn.BatchNorm2d)] == [1e-5, 0.8, 0.8, 1e-5]
    images = gen(torch.randn(64, 100), torch.randint(0, 10, (64,)))
    assert images.shape == (64, *shape)
    assert torch.allclose(images.mean(dim=(0, 2, 3)), torch.zeros(shape[0]), atol=1e-5)
    # unit variance up to the final BN's eps (1e-5), not negligible against tanh's small variance
    assert torch.allclose(images.var(dim=(0, 2, 3), unbiased=False), torch.ones(shape[0]), atol=5e-3)
    assert (gen.label_emb is None) == (conditioning == "cbn")


def test_gdfq_generator_conditions_on_the_label():
    torch.manual_seed(0)
    z, labels = torch.randn(8, 16), torch.randint(0, 10, (8,))
    gen = GDFQGenerator(10, (1, 8, 8), latent_dim=16)
    seen = []
    gen.trunk.l1.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    gen(z, labels)
    assert torch.equal(seen[-1], gen.label_emb(labels) * z)  # the trunk's input: Embedding(y) ⊙ z
    cbn = GDFQGenerator(10, (1, 8, 8), latent_dim=16, conditioning="cbn")
    with torch.no_grad():
        cbn.trunk.norm0.gamma.weight.copy_(torch.arange(10.0)[:, None] + 1)
        cbn.trunk.norm0.beta.weight.copy_(-torch.arange(10.0)[:, None])
    seen.clear()
    cbn.trunk.conv1.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    cbn(z, labels)
    # norm0 of the CBN trunk: per-class γ_y·BN(x) + β_y, then the ×2 upsampling before conv1
    x = cbn.trunk.l1(z).view(8, 128, 2, 2)
    want = (labels + 1.0)[:, None, None, None] * F.batch_norm(x, None, None, training=True) - labels[:, None, None, None]
    assert torch.allclose(seen[-1], F.interpolate(want, scale_factor=2), atol=1e-5)


def test_conditional_bn_mixes_the_mean_over_slots():
    cbn = ConditionalBatchNorm2d(3, 2)
    with torch.no_grad():
        cbn.gamma.weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]))
        cbn.beta.weight.zero_()
    x = torch.randn(2, 2, 4, 4)
    labels, weights = torch.tensor([[0, 2], [1, 1]]), torch.tensor([[0.25, 0.75], [0.5, 0.5]])
    out = cbn(x, labels, weights)
    normed = F.batch_norm(x, None, None, training=True)
    gamma0 = (0.25 * torch.tensor([1.0, 2.0]) + 0.75 * torch.tensor([5.0, 6.0])) / 2  # mean over K = 2
    assert torch.allclose(out[0], gamma0[:, None, None] * normed[0], atol=1e-5)


def test_qimera_generator_normalises_per_sample_and_per_slot():
    torch.manual_seed(0)
    gen = QimeraGenerator(10, (1, 8, 8), latent_dim=16)
    seen = []
    gen.trunk.l1.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    gen(torch.randn(8, 16), torch.randint(0, 10, (8,)))
    single = seen[-1]
    assert torch.allclose(single.mean(dim=1), torch.zeros(8), atol=1e-5)
    assert torch.allclose(single.var(dim=1, unbiased=False), torch.ones(8), atol=1e-3)
    labels = torch.randint(0, 10, (8, 3))
    weights = F.softmax(torch.randn(8, 3), dim=1)
    z = torch.randn(8, 3, 16)
    images = gen(z, labels, weights)
    e = gen.label_emb(labels) + z
    e = (e - e.mean(dim=(0, 2), keepdim=True)) / torch.sqrt(e.var(dim=(0, 2), unbiased=False, keepdim=True) + 1e-5)
    assert torch.allclose(seen[-1], (weights[..., None] * e).sum(1), atol=1e-5)
    assert images.shape == (8, 1, 8, 8)


def test_qimera_embedding_from_the_teacher_classifier_is_trainable():
    weights = torch.randn(10, 16)
    gen = QimeraGenerator(10, (1, 8, 8), latent_dim=16, embedding_init=weights)
    assert torch.equal(gen.label_emb.weight, weights) and gen.label_emb.weight.requires_grad
    assert QimeraGenerator(10, (1, 8, 8), 16, dm_dim=100).trunk.l1.in_features == 100
