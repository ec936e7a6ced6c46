import itertools

import numpy as np
import pytest
import torch

from wsfm.data.words import one_hot
from wsfm.flow import minibatch_ot, num_steps
from wsfm.flow.discrete import (
    MixturePath,
    corrupt,
    corrupt_loss,
    cross_entropy_loss,
    discrete_fm_loss,
    hamming_distances,
    hamming_nearest,
    hamming_ot,
    jump_sample,
    jump_step,
    mask_source,
    remask_sample,
)

V, L = 27, 12


def _oracle(x1, calls=None):
    """Logits that put all mass on the data x1 (B, L): a perfect denoiser."""
    def net(x, s):
        assert x.dtype == torch.long and s.shape == (x.shape[0],)
        if calls is not None:
            calls.append(float(s[0]))
        return (torch.nn.functional.one_hot(x1, V).float() * 1e4).reshape(len(x1), -1)
    return net


def test_kappa_boundaries():
    lin, sq = MixturePath(), MixturePath(exponent=2.0)
    assert (lin.kappa(0.0), lin.kappa(1.0), lin.dkappa(0.3)) == (0.0, 1.0, 1.0)
    assert (sq.kappa(0.0), sq.kappa(1.0), sq.kappa(0.5), sq.dkappa(0.5)) == (0.0, 1.0, 0.25, 1.0)
    assert lin.jump_prob(0.0, 0.1) == pytest.approx(0.1)
    assert lin.jump_prob(0.5, 0.1) == pytest.approx(0.2)  # h / (1 - s)
    assert lin.jump_prob(0.9, 0.1) == 1.0
    with pytest.raises(ValueError):
        MixturePath(t0=1.0)


def test_path_endpoints_and_marginal():
    g = torch.Generator().manual_seed(0)
    path = MixturePath(t0=0.9)
    x0 = torch.randint(1, 14, (2000, L), generator=g)
    x1 = torch.randint(14, V, (2000, L), generator=g)  # never equal to x0
    at0 = path.sample(x0, x1, torch.full((2000,), 0.9), g)
    at1 = path.sample(x0, x1, torch.ones(2000), g)
    assert torch.equal(at0.x_t, x0) and torch.equal(at1.x_t, x1)
    assert torch.allclose(at0.s, torch.zeros(2000)) and torch.allclose(at1.s, torch.ones(2000))
    mid = path.sample(x0, x1, torch.full((2000,), 0.9 + 0.3 * 0.1), g)
    frac = (mid.x_t == x1).float().mean().item()
    assert abs(frac - 0.3) < 4 * np.sqrt(0.3 * 0.7 / x0.numel())
    assert torch.equal(mid.clean, mid.x_t == x1)


def test_hamming_ot_matches_brute_force_and_l2_ot():
    g = torch.Generator().manual_seed(1)
    x0 = torch.randint(0, 4, (6, 5), generator=g)
    x1 = torch.randint(0, 4, (6, 5), generator=g)
    d = hamming_distances(x0, x1)
    assert d[0, 1] == (x0[0] != x1[1]).sum()
    best = min(sum(d[i, p[i]].item() for i in range(6)) for p in itertools.permutations(range(6)))
    _, paired = hamming_ot(x0, x1)
    assert (x0 != paired).sum().item() == best
    # on one-hot vectors, squared L2 = 2 x Hamming: the L2 assignment has the same cost
    oh = lambda c: torch.from_numpy(one_hot(c.numpy(), 4))  # noqa: E731
    _, l2 = minibatch_ot(oh(x0), oh(x1))
    assert ((oh(x0) - l2) ** 2).sum().item() == 2 * best


def test_hamming_nearest():
    x0 = torch.tensor([[1, 2, 3], [0, 0, 0]])
    x1 = torch.tensor([[1, 2, 0], [0, 0, 1], [3, 3, 3]])
    _, got = hamming_nearest(x0, x1)
    assert got.tolist() == [[1, 2, 0], [0, 0, 1]]
    g = torch.Generator().manual_seed(6)
    a = torch.randint(0, 5, (300, 6), generator=g)
    b = torch.randint(0, 5, (200, 6), generator=g)
    brute = b[hamming_distances(a, b).argmin(dim=1)]  # first of the ties, as documented
    assert torch.equal(hamming_nearest(a, b)[1], brute)
    assert hamming_nearest(a[:0], b)[1].shape == (0, 6)


def test_cross_entropy_by_hand():
    x1 = torch.tensor([[0, 1]])
    logits = torch.zeros(1, 2 * 3)
    assert cross_entropy_loss(logits, x1).item() == pytest.approx(np.log(3))
    logits[0, 3 + 1] = 2.0  # position 1 favours its target
    p1 = -np.log(np.exp(2) / (np.exp(2) + 2))
    assert cross_entropy_loss(logits, x1).item() == pytest.approx((np.log(3) + p1) / 2)
    mask = torch.tensor([[False, True]])
    assert cross_entropy_loss(logits, x1, mask).item() == pytest.approx(p1)


def test_loss_trains_a_net():
    net = torch.nn.Sequential(torch.nn.Linear(L, L * V))
    g = torch.Generator().manual_seed(0)
    x0 = mask_source(8, L, V)
    x1 = torch.randint(0, V, (8, L), generator=g)
    loss = discrete_fm_loss(lambda x, s: net(x.float()), MixturePath(), x0, x1, g,
                            corrupted_only=True)
    loss.backward()
    assert loss.ndim == 0 and net[0].weight.grad is not None


@pytest.mark.parametrize("t0,h,expect", [(0.9, 0.01, 10), (0.96, 0.01, 4), (0.0, 0.01, 100),
                                         (0.8, 0.05, 4)])
def test_nfe_accounting(t0, h, expect):
    g = torch.Generator().manual_seed(0)
    x1 = torch.randint(0, V, (4, L), generator=g)
    calls = []
    out = jump_sample(_oracle(x1, calls), torch.zeros(4, L, dtype=torch.long),
                      MixturePath(t0), step_size=h, generator=g)
    assert out.nfe == out.steps == len(calls) == expect == num_steps(t0, 1.0, step_size=h)
    assert calls == pytest.approx([k / expect for k in range(expect)])  # s-grid from 0


@pytest.mark.parametrize("t0,kw,mask", [(0.9, {"step_size": 0.01}, False),
                                        (0.96, {"step_size": 0.01}, False),
                                        (0.0, {"steps": 3}, True), (0.0, {"steps": 1}, False)])
def test_oracle_returns_data_exactly(t0, kw, mask):
    g = torch.Generator().manual_seed(2)
    x1 = torch.randint(0, V, (64, L), generator=g)
    start = mask_source(64, L, V) if mask else torch.randint(0, V, (64, L), generator=g)
    out = jump_sample(_oracle(x1), start, MixturePath(t0, exponent=2.0 if t0 else 1.0),
                      generator=g, mask_id=V if mask else None, **kw)
    assert torch.equal(out.x, x1)


def test_euler_jumps_reproduce_the_path_marginal():
    # With a perfect denoiser, P(position still at the source after k of n steps) =
    # prod_j (1 - h / (1 - s_j)) = 1 - s_k: the linear path's marginal kappa(s_k) = s_k.
    g = torch.Generator().manual_seed(3)
    n, b, path = 10, 1000, MixturePath()
    x1 = torch.ones(b, L, dtype=torch.long)
    x = torch.full((b, L), 2)
    logits = _oracle(x1)(x, torch.zeros(b))
    for k in range(n):
        x = jump_step(x, logits, path.jump_prob(k / n, 1 / n), g)
        frac = (x == 1).float().mean().item()
        s = (k + 1) / n
        assert abs(frac - s) < 5 * np.sqrt(s * (1 - s) / x.numel()) + 1e-9


def test_mask_id_freezes_unmasked_positions():
    g = torch.Generator().manual_seed(4)
    x = torch.tensor([[V, 3, V, 5]])
    logits = torch.zeros(1, 4 * V)
    logits.view(4, V)[:, 7] = 1e4  # everything wants to become 7
    out = jump_step(x, logits, 1.0, g, mask_id=V)
    assert out.tolist() == [[7, 3, 7, 5]]


def test_argmax_final_and_validation():
    g = torch.Generator().manual_seed(5)
    logits = torch.zeros(2, L, V)
    logits[..., 4] = 1.0  # the mode, but far from certain
    out = jump_sample(lambda x, s: logits.reshape(2, -1), torch.zeros(2, L, dtype=torch.long),
                      MixturePath(0.5), steps=2, generator=g, final="argmax")
    assert (out.x == 4).all()
    with pytest.raises(ValueError):
        jump_sample(lambda x, s: logits, torch.zeros(2, L, dtype=torch.long), MixturePath(),
                    steps=1, final="mode")
    with pytest.raises(ValueError):
        jump_sample(lambda x, s: logits, torch.zeros(2, L, dtype=torch.long), MixturePath(),
                    steps=1, step_size=0.1)


def test_corrupt_masks_and_substitutes_in_the_drawn_shares():
    gen = torch.Generator().manual_seed(0)
    x1 = torch.randint(1, V, (4000, L), generator=gen)
    sub = (x1 % (V - 1)) + 1  # differs from x1 everywhere
    x, s = corrupt(x1, sub, mask_id=V, substitute_max=0.6, generator=gen)
    masked = x == V
    assert torch.allclose(s, 1.0 - masked.float().mean(dim=1))
    assert abs(masked.float().mean().item() - 0.5) < 0.02  # a ~ U(0, 1)
    kept = ~masked
    assert bool(((x == x1) | (x == sub))[kept].all())
    assert abs((x != x1)[kept].float().mean().item() - 0.3) < 0.02  # b ~ U(0, 0.6)
    x0, _ = corrupt(x1, sub, mask_id=V, substitute_max=0.0, generator=gen)
    assert bool((x0 == x1)[x0 != V].all())  # no substitutes at b_max = 0


def test_corrupt_loss_is_zero_for_a_perfect_denoiser():
    x1 = torch.randint(1, V, (8, L))
    loss = corrupt_loss(_oracle(x1), x1, torch.ones_like(x1), mask_id=V)
    assert loss.item() == pytest.approx(0.0, abs=1e-6)


def test_remask_sample_spends_one_call_per_step_and_ends_without_masks():
    target = torch.randint(1, V, (16, L))
    draft = torch.randint(1, V, (16, L))
    calls = []
    out = remask_sample(_oracle(target, calls), draft.clone(), steps=5, mask_id=V, remask=1.0,
                        generator=torch.Generator().manual_seed(0))
    assert out.nfe == out.steps == 5 and len(calls) == 5
    # remask 1.0: after the first call every position is remasked, the next fills them all
    assert torch.equal(out.x, target)
    assert calls[0] == 1.0 and calls[1] == 0.0  # the time input: the share not masked
    one = remask_sample(_oracle(target), draft.clone(), steps=1, mask_id=V, remask=1.0)
    assert torch.equal(one.x, draft)  # one call reads the draft: nothing to redraw


def test_remask_sample_replaces_the_positions_it_trusts_least():
    target = torch.randint(1, V, (1, L))
    draft = target.clone()
    draft[0, 3] = target[0, 3] % (V - 1) + 1  # one wrong character
    out = remask_sample(_oracle(target), draft, steps=2, mask_id=V, remask=1.0 / L)
    assert torch.equal(out.x, target)  # the one remasked position is the wrong one
