import pytest
import torch

from wsfm.models import MODELS, build_model
from wsfm.models.transformer import SeqTransformer

L, V = 12, 27



def _tiny(mode, **kw):
    dim = L * V if mode == "continuous" else L
    return SeqTransformer(dim, seq_len=L, vocab=V, d_model=32, n_layers=1, n_heads=2,
                          time_dim=16, mode=mode, **kw)


def test_registered_and_shapes():
    assert MODELS["transformer"] is SeqTransformer
    net = build_model("transformer", dim=L * V, d_model=32, n_layers=2, n_heads=4, time_dim=16)
    out = net(torch.randn(5, L * V), torch.rand(5))
    assert out.shape == (5, L * V) and net.dim == L * V
    disc = build_model("transformer", dim=L, mode="discrete", d_model=32, n_layers=1,
                       n_heads=4, time_dim=16)
    codes = torch.randint(0, V + 1, (5, L))  # V itself is the mask token
    assert disc(codes, torch.rand(5)).shape == (5, L * V)
    assert disc(codes, torch.tensor(0.3)).shape == (5, L * V)  # scalar time broadcasts


@pytest.mark.parametrize("kwargs", [dict(dim=L * V, mode="discrete"), dict(dim=L),
                                    dict(dim=L * V, d_model=30, n_heads=4),
                                    dict(dim=L * V, mode="other"), dict(dim=L * V, time_dim=7)])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        SeqTransformer(**kwargs)


def test_discrete_rejects_codes_out_of_range():
    net = _tiny("discrete")
    with pytest.raises(ValueError):
        net(torch.full((2, L), V + 1), torch.rand(2))
    with pytest.raises(ValueError):
        net(torch.zeros(2, L * V), torch.rand(2))
    with pytest.raises(ValueError, match="long codes"):  # codes travel as integers
        net(torch.zeros(2, L), torch.rand(2))


def test_time_and_context_matter():
    torch.manual_seed(0)
    net = _tiny("discrete").eval()
    x = torch.randint(1, V, (1, L))
    a, b = net(x, torch.tensor([0.1])), net(x, torch.tensor([0.9]))
    assert not torch.allclose(a, b)
    y = x.clone()
    y[0, 0] = (y[0, 0] % (V - 1)) + 1  # change only position 0
    c = net(y, torch.tensor([0.1])).reshape(L, V)
    assert not torch.allclose(c[5], a.reshape(L, V)[5])  # attention carries it to position 5


def test_learns_to_spread_the_first_code():
    # discrete mode: every position must predict the code at position 0 (needs attention).
    torch.manual_seed(0)
    net = _tiny("discrete")
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(100):
        x = torch.randint(0, V, (32, L))
        logits = net(x, torch.rand(32)).reshape(32, L, V)
        target = x[:, :1].expand(32, L)
        loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5  # log(27) = 3.3 without attention (bar position 0)


def test_rel_pos_bias_depends_on_the_signed_offset_and_matches_in_eval_mode():
    torch.manual_seed(0)
    net = SeqTransformer(16, seq_len=16, vocab=10, d_model=32, n_layers=2, n_heads=4,
                         time_dim=16, mode="discrete", rel_pos=True)
    assert net.rel_bias is not None and net.rel_bias.shape == (4, 31)
    with torch.no_grad():
        net.rel_bias.normal_()
    bias = net._attention_bias(torch.float32)
    for i, j in ((0, 3), (5, 8), (12, 15)):  # the same offset +3: the same bias
        assert torch.equal(bias[:, i, j], bias[:, 0, 3])
    assert not torch.equal(bias[:, 3, 0], bias[:, 0, 3])  # -3 is not +3
    x, s = torch.randint(0, 11, (5, 16)), torch.rand(5)
    train = net(x, s)
    train.sum().backward()
    assert net.rel_bias.grad is not None and net.rel_bias.grad.abs().sum() > 0
    net.eval()
    with torch.no_grad():  # torch's own encoder gave NaN here with a per-head mask
        assert torch.allclose(net(x, s), train, atol=1e-5)
