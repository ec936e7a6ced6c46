"""Shared fixtures: a local Ray runtime, tiny configs, a fitted draft, and one finished toy2d
smoke home per session.

Two rules keep the suite fast on 2 cores without losing what a test proves:

- The toy2d smoke pipeline runs once per session (:func:`smoke`); tests read that home, and
  a test that changes a home works on a copy (``smoke.copy(tmp_path)``).
- The in-process Ray runtime (:func:`ray_local`) and the two-node loopback cluster
  (:func:`loopback_cluster`) start only when a test asks for them, the modules that use one
  run together, and it stops after the last of them: neither sits idle beside the Ray
  runtimes that ``wsfm run`` subprocesses start on their own.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from tests.helpers import (
    SMOKE_EVERY,
    SMOKE_STEPS,
    TOY2D,
    SmokeHome,
    context,
    loose_gates,
    run_smoke,
    write_pipeline,
)
from tests.servers import RayCluster, can_mask, ray_cluster
from wsfm.config import load_pipeline
from wsfm.stages.pretrain_draft import pretrain_draft

# Small models on 2 shared cores: one intra-op thread avoids oversubscription stalls next to
# the Ray workers that the pipeline tests start.
torch.set_num_threads(1)



# Shared runtimes that start on first use: the modules that use one run together, and it
# stops after the last of them (not at the end of the session), so it never idles beside the
# runtimes that later tests start.
SHARED = ("ray_local", "loopback_cluster")
_LAST_USER = pytest.StashKey[dict[str, str]]()
_OPEN: dict[str, ExitStack] = {}


def _uses(item: pytest.Item, name: str) -> bool:
    return name in getattr(item, "fixturenames", ())


@pytest.hookimpl(trylast=True)  # after -k / -m deselected theirs
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Modules grouped by the shared runtime they use (none first), each group in collection
    order except that modules starting with other work go first."""
    modules: dict[str, list[pytest.Item]] = {}
    for item in items:
        modules.setdefault(item.nodeid.split("::")[0], []).append(item)

    def group(module: str) -> int:
        used = [i for i, name in enumerate(SHARED) if any(_uses(t, name) for t in modules[module])]
        return used[0] + 1 if used else 0

    order = sorted(modules, key=lambda m: (group(m), any(_uses(modules[m][0], n)
                                                         for n in SHARED)))
    items[:] = [item for module in order for item in modules[module]]
    config.stash[_LAST_USER] = {name: [i for i in items if _uses(i, name)][-1].nodeid
                                for name in SHARED if any(_uses(i, name) for i in items)}


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    for name, last in item.config.stash.get(_LAST_USER, {}).items():
        if item.nodeid == last and name in _OPEN:
            _OPEN.pop(name).close()


def _shared(name: str, start) -> object:
    """The running ``name`` (``start(stack)`` makes it on first use)."""
    if name not in _OPEN:
        stack = ExitStack()
        try:
            stack.value = start(stack)  # type: ignore[attr-defined]
        except BaseException:
            stack.close()
            raise
        _OPEN[name] = stack
    return _OPEN[name].value  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray runtime (2 CPUs) in this process, for the tests that need one."""
    import ray

    def start(stack: ExitStack):
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=True,
                 runtime_env={"env_vars": {"DS_ACCELERATOR": "cpu"}})
        stack.callback(ray.shutdown)
        return ray

    yield _shared("ray_local", start)
    if "ray_local" in _OPEN:
        _OPEN.pop("ray_local").close()


@dataclass(frozen=True)
class LoopbackCluster:
    """Two Ray nodes on 127.0.0.2 and .3 (1 CPU each, token auth); the worker node does not
    see ``root / "hidden"`` where a mount namespace is allowed (``tests/servers.py``)."""

    cluster: RayCluster
    root: Path


@pytest.fixture(scope="session")
def loopback_cluster(tmp_path_factory):
    """The two-node cluster shared by the tests that only need a cluster (not one that
    kills a node, nor one whose nodes need an environment of their own)."""
    def start(stack: ExitStack) -> LoopbackCluster:
        root = tmp_path_factory.mktemp("loopback-cluster")
        for name in ("shared", "hidden"):
            (root / name).mkdir()
        masks = {1: [root / "hidden"]} if can_mask() else None
        return LoopbackCluster(stack.enter_context(ray_cluster(root / "ray", masks=masks)),
                               root)

    yield _shared("loopback_cluster", start)
    if "loopback_cluster" in _OPEN:
        _OPEN.pop("loopback_cluster").close()


@pytest.fixture
def tmpfs(tmp_path):
    """A 128 KiB tmpfs (root only; skipped otherwise) at ``tmp_path / "artifacts"``;
    ``remount(size)`` resizes it. Unmounted at the end."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "artifacts"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=128k", "tmpfs", str(mnt)], check=True)

    def remount(size: str) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(mnt)], check=True)

    try:
        yield mnt, remount
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.fixture
def tiny_config():
    """The toy2d smoke profile, made smaller still for stage tests."""
    cfg = load_pipeline(TOY2D, profile="smoke")
    return dataclasses.replace(
        cfg,
        name="toy2d-tiny",
        data=dataclasses.replace(cfg.data, n_train=2000, n_test=500),
        shards=dataclasses.replace(cfg.shards, num_shards=3, per_shard=300, pair="none"),
        train=dataclasses.replace(cfg.train, steps=20, batch_size=64, warmup_steps=5,
                                  log_every=10),
        evaluate=dataclasses.replace(cfg.evaluate, n_samples=300, seeds=2, nfe_grid=[1, 2]),
    )


@pytest.fixture
def draft_dir(tmp_path, tiny_config) -> Path:
    """``pretrain_draft``'s output for :func:`tiny_config`."""
    out = tmp_path / "pretrain_draft"
    pretrain_draft(context(tiny_config, out))
    return out


def smoke_pipeline(path: Path) -> Path:
    """The toy2d pipeline whose smoke profile the shared run uses (see ``SMOKE_STEPS``)."""
    return write_pipeline(path, edit=loose_gates,
                          train={"steps": SMOKE_STEPS, "checkpoint_every": SMOKE_EVERY,
                                 "log_every": SMOKE_EVERY, "warmup_steps": 10})


@pytest.fixture(scope="session")
def smoke_yaml(tmp_path_factory) -> Path:
    """The shared run's pipeline file alone (for tests that run it into homes of their own)."""
    return smoke_pipeline(tmp_path_factory.mktemp("smoke-toy2d") / "toy2d.yaml")


@pytest.fixture(scope="session")
def smoke(smoke_yaml) -> SmokeHome:
    """The toy2d smoke pipeline, run once for the session through the real CLI (Ray,
    DeepSpeed, MLflow, shards). Read-only: ``smoke.copy(tmp_path)`` for a test that changes
    it."""
    return run_smoke(smoke_yaml.parent, smoke_yaml)
