import math

import pytest
import torch

from wsfm.models import MODELS, MLPVelocity, build_model, sinusoidal_embedding


def test_embedding_matches_formula_and_is_deterministic():
    s = torch.tensor([0.0, 0.25, 1.0], dtype=torch.float64)
    emb = sinusoidal_embedding(s, 8)
    assert emb.shape == (3, 8) and emb.dtype == torch.float64
    for i in range(4):
        w = 1000.0 * 10_000.0 ** (-i / 4)
        for b in range(3):
            assert emb[b, i].item() == pytest.approx(math.cos(w * s[b].item()), abs=1e-9)
            assert emb[b, 4 + i].item() == pytest.approx(math.sin(w * s[b].item()), abs=1e-9)
    assert torch.equal(emb, sinusoidal_embedding(s, 8))


def test_embedding_distinguishes_close_times():
    s = torch.linspace(0, 1, 201)
    emb = sinusoidal_embedding(s, 32)
    d = torch.cdist(emb, emb) + torch.eye(201) * 1e9
    assert d.min() > 0.1  # times 0.005 apart map to clearly different vectors
    with pytest.raises(ValueError):
        sinusoidal_embedding(s, 7)


def test_mlp_shapes_and_scalar_time():
    net = MLPVelocity(dim=5, hidden=16, depth=2, time_dim=8)
    x = torch.randn(7, 5)
    assert net(x, torch.rand(7)).shape == (7, 5)
    torch.testing.assert_close(net(x, torch.tensor(0.3)), net(x, torch.full((7,), 0.3)))
    assert net.dim == 5
    n_linear = sum(isinstance(m, torch.nn.Linear) for m in net.modules())
    assert n_linear == 3  # depth hidden layers + output
    with pytest.raises(ValueError):
        net(torch.randn(7, 4), torch.rand(7))


def test_mlp_uses_time():
    torch.manual_seed(0)
    net = MLPVelocity(dim=2, hidden=32, depth=2, time_dim=16)
    x = torch.randn(4, 2)
    assert not torch.allclose(net(x, torch.zeros(4)), net(x, torch.ones(4)))


def test_mlp_overfits_tiny_regression():
    torch.manual_seed(0)
    x = torch.randn(32, 2)
    s = torch.rand(32)
    y = torch.stack([torch.sin(3 * s) + x[:, 1], x[:, 0] * s], dim=1)
    net = MLPVelocity(dim=2, hidden=64, depth=2, time_dim=16)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    first = None
    for _ in range(400):
        loss = ((net(x, s) - y) ** 2).mean()
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 1e-2 * first


def test_registry():
    net = build_model("mlp", dim=3, hidden=8, depth=1)
    assert isinstance(net, MLPVelocity) and MODELS["mlp"] is MLPVelocity
    with pytest.raises(ValueError, match="mlp"):
        build_model("resnet", dim=3)


def test_out_scale_multiplies_the_output_of_the_same_weights():
    torch.manual_seed(0)
    plain = MLPVelocity(3, hidden=16, depth=2, time_dim=8)
    scaled = MLPVelocity(3, hidden=16, depth=2, time_dim=8, out_scale=0.1)
    scaled.load_state_dict(plain.state_dict())
    x, s = torch.randn(5, 3), torch.rand(5)
    torch.testing.assert_close(scaled(x, s), 0.1 * plain(x, s))
