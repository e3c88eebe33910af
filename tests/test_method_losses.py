"""AdaDFQ's and ZAQ's losses pinned to hand computations on tiny logits and features."""

import math

import numpy as np
import pytest
import torch

from dfqbench_adadfq import losses as ada
from dfqbench_zaq import losses as zaq

LN = math.log


def h(*p):
    return -sum(x * LN(x) for x in p)


# Three samples, two classes; z_p − z_q = [0, 0], [ln 3, 0], [ln 9, 0]:
# disagreement distributions (½, ½), (¾, ¼), (0.9, 0.1)
Z_Q = torch.zeros(3, 2)
Z_P = torch.tensor([[0.0, 0.0], [LN(3), 0.0], [LN(9), 0.0]])


def test_entropy_hand_computed():
    assert ada.entropy(Z_P - Z_Q).tolist() == pytest.approx([LN(2), h(0.75, 0.25), h(0.9, 0.1)], rel=1e-6)


def test_normalised_entropy_divides_by_log_c_after_removing_the_batch_minimum():
    h_min = h(0.9, 0.1)
    expected = [(LN(2) - h_min) / (LN(2) - h_min), (h(0.75, 0.25) - h_min) / (LN(2) - h_min), 0.0]
    assert ada.normalized_disagreement_entropy(Z_P, Z_Q).tolist() == pytest.approx(expected, rel=1e-6)
    # with 4 classes the same disagreements normalise by log 4, not log 2
    pad = torch.full((3, 2), -1e4)
    four = ada.normalized_disagreement_entropy(torch.cat([Z_P, pad], 1), torch.zeros(3, 4))
    assert four[1].item() == pytest.approx((h(0.75, 0.25) - h_min) / (LN(4) - h_min), rel=1e-5)


@pytest.mark.parametrize(
    "h_norm, expected",
    [
        ([0.1, 0.8], 0.0),  # exactly at the bounds
        ([0.5, 0.3], 0.0),  # inside
        ([0.0, 0.5], 0.1 / 2),  # below λ_l
        ([0.5, 1.0], 0.2 / 2),  # above λ_u
        ([0.0, 1.0, 0.5, 0.05], (0.1 + 0.05) / 4 + 0.2 / 4),  # both sides, any batch size
    ],
)
def test_two_sided_hinge(h_norm, expected):
    assert ada.margin_loss(torch.tensor(h_norm), 0.1, 0.8).item() == pytest.approx(expected, abs=1e-7)


def test_disagreement_and_agreement_cross_entropies():
    z_p, z_q = torch.tensor([[LN(3), 0.0]]), torch.tensor([[0.0, 0.0]])
    assert ada.disagreement_loss(z_p, z_q, torch.tensor([0])).item() == pytest.approx(-LN(0.75), rel=1e-6)
    assert ada.disagreement_loss(z_p, z_q, torch.tensor([1])).item() == pytest.approx(-LN(0.25), rel=1e-6)
    z_q = torch.tensor([[LN(3), 0.0]])  # z_p + z_q = [ln 9, 0]
    assert ada.agreement_loss(z_p, z_q, torch.tensor([1])).item() == pytest.approx(-LN(0.1), rel=1e-6)


def test_student_loss_is_minus_t_squared_entropy_with_the_teacher_detached():
    z_p = torch.tensor([[2 * LN(3), 0.0]], requires_grad=True)
    z_q = torch.zeros(1, 2, requires_grad=True)
    loss = ada.student_loss(z_p, z_q, temperature=2.0)
    assert loss.item() == pytest.approx(-4 * h(0.75, 0.25), rel=1e-6)
    loss.backward()
    assert z_p.grad is None and z_q.grad.abs().sum() > 0
    # maximal entropy iff the logits differ by a constant
    same = ada.student_loss(torch.tensor([[1.0, 3.0]]), torch.tensor([[0.0, 2.0]]), temperature=5.0)
    assert same.item() == pytest.approx(-25 * LN(2), rel=1e-6)


def test_student_loss_averages_the_entropy_of_p_minus_q_over_the_batch():
    # three classes, where softmax(z_p − z_q) and softmax(z_q − z_p) have different entropies:
    # (z_p − z_q)/T = [ln 2, 0, 0] → (½, ¼, ¼), the reverse → (⅕, ⅖, ⅖); a second sample with
    # z_p = z_q has the maximal entropy ln 3
    z_p = torch.tensor([[2 * LN(2), 0.0, 0.0], [1.0, 2.0, 3.0]])
    z_q = torch.tensor([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]])
    assert h(0.5, 0.25, 0.25) != pytest.approx(h(0.2, 0.4, 0.4), rel=1e-3)
    loss = ada.student_loss(z_p, z_q, temperature=2.0)
    assert loss.item() == pytest.approx(-4 * (h(0.5, 0.25, 0.25) + LN(3)) / 2, rel=1e-6)


def test_zaq_output_discrepancy():
    assert zaq.output_discrepancy(torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, 4.0]])).item() == 1.5


def softmax_rows(m):
    e = np.exp(m - m.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def spatial_np(x, gamma):
    """SA(X) = γ·X·A_sᵀ + X, A_s = softmax_row(XᵀX), for every sample of x (B, C, HW)."""
    return np.stack([gamma * X @ softmax_rows(X.T @ X).T + X for X in x])


def channel_np(x, gamma):
    """CA(X) = γ·A_c·X + X, A_c = softmax_row(rowmax(E) − E), E = XXᵀ, for every sample."""
    out = []
    for X in x:
        e = X @ X.T
        out.append(gamma * softmax_rows(e.max(axis=1, keepdims=True) - e) @ X + X)
    return np.stack(out)


def test_zaq_relations_against_explicit_formulas():
    x = np.random.default_rng(0).normal(size=(2, 3, 4))  # B, C, HW
    t = torch.from_numpy(x)
    np.testing.assert_allclose(zaq.spatial_relation(t, 0.1).numpy(), spatial_np(x, 0.1), rtol=1e-10)
    np.testing.assert_allclose(zaq.channel_relation(t, 0.1).numpy(), channel_np(x, 0.1), rtol=1e-10)


def test_zaq_spatial_relation_of_a_large_stage_keeps_no_hw_by_hw_matrix():
    """Above SPATIAL_ROWS positions (ImageNet stages) A_s is computed in blocks and recomputed
    for the backward pass: the same values and gradients, and nothing of size HW × HW kept."""
    positions = zaq.SPATIAL_ROWS * 2 + 100
    x = np.random.default_rng(1).normal(size=(2, 3, positions))
    x /= np.linalg.norm(x, axis=1, keepdims=True)  # as unit_channels leaves it
    t = torch.from_numpy(x).requires_grad_(True)
    kept = []

    def keep(tensor):
        kept.append(tensor.numel())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(keep, lambda tensor: tensor):
        out = zaq.spatial_relation(t, 0.1)
    np.testing.assert_allclose(out.detach().numpy(), spatial_np(x, 0.1), rtol=1e-10)
    assert max(kept) < positions * positions
    (grad,) = torch.autograd.grad(out.square().sum(), t)
    u = torch.from_numpy(x).requires_grad_(True)
    attention = torch.softmax(u.transpose(1, 2) @ u, dim=-1)  # the explicit formula
    (expected,) = torch.autograd.grad((0.1 * u @ attention.transpose(1, 2) + u).square().sum(), u)
    torch.testing.assert_close(grad, expected, rtol=1e-10, atol=1e-12)


def test_unit_channels_matches_normalize_and_keeps_dead_positions_finite():
    f = torch.tensor([[[[3.0, 0.0]], [[4.0, 0.0]]]], requires_grad=True)  # position 1 is all-zero
    out = zaq.unit_channels(f)
    assert torch.allclose(out, torch.nn.functional.normalize(f, dim=1))
    out.sum().backward()
    assert torch.isfinite(f.grad).all() and f.grad[0, :, 0, 1].abs().sum() == 0
    g = f.detach().clone().requires_grad_(True)
    torch.nn.functional.normalize(g, dim=1).sum().backward()
    assert g.grad.abs().max() > 1e11  # what the reference's F.normalize does at the dead position


def test_zaq_feature_discrepancy():
    torch.manual_seed(0)
    fq, fp = [torch.randn(2, 3, 4, 4), torch.randn(2, 5, 2, 2)], [torch.randn(2, 3, 4, 4), torch.randn(2, 5, 2, 2)]
    assert zaq.feature_discrepancy(fp, fp).item() == 0.0
    # with γ = 0 both relations are the identity: 2 × L1 between channel-normalised features
    normed = [torch.nn.functional.normalize(f, dim=1) for f in fq + fp]
    expected = sum(2 * (a - b).abs().mean() for a, b in zip(normed[:2], normed[2:]))
    assert zaq.feature_discrepancy(fq, fp, gamma=0.0).item() == pytest.approx(expected.item(), rel=1e-6)
    # at the reference's γ = 0.1: the spatial and channel relations of every stage, in numpy
    gamma, total = 0.1, 0.0
    for a, b in zip(normed[:2], normed[2:]):
        xa, xb = (t.flatten(2).double().numpy() for t in (a, b))
        for relation in (spatial_np, channel_np):
            total += np.abs(relation(xa, gamma) - relation(xb, gamma)).mean()
    assert zaq.feature_discrepancy(fq, fp, gamma=gamma).item() == pytest.approx(total, rel=1e-5)
    assert zaq.activation_regularizer(torch.tensor([[-1.0, 3.0]])).item() == 2.0
