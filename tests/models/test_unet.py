import pytest
import torch

from wsfm.models import MODELS, UNetLite, build_model


def _net(**kw):
    torch.manual_seed(0)
    return UNetLite(**{"dim": 64, "channels": 8, "time_dim": 16, **kw})


def test_shapes_and_scalar_time():
    net = _net(dim=3 * 8 * 8, image_shape=[3, 8, 8])  # a list, as from a YAML file
    x = torch.randn(5, 192)
    assert net.image_shape == (3, 8, 8)
    assert net(x, torch.rand(5)).shape == (5, 192)
    torch.testing.assert_close(net(x, torch.tensor(0.3)), net(x, torch.full((5,), 0.3)))
    assert _net(dim=4 * 6, image_shape=(1, 4, 6))(torch.randn(2, 24), torch.rand(2)).shape \
        == (2, 24)


def test_zero_init_and_time_dependence():
    net = _net()
    x = torch.randn(4, 64)
    assert torch.count_nonzero(net(x, torch.rand(4))) == 0  # starts as the zero field
    torch.nn.init.normal_(net.out[-1].weight, std=0.1)
    assert not torch.allclose(net(x, torch.zeros(4)), net(x, torch.ones(4)))


def test_rows_are_independent():
    """GroupNorm normalises per sample: a row's output must not depend on the batch."""
    net = _net()
    torch.nn.init.normal_(net.out[-1].weight, std=0.1)
    x, s = torch.randn(6, 64), torch.rand(6)
    torch.testing.assert_close(net(x, s)[:2], net(x[:2], s[:2]))


def test_overfits_tiny_regression():
    torch.manual_seed(0)
    x, s = torch.randn(16, 64), torch.rand(16)
    y = torch.roll(x, 1, dims=1) * torch.cos(3 * s)[:, None] + s[:, None]
    net = _net()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    first = ((net(x, s) - y) ** 2).mean().item()
    for _ in range(150):
        loss = ((net(x, s) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 1e-3 * first


def test_registry_and_errors():
    net = build_model("unet", dim=64, channels=8, time_dim=16, image_shape=(1, 8, 8))
    assert isinstance(net, UNetLite) and MODELS["unet"] is UNetLite
    with pytest.raises(ValueError, match="image_shape"):
        UNetLite(dim=63)
    with pytest.raises(ValueError, match="even"):
        UNetLite(dim=49, image_shape=(1, 7, 7))
    with pytest.raises(ValueError, match="time_dim"):
        UNetLite(dim=64, time_dim=15)
    with pytest.raises(ValueError, match=r"\(B, 64\)"):
        _net()(torch.randn(2, 63), torch.rand(2))
    with pytest.raises(TypeError):
        build_model("unet", dim=64, hidden=32)  # MLP-only keywords are not silently dropped
