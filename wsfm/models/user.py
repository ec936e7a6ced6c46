"""A user's own network as the velocity model (``model: {kind: python, target, kwargs}``).

The network follows the convention of flow_matching and TorchCFM: ``forward(x, t)`` with ``x``
(B, D) for vectors or (B, C, H, W) for images, ``t`` (B,) in [0, 1], noise at 0 and data at 1,
returning the velocity ``dx/dt`` in the shape of ``x``. :class:`UserVelocity` wraps it for the
package, which keeps every sample as a flat row: it reshapes rows to the data's shape and back
and passes the time through unchanged. Its state dict is the user's under the prefix
``net.``, so the user's own weights load into ``.net`` as they are.

The user's clock is kept (docs/method.md, "A user's model"): the package trains such a refiner
on absolute time with a ``dx/dt`` target and starts it from the zero-shot point, so that before
any fine-tuning it *is* zero-shot warm start from the user's model.

Every way the user's side can be wrong is found before any work, one line each
(:func:`check_user_model`, :func:`load_initial_state`): a target that does not import or is
not an ``nn.Module``, kwargs it does not take, a forward of another signature or output shape
(one call on a batch of two), weights that do not fit, a ``models:/`` URI that does not exist.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from wsfm.errors import UserError

__all__ = ["ModelError", "UserVelocity", "check_user_model", "file_state", "fit_state",
           "import_target", "load_initial_state", "USER_PREFIX"]

USER_PREFIX = "net."  # UserVelocity's state dict keys: the user's, under this prefix


class ModelError(UserError):
    """The user's network or its weights cannot be used as given; the message says why."""


def import_target(target: str) -> type[nn.Module]:
    """``"package.module:Class"`` -> the class; :class:`ModelError` naming the target when it
    does not import or is not an ``nn.Module`` subclass."""
    module, _, attr = target.partition(":")
    if not module or not attr:
        raise ModelError(f"model.target {target!r}: expected 'package.module:Class'")
    try:
        obj: Any = importlib.import_module(module)
    except ImportError as exc:
        raise ModelError(f"model.target {target!r} does not import ({type(exc).__name__}: "
                         f"{exc}); its module must be importable where the pipeline runs and "
                         "where the model is loaded (install its package, or set "
                         "PYTHONPATH)") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ModelError(f"model.target {target!r}: module {module!r} has no attribute "
                             f"{attr!r}")
        obj = getattr(obj, part)
    if not (isinstance(obj, type) and issubclass(obj, nn.Module)):
        raise ModelError(f"model.target {target!r} is not a torch.nn.Module class "
                         f"(got {type(obj).__name__})")
    return obj


class UserVelocity(nn.Module):
    """``v(x (B, D), t (B,)) -> (B, D)`` from the user's ``forward(x, t)`` on the data's shape.

    Args:
        dim: D, the flat row size.
        target: ``"package.module:Class"``.
        kwargs: the class's keyword arguments.
        shape: one sample's shape as the user's network takes it: (D,) for vectors,
            (C, H, W) for images.
    """

    def __init__(self, dim: int, target: str, kwargs: Mapping[str, Any] | None = None,
                 shape: Sequence[int] | None = None) -> None:
        super().__init__()
        cls = import_target(target)
        kwargs = dict(kwargs or {})
        try:
            self.net = cls(**kwargs)
        except TypeError as exc:
            raise ModelError(f"model.target {target!r} does not take kwargs {kwargs} ({exc})"
                             ) from None
        self.dim, self.target = int(dim), target
        self.user_clock = True  # absolute time in, dx/dt out (wsfm.sampler.build_sampler)
        self.shape = tuple(int(d) for d in (shape or (dim,)))
        if int(torch.tensor(self.shape).prod()) != self.dim:
            raise ValueError(f"shape {self.shape} does not hold dim={dim} values")

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        if t.dim() == 0:
            t = t.expand(x.shape[0])
        out = self.net(x.reshape(x.shape[0], *self.shape), t)
        return out.reshape(x.shape[0], self.dim)


def check_user_model(net: UserVelocity) -> None:
    """One call on a batch of two (t = 0.25, 0.75): the forward takes ``(x, t)`` and returns
    a finite tensor of ``x``'s shape; :class:`ModelError` naming the target otherwise."""
    x = torch.randn(2, *net.shape, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([0.25, 0.75])
    where = f"model.target {net.target!r}: forward(x, t) with x of shape {tuple(x.shape)}"
    try:
        with torch.no_grad():
            out = net.net(x, t)
    except Exception as exc:  # noqa: BLE001  # whatever the user's code raises, named in one line
        raise ModelError(f"{where} and t of shape (2,) failed ({type(exc).__name__}: {exc})"
                         ) from None
    if not isinstance(out, Tensor) or tuple(out.shape) != tuple(x.shape):
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ModelError(f"{where} returned {got}; expected a velocity of x's shape")
    if not torch.isfinite(out).all():
        raise ModelError(f"{where} returned NaN or infinite values")


def load_initial_state(source: str, net: UserVelocity,
                       registered: Callable[[str], dict[str, Tensor]] | None = None
                       ) -> dict[str, Tensor]:
    """The weights that ``train.init_from`` names, as a state dict of ``net.net`` (checked to
    fit it exactly). ``source``: a file saved with ``torch.save(model.state_dict(), path)``,
    or ``models:/NAME/VERSION`` of the MLflow registry, which ``registered`` fetches (the
    tracking layer's ``wsfm.tracking.registered_weights``: this module stays free of MLflow)."""
    if source.startswith("models:/"):
        if registered is None:
            raise ModelError(f"train.init_from {source}: no MLflow tracking store to find it in")
        state = registered(source)
    else:
        state = file_state(Path(source))
    own = set(net.net.state_dict())
    if set(state) != own and all(k.startswith(USER_PREFIX) for k in state):
        # A WS-FM bundle's weights are the wrapper's (``net.`` + the user's keys); the
        # user's own network may have a ``net`` of its own, so strip only where it fits better.
        stripped = {k.removeprefix(USER_PREFIX): v for k, v in state.items()}
        if len(set(stripped) & own) > len(set(state) & own):
            state = stripped
    fit_state(net, state, source)
    return state


def fit_state(net: UserVelocity, state: Mapping[str, Tensor], source: str) -> None:
    """:class:`ModelError` naming missing and unexpected keys and mismatched shapes."""
    own = net.net.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k} {tuple(state[k].shape)} in the weights, {tuple(v.shape)} in the network"
              for k, v in own.items() if k in state and tuple(state[k].shape) != tuple(v.shape)]
    problems = [f"missing keys {_few(missing)}" if missing else "",
                f"unexpected keys {_few(unexpected)}" if unexpected else "",
                f"shapes differ: {_few(shapes)}" if shapes else ""]
    if any(problems):
        raise ModelError(f"train.init_from {source}: the weights do not fit model.target "
                         f"{net.target!r}: {'; '.join(p for p in problems if p)}")


def _few(items: list[str], n: int = 3) -> str:
    more = f" and {len(items) - n} more" if len(items) > n else ""
    return ", ".join(items[:n]) + more


def file_state(path: Path) -> dict[str, Tensor]:
    """A state dict saved with ``torch.save(model.state_dict(), path)``, checked to be one."""
    if not path.is_file():
        raise ModelError(f"train.init_from {path}: no such file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001  # any unreadable file is one line
        raise ModelError(f"train.init_from {path}: not a PyTorch state dict "
                         f"({type(exc).__name__}: {exc})") from None
    if not (isinstance(state, Mapping) and state
            and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items())):
        raise ModelError(f"train.init_from {path}: not a state dict (a mapping of parameter "
                         "names to tensors, as torch.save(model.state_dict(), path) writes)")
    return dict(state)
