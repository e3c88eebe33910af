"""How each method samples its batches and combines its losses, against hand computations
(the losses on their own are pinned in test_method_losses.py)."""

import contextlib
import copy
import dataclasses
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import dfqbench.dfq.family as family
import dfqbench_adadfq.method as adadfq
from dfqbench.api import Task
from dfqbench.models.cifar_resnet import CIFARResNet
from dfqbench.quant import QuantSettings, quant_acts, wrap
from dfqbench_qimera.method import QimeraConfig, QimeraGame
from dfqbench_zaq.method import ZAQ, ZAQConfig

CPU = torch.device("cpu")


def quiet_ctx(logs):
    return SimpleNamespace(
        device=CPU,
        log=lambda **kw: logs.append({k: float(v) for k, v in kw.items()}),
        progress=lambda *_: contextlib.nullcontext(SimpleNamespace(advance=lambda: None)),
    )


def test_qimera_boundary_batches_superpose_k_labels_with_softmax_weights():
    game = QimeraGame(SimpleNamespace(latent_dim=5), 4, dataclasses.replace(QimeraConfig(), mix_prob=1.0, mix_classes=3))
    torch.manual_seed(0)
    s = game.sample(64, CPU)
    assert s.z.shape == (64, 3, 5) and s.labels.shape == (64, 3)
    assert (s.weights > 0).all() and torch.allclose(s.weights.sum(1), torch.ones(64))
    for b in range(64):  # ỹ_b = Σ_k λ_bk·onehot(y_bk): classes drawn twice add up
        expected = [sum(s.weights[b, k].item() for k in range(3) if s.labels[b, k] == c) for c in range(4)]
        assert s.targets[b].tolist() == pytest.approx(expected, abs=1e-6)
    assert any(len(set(row.tolist())) < 3 for row in s.labels)  # duplicates did occur


def test_qimera_draws_one_kind_of_batch_with_probability_p():
    game = QimeraGame(SimpleNamespace(latent_dim=5), 4, dataclasses.replace(QimeraConfig(), mix_prob=0.4, mix_classes=2))
    torch.manual_seed(0)
    samples = [game.sample(3, CPU) for _ in range(1000)]
    mixed = sum(s.weights is not None for s in samples) / len(samples)
    assert 0.35 < mixed < 0.45  # p = 0.4 per batch (an inverted test would give 0.6)
    single = next(s for s in samples if s.weights is None)
    assert torch.equal(single.targets, F.one_hot(single.labels, 4).float())


def np_log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def test_gdfq_family_losses_are_eq7_and_eq8_on_soft_labels(monkeypatch):
    """GDFQ's two objectives as Qimera runs them on a boundary batch's soft labels ỹ."""
    monkeypatch.setattr(family, "gdfq_bns_loss", lambda bn: torch.tensor(0.25))
    cfg = dataclasses.replace(QimeraConfig(), temperature=4.0, alpha=0.5, bns_weight=0.3)
    game = family.LabelGuidedGame(None, 4, cfg)
    t = np.array([[2.0, 0.0, -1.0, 0.5], [0.0, 1.0, 0.0, 3.0], [1.0, 3.0, 0.0, 0.0]])
    q = np.array([[0.0, 0.5, 0.0, 0.0], [0.2, 0.0, 0.1, 0.0], [1.0, -1.0, 0.0, 2.0]])
    soft = np.array([[0.7, 0.3, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0], [0.2, 0.0, 0.8, 0.0]])
    sample = SimpleNamespace(targets=torch.from_numpy(soft).float())
    # generator (GDFQ Eq. 7, Qimera Eq. 7): soft-CE(t, ỹ) + w·L_BNS
    ce_t = -(soft * np_log_softmax(t)).sum(axis=1).mean()
    g = game.generator_loss(sample, torch.from_numpy(t).float(), None, None)
    assert g["loss"].item() == pytest.approx(ce_t + 0.3 * 0.25, rel=1e-5)
    # student (GDFQ Eq. 8, Qimera Eq. 9): α·T²·KL(softmax(t/T) ‖ softmax(q/T)) averaged over
    # the B·C elements, as nn.KLDivLoss() does, + soft-CE(q, ỹ)
    log_pt, log_pq = np_log_softmax(t / 4.0), np_log_softmax(q / 4.0)
    kd = 0.5 * 16 * (np.exp(log_pt) * (log_pt - log_pq)).mean()
    ce_q = -(soft * np_log_softmax(q)).sum(axis=1).mean()
    s = game.student_loss(sample, torch.from_numpy(q).float(), torch.from_numpy(t).float())
    assert (s["loss"].item(), s["kd"].item(), s["ce"].item()) == pytest.approx((kd + ce_q, kd, ce_q), rel=1e-5)


def test_adadfq_generator_loss_is_eq13_with_each_weight_in_its_place(monkeypatch):
    monkeypatch.setattr(adadfq, "gdfq_bns_loss", lambda bn: torch.tensor(0.25))
    cfg = dataclasses.replace(adadfq.AdaDFQConfig(), alpha_ds=0.2, alpha_as=0.7, lambda_lower=0.1, lambda_upper=0.5, beta=1.3, gamma=0.6)
    game = adadfq.AdaDFQGame(None, 4, cfg)
    z_p = np.array([[2.0, 0.0, -1.0, 0.5], [0.0, 0.0, 0.0, 0.0], [1.0, 3.0, 0.0, 0.0]])
    z_q = np.array([[0.0, 0.0, 0.0, 0.0], [0.2, 0.0, 0.1, 0.0], [1.0, -1.0, 0.0, 2.0]])
    y = np.array([0, 2, 1])

    def written_out(z_p, z_q):  # L_G = L_m + β·(α_ds·L_ds + α_as·L_as) + γ·L_BNS (spec §2.3)
        log_p_ds = np_log_softmax(z_p - z_q)
        h = -(np.exp(log_p_ds) * log_p_ds).sum(axis=1)
        h_norm = (h - h.min()) / (math.log(4) - h.min())
        margin = np.maximum(0, 0.1 - h_norm).mean() + np.maximum(0, h_norm - 0.5).mean()
        l_ds = -log_p_ds[np.arange(3), y].mean()
        l_as = -np_log_softmax(z_p + z_q)[np.arange(3), y].mean()
        return margin + 1.3 * (0.2 * l_ds + 0.7 * l_as) + 0.6 * 0.25, l_ds, l_as

    expected, l_ds, l_as = written_out(z_p, z_q)
    sample = SimpleNamespace(labels=torch.from_numpy(y))
    out = game.generator_loss(sample, torch.from_numpy(z_p).float(), None, torch.from_numpy(z_q).float())
    assert out["loss"].item() == pytest.approx(expected, rel=1e-5)
    assert (out["ds"].item(), out["as"].item()) == pytest.approx((l_ds, l_as), rel=1e-5)
    # the generator's gradient flows through both networks' logits and through the batch
    # minimum of H (nothing detached): autograd against central differences of the formula
    t_p, t_q = (torch.from_numpy(z).requires_grad_(True) for z in (z_p, z_q))
    game.generator_loss(sample, t_p, None, t_q)["loss"].backward()
    for z, grad, other in ((z_p, t_p.grad, lambda d: (z_p + d, z_q)), (z_q, t_q.grad, lambda d: (z_p, z_q + d))):
        numeric = np.zeros_like(z)
        for index in np.ndindex(z.shape):
            step = np.zeros_like(z)
            step[index] = 1e-6
            numeric[index] = (written_out(*other(step))[0] - written_out(*other(-step))[0]) / 2e-6
        np.testing.assert_allclose(grad.numpy(), numeric, atol=1e-6)


def test_adadfq_student_loss_is_eq14_at_the_configured_temperature():
    game = adadfq.AdaDFQGame(None, 4, dataclasses.replace(adadfq.AdaDFQConfig(), temperature=2.0))
    z_p = np.array([[2.0, 0.0, -1.0, 0.5], [0.0, 1.0, 0.0, 3.0]])
    z_q = np.array([[0.0, 0.5, 0.0, 0.0], [1.0, -1.0, 0.0, 2.0]])
    log_p = np_log_softmax((z_p - z_q) / 2.0)  # L_Q = −T²·mean_i H(softmax((z_p − z_q)/T))
    expected = -4.0 * -(np.exp(log_p) * log_p).sum(axis=1).mean()
    out = game.student_loss(None, torch.from_numpy(z_q).float(), torch.from_numpy(z_p).float())
    assert out["loss"].item() == pytest.approx(expected, rel=1e-5)


ZAQ_TASK = Task("s", "digits", "r", "cnn", 10, (1, 8, 8), (0.5,), (0.5,), 4, 4)


def zaq_teacher():
    torch.manual_seed(0)
    return CIFARResNet(1, 10, 20, (4, 8, 16)).eval()


def run_zaq(teacher, cfg):
    """ZAQ on a fresh quantized copy of ``teacher``: (quantized model, per-epoch logs)."""
    logs = []
    torch.manual_seed(1)
    qmodel = wrap(copy.deepcopy(teacher), 4, 4, QuantSettings())
    ZAQ().quantize(teacher, qmodel, ZAQ_TASK, cfg, quiet_ctx(logs))
    return qmodel, logs


def test_zaq_generator_steps_raise_the_discrepancy_the_student_steps_lower():
    teacher = zaq_teacher()
    cfg = ZAQConfig(epochs=4, iters_per_epoch=20, q_steps=1, batch_size=32, calib_epochs=1, bn_mode="eval", milestones=(100,))

    def student_loss_by_epoch(lr_q):
        return [epoch["q_loss"] for epoch in run_zaq(teacher, dataclasses.replace(cfg, lr_q=lr_q))[1]]

    # the student frozen, the generator alone moves: it maximises L_out + α·SCRM
    frozen = student_loss_by_epoch(0.0)
    assert frozen[-1] > 1.3 * frozen[0], frozen  # 0.545 → 0.969 when written
    # with the student's steps the same game ends far lower: they minimise it
    trained = student_loss_by_epoch(0.01)
    assert trained[-1] < 0.7 * frozen[-1], (trained, frozen)  # 0.492 when written


def test_zaq_generator_loss_weights_each_term_and_ranges_freeze_after_the_window():
    cfg = ZAQConfig(epochs=3, iters_per_epoch=2, q_steps=3, batch_size=8, calib_epochs=1, alpha=0.7, beta=0.05, milestones=(100,))
    qmodel, logs = run_zaq(zaq_teacher(), cfg)
    for epoch in logs:  # L_G = −L_out − α·SCRM − β·R, each term the G step's own (spec §1.3)
        assert epoch["g_loss"] == pytest.approx(-epoch["out"] - 0.7 * epoch["feat"] - 0.05 * epoch["act_reg"], rel=1e-5)
        assert epoch["act_reg"] > 0
    # calibration sees the first epoch only: its q_steps student forwards and one generator-step
    # forward per iteration; the ranges are frozen after it, not updated by every later forward
    assert {int(act.num_updates) for _, act in quant_acts(qmodel)} == {2 * (3 + 1)}
    assert not any(act.calibrating for _, act in quant_acts(qmodel))
