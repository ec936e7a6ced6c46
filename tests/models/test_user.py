"""A user's own network (``model.kind: python``): wrapping, its clock, and each way the user's
side can be wrong, refused in one line naming it."""

import re

import numpy as np
import pytest
import torch

from tests.helpers import USERS_NETS
from wsfm.config import FlowConfig
from wsfm.models import build_model
from wsfm.models.user import (
    ModelError,
    UserVelocity,
    check_user_model,
    import_target,
    load_initial_state,
)


@pytest.fixture
def user_pkg(tmp_path, monkeypatch):
    (tmp_path / "users_nets.py").write_text(USERS_NETS)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "users_nets"


def test_vectors_and_images_reach_the_users_forward_in_their_shape_with_time_as_given(user_pkg):
    vec = build_model("python", dim=3, target=f"{user_pkg}:VectorField", kwargs={"dim": 3},
                      shape=[3])
    x, t = torch.randn(5, 3), torch.rand(5)
    assert torch.equal(vec(x, t), vec.net(x, t))
    img = build_model("python", dim=2 * 4 * 4, target=f"{user_pkg}:ImageField",
                      kwargs={"channels": 2}, shape=[2, 4, 4])
    x = torch.randn(5, 32)
    expected = img.net(x.reshape(5, 2, 4, 4), t).reshape(5, 32)
    assert torch.equal(img(x, t), expected)
    assert set(img.state_dict()) == {"net." + k for k in img.net.state_dict()}
    check_user_model(vec)
    check_user_model(img)


@pytest.mark.parametrize("target, kwargs, message", [
    ("users_nets", {}, "expected 'package.module:Class'"),
    ("no_such_pkg.nets:Field", {}, "does not import (ModuleNotFoundError"),
    ("users_nets:Missing", {}, "has no attribute 'Missing'"),
    ("users_nets:not_a_module", {}, "is not a torch.nn.Module class"),
    ("users_nets:VectorField", {"dim": 3, "depth": 2}, "does not take kwargs"),
])
def test_a_target_that_cannot_be_built_is_named(user_pkg, target, kwargs, message):
    with pytest.raises(ModelError, match=re.escape(message)) as err:
        UserVelocity(3, target, kwargs)
    assert target in str(err.value)


@pytest.mark.parametrize("cls, message", [("NoTime", "failed (TypeError"),
                                          ("Flattening", "returned (2, 1)")])
def test_a_forward_of_another_signature_or_shape_is_found_by_one_call(user_pkg, cls, message):
    net = UserVelocity(3, f"{user_pkg}:{cls}", {"dim": 3})
    with pytest.raises(ModelError, match=re.escape(message)) as err:
        check_user_model(net)
    assert f"{user_pkg}:{cls}" in str(err.value) and "forward(x, t)" in str(err.value)


def test_initial_weights_from_a_state_dict_file_and_each_misfit(user_pkg, tmp_path):
    net = UserVelocity(3, f"{user_pkg}:VectorField", {"dim": 3})
    theirs = import_target(f"{user_pkg}:VectorField")(dim=3)
    good = tmp_path / "good.pt"
    torch.save(theirs.state_dict(), good)
    state = load_initial_state(str(good), net)
    net.net.load_state_dict(state)
    x, t = torch.randn(4, 3), torch.rand(4)
    assert torch.equal(net(x, t), theirs(x, t))
    wide = import_target(f"{user_pkg}:VectorField")(dim=3, width=8)
    cases = {"missing keys net.2.bias": {k: v for k, v in theirs.state_dict().items()
                                         if k != "net.2.bias"},
             "unexpected keys extra": {**theirs.state_dict(), "extra": torch.zeros(1)},
             "shapes differ: net.0.weight (8, 4) in the weights, (16, 4) in the network":
                 wide.state_dict()}
    for message, bad in cases.items():
        path = tmp_path / "bad.pt"
        torch.save(bad, path)
        with pytest.raises(ModelError, match=re.escape(message)) as err:
            load_initial_state(str(path), net)
        assert str(path) in str(err.value) and f"{user_pkg}:VectorField" in str(err.value)
    torch.save(theirs, tmp_path / "whole.pt")  # the module pickled, not its state dict
    with pytest.raises(ModelError, match="not a PyTorch state dict|not a state dict"):
        load_initial_state(str(tmp_path / "whole.pt"), net)
    with pytest.raises(ModelError, match="no such file"):
        load_initial_state(str(tmp_path / "absent.pt"), net)


def test_initial_weights_from_the_mlflow_registry(user_pkg, tmp_path, monkeypatch):
    import mlflow.pytorch

    import mlflow
    from wsfm.tracking import registered_weights

    monkeypatch.chdir(tmp_path)  # the store's default artifact root is ./mlruns

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    net = UserVelocity(3, f"{user_pkg}:VectorField", {"dim": 3})
    theirs = import_target(f"{user_pkg}:VectorField")(dim=3)
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("users")
    try:
        with mlflow.start_run():
            mlflow.pytorch.log_model(theirs, name="field", registered_model_name="users-field",
                                     serialization_format="pickle")
    finally:
        mlflow.set_tracking_uri(None)
    state = load_initial_state("models:/users-field/1", net,
                               lambda u: registered_weights(u, uri))
    assert all(torch.equal(state[k], v) for k, v in theirs.state_dict().items())
    with pytest.raises(ModelError, match="no such registered model version") as err:
        registered_weights("models:/users-field/7", uri)
    assert "models:/users-field/7" in str(err.value)
    absent = f"sqlite:///{tmp_path / 'none.db'}"
    with pytest.raises(ModelError, match="does not exist yet"):
        registered_weights("models:/users-field/1", absent)
    assert not (tmp_path / "none.db").exists()
    with pytest.raises(ModelError, match="no MLflow tracking store"):
        load_initial_state("models:/users-field/1", net)


def test_the_refiner_on_the_users_clock_starts_as_zero_shot(user_pkg):
    """Before any fine-tuning the refiner *is* zero-shot warm start from the user's model: a
    warm sampler and a zero-shot sampler from the same weights give the same samples; and the
    training source is the zero-shot point with dx/dt on absolute time as the target."""
    from wsfm.drafts import GMMDraft
    from wsfm.sampler import build_sampler
    from wsfm.train.objective import FlowObjective

    draft = GMMDraft(2).fit(np.random.default_rng(0).normal(size=(300, 3)))
    net = UserVelocity(3, f"{user_pkg}:VectorField", {"dim": 3})
    warm = build_sampler(draft, net, 0.8, step_size=0.05, dim=3, draft_noise=0.3)
    zero = build_sampler(draft, net, 0.8, step_size=0.05, dim=3, start="noised_draft")
    a, nfe_a = warm.sample(20, seed=4)
    b, nfe_b = zero.sample(20, seed=4)
    assert np.array_equal(a, b) and nfe_a == nfe_b == 4

    flow = FlowConfig(t0=0.8, draft_noise=0.3, coupling="independent")
    objective = FlowObjective("warm", flow, user_clock=True)
    source, data = torch.randn(6, 3), torch.randn(6, 3)
    batch = objective.make_batch(source, data, torch.Generator().manual_seed(1))
    noise = torch.randn(6, 3, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(batch.x0, 0.8 * source + 0.2 * noise)  # the zero-shot point
    p = objective.parameterisation
    assert (p.time, p.target) == ("t", "velocity_t")
    s = torch.tensor([0.0, 0.5])
    assert torch.allclose(p.net_time(s, 0.8), torch.tensor([0.8, 0.9]))
    assert torch.allclose(p.regression_target(batch.x0, batch.x1, 0.8),
                          (batch.x1 - batch.x0) / 0.2)
    # The package's own networks keep the refiner's clock and the widened draft.
    plain = FlowObjective("warm", flow)
    assert plain.noised is None and plain.parameterisation.time == "s"
