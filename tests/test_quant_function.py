"""The shared fake quantizer against independent formulas and hand-computed values."""

import numpy as np
import pytest
import torch

from dfqbench.quant import asym_fake_quant, asym_fake_quant_ste, per_channel_minmax


def closed_form(x, m, M, bits):
    """The spec's closed form, in float64 numpy: Δ·clamp(round(x/Δ), z0, z0 + 2^n − 1)."""
    s = (2**bits - 1) / np.maximum(M - m, 1e-8)
    z0 = np.round(s * m)
    return np.clip(np.round(s * x), z0, z0 + 2**bits - 1) / s


@pytest.mark.parametrize("bits", [2, 3, 4, 5, 8])
def test_matches_closed_form_on_random_values(bits):
    rng = np.random.default_rng(bits)
    x = rng.normal(0, 2, size=(64, 500))
    m = rng.uniform(-3, 0.5, size=(64, 1))  # some ranges exclude 0
    M = m + rng.uniform(0.1, 4, size=(64, 1))
    ours = asym_fake_quant(torch.from_numpy(x), torch.from_numpy(m), torch.from_numpy(M), bits).numpy()
    np.testing.assert_allclose(ours, closed_form(x, m, M, bits), rtol=0, atol=1e-12)


def test_hand_computed_two_bit_grid():
    # range [-1, 2] at 2 bits: step 1, levels {-1, 0, 1, 2}; outside values are clamped
    x = torch.tensor([-3.0, -1.2, -0.4, 0.6, 1.4, 2.4, 5.0], dtype=torch.float64)
    out = asym_fake_quant(x, torch.tensor(-1.0, dtype=torch.float64), torch.tensor(2.0, dtype=torch.float64), 2)
    assert out.tolist() == [-1.0, -1.0, 0.0, 1.0, 1.0, 2.0, 2.0]


def test_ties_follow_the_reference_bookkeeping():
    # The reference rounds s·x − zp (zp = round(s·m) + 2^(n−1)), not s·x: with zp = 1 the
    # tie 1.5 becomes round(0.5) = 0 → 1.0, where the closed form would give round(1.5) = 2.
    x = torch.tensor([1.5], dtype=torch.float64)
    out = asym_fake_quant(x, torch.tensor(-1.0, dtype=torch.float64), torch.tensor(2.0, dtype=torch.float64), 2)
    assert out.item() == 1.0


def test_zero_is_exact_and_grid_has_2_pow_n_levels():
    x = torch.linspace(-5, 5, 10001)
    out = asym_fake_quant(x, torch.tensor(-0.37), torch.tensor(3.1), 3)
    assert asym_fake_quant(torch.zeros(1), torch.tensor(-0.37), torch.tensor(3.1), 3).item() == 0.0
    assert len(torch.unique(out)) == 8


def test_identity_straight_through_gradient_without_clip_mask():
    x = torch.tensor([-10.0, -0.3, 0.2, 0.9, 10.0], requires_grad=True)
    x_min, x_max = torch.tensor(-1.0, requires_grad=True), torch.tensor(1.0, requires_grad=True)
    upstream = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    (asym_fake_quant_ste(x, x_min, x_max, 4) * upstream).sum().backward()
    assert x.grad.tolist() == upstream.tolist()  # clipped values (±10) still get gradient
    assert x_min.grad is None and x_max.grad is None


def test_per_channel_minmax_shapes_and_values():
    w = torch.randn(6, 3, 3, 3)
    lo, hi = per_channel_minmax(w)
    assert lo.shape == (6, 1, 1, 1)
    assert torch.equal(lo.flatten(), w.reshape(6, -1).min(1).values)
    assert torch.equal(hi.flatten(), w.reshape(6, -1).max(1).values)
