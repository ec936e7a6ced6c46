"""The DeepSpeed engine (CPU, gloo) against a plain PyTorch loop: the same updates."""

import copy
import multiprocessing as mp
import os
import socket

import pytest
import torch

from wsfm.config import TrainConfig


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _max_difference(zero_stage: int, port: int, queue) -> None:
    """Three steps of the engine and of a plain AdamW loop (clipping, warm-up schedule) on the
    same batches; puts the largest weight difference (or the error) on ``queue``."""
    try:
        os.environ.update(DS_ACCELERATOR="cpu", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                          RANK="0", WORLD_SIZE="1", LOCAL_RANK="0")
        import torch.distributed as dist

        from wsfm.train.engine import build_engine, lr_lambda

        torch.set_num_threads(1)
        dist.init_process_group("gloo")
        train = TrainConfig(steps=10, batch_size=32, lr=0.01, warmup_steps=3, grad_clip=0.05,
                            num_workers=1, zero_stage=zero_stage)
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.SiLU(), torch.nn.Linear(16, 2))
        plain, init = copy.deepcopy(net), copy.deepcopy(net)
        engine, _ = build_engine(net, train, 1)
        opt = torch.optim.AdamW(plain.parameters(), lr=train.lr, weight_decay=train.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(train))
        gen = torch.Generator().manual_seed(1)
        for _ in range(3):
            x, y = torch.randn(32, 3, generator=gen), torch.randn(32, 2, generator=gen)
            loss = torch.mean((engine(x) - y) ** 2)
            engine.backward(loss)
            engine.step()
            opt.zero_grad()
            torch.mean((plain(x) - y) ** 2).backward()
            torch.nn.utils.clip_grad_norm_(plain.parameters(), train.grad_clip)  # it clips
            opt.step()
            sched.step()
        moved = max((a - b).abs().max().item() for a, b in
                    zip(plain.parameters(), init.parameters()))
        queue.put(max((a - b).abs().max().item() for a, b in
                      zip(engine.module.parameters(), plain.parameters())))
        queue.put(moved)
        dist.destroy_process_group()
    except BaseException as exc:  # noqa: BLE001  (reported to the test)
        queue.put(repr(exc))


@pytest.mark.parametrize("zero_stage", [0, 2])
def test_the_engine_updates_the_weights_as_a_plain_adamw_loop(zero_stage):
    ctx = mp.get_context("spawn")  # a fresh process: its own process group
    queue = ctx.Queue()
    proc = ctx.Process(target=_max_difference, args=(zero_stage, _free_port(), queue))
    proc.start()
    difference = queue.get(timeout=300)
    moved = queue.get(timeout=60) if isinstance(difference, float) else None
    proc.join(timeout=60)
    assert isinstance(difference, float), difference
    assert difference < 1e-6 and moved > 1e-3  # equal updates, and not trivially
