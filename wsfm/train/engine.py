"""DeepSpeed wiring, in one place: the config, the optimizer, the engine, the fp32 export.

CPU (``use_gpu: false``): ``DS_ACCELERATOR=cpu``, gloo, fp32 (or bf16) and a torch AdamW, so
that DeepSpeed builds no C++ op. GPU: NCCL, and DeepSpeed's fused Adam where its op builds
(else torch's fused AdamW, with a warning).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from wsfm.config import TrainConfig

__all__ = ["TAG", "build_engine", "build_optimizer", "consolidated_state_dict",
           "deepspeed_config", "full_parameters", "lr_lambda", "weights_only_loads",
           "without_shm_comm"]

TAG = "state"  # DeepSpeed checkpoint tag inside each checkpoint's ``deepspeed/`` folder


def deepspeed_config(train: TrainConfig, world_size: int) -> dict[str, Any]:
    """The resolved DeepSpeed config; ``world_size`` must be ``train.num_workers``."""
    if world_size != train.num_workers:
        raise ValueError(f"{world_size} workers, but the config's batch arithmetic is for "
                         f"num_workers {train.num_workers}: batch_size {train.batch_size} = "
                         f"micro_batch {train.micro_batch_size} x grad_accum "
                         f"{train.grad_accum} x num_workers {train.num_workers}")
    return {
        "train_batch_size": train.batch_size,
        "train_micro_batch_size_per_gpu": train.micro_batch_size,
        "gradient_accumulation_steps": train.grad_accum,
        "gradient_clipping": train.grad_clip,
        # On CPU, gradients are not copied into one contiguous buffer as they are produced:
        # that guards against GPU memory fragmentation, and on CPU it only costs a copy
        # (BENCHMARKS.md "train": the toy MLP's ZeRO-2 step went from 1.35x to 1.27x a
        # plain loop's, interleaved in one process).
        "zero_optimization": {"stage": train.zero_stage,
                              "contiguous_gradients": train.use_gpu,
                              "overlap_comm": train.use_gpu},
        "bf16": {"enabled": train.precision == "bf16"},
        "fp16": {"enabled": False},
        # A client (torch) optimizer keeps DeepSpeed from building C++ ops on CPU.
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }


def lr_lambda(train: TrainConfig) -> Callable[[int], float]:
    """Linear warm-up to the peak rate, then cosine decay to 10% of it."""

    def factor(step: int) -> float:
        if step < train.warmup_steps:
            return (step + 1) / train.warmup_steps
        progress = (step - train.warmup_steps) / max(1, train.steps - train.warmup_steps)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def build_optimizer(train: TrainConfig, params) -> torch.optim.Optimizer:
    """AdamW: torch's on CPU; on GPU DeepSpeed's fused Adam when its op builds."""
    kwargs: dict[str, Any] = {"lr": train.lr, "weight_decay": train.weight_decay}
    if not train.use_gpu:
        return torch.optim.AdamW(params, **kwargs)
    params = list(params)
    try:
        from deepspeed.ops.adam import FusedAdam

        return FusedAdam(params, adam_w_mode=True, **kwargs)
    except Exception as exc:  # the op needs a CUDA toolchain to JIT-build
        warnings.warn(f"DeepSpeed FusedAdam is not available ({type(exc).__name__}: {exc}); "
                      "using torch.optim.AdamW(fused=True)", stacklevel=2)
        return torch.optim.AdamW(params, fused=True, **kwargs)


def without_shm_comm() -> None:
    """Keep DeepSpeed's CPU comm backend from JIT-compiling its shared-memory op.

    When its comm backend starts, DeepSpeed's CPU accelerator compiles ``deepspeed_shm_comm``
    (70-90 s on 2 cores) and serves only ``inference_all_reduce`` with it; training reduces
    through torch.distributed (gloo) either way. Ninja also rebuilt it whenever processes with
    different environments (a Ray worker, a plain interpreter) took turns, and a build killed
    half-way left a lock that hung every later start. DeepSpeed caches its op-compatibility
    table in ``deepspeed.ops`` and consults it before building: marking the op incompatible
    there skips the build, nothing else."""
    import deepspeed.ops

    deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False


def build_engine(model: nn.Module, train: TrainConfig, world_size: int):
    """``(engine, scheduler)``: a DeepSpeed engine with AdamW and the warm-up-cosine schedule."""
    import deepspeed

    if not train.use_gpu:
        without_shm_comm()
    optimizer = build_optimizer(train, model.parameters())
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(train))
    engine, _, _, _ = deepspeed.initialize(model=model, optimizer=optimizer,
                                           lr_scheduler=scheduler,
                                           config=deepspeed_config(train, world_size))
    return engine, scheduler


@contextlib.contextmanager
def full_parameters(engine, train: TrainConfig) -> Iterator[dict[str, torch.Tensor]]:
    """The module's full parameters by name. Under ZeRO-3 they are gathered for the duration
    (a collective: every rank must enter); below it every rank holds them whole."""
    named = dict(engine.module.named_parameters())
    if train.zero_stage < 3:
        yield named
        return
    import deepspeed

    with deepspeed.zero.GatheredParameters(list(named.values()), modifier_rank=None):
        yield named


def consolidated_state_dict(engine, train: TrainConfig,
                            checkpoint_dir: str | None) -> dict[str, torch.Tensor]:
    """The trained weights as one fp32 state dict for the plain network.

    ZeRO stages 1-3 keep the fp32 master weights in the optimizer's partitions (the only fp32
    copy under bf16): they are merged from the checkpoint with ``zero_to_fp32``. Stage 0 runs
    fp32 only (the config enforces it), so the module's own weights are the master weights.
    """
    if train.zero_stage == 0:
        return {k: v.detach().to("cpu", torch.float32).clone()
                for k, v in engine.module.state_dict().items()}
    if checkpoint_dir is None:
        raise ValueError("ZeRO weights are consolidated from a checkpoint; none was given")
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    with weights_only_loads():
        state = get_fp32_state_dict_from_zero_checkpoint(checkpoint_dir, tag=TAG)
    return {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in state.items()}


@contextlib.contextmanager
def weights_only_loads() -> Iterator[None]:
    """Make every ``torch.load`` inside load with ``weights_only=True``.

    DeepSpeed reads its checkpoints with ``weights_only=False`` (its checkpoint engine and
    ``zero_to_fp32``), which would run any pickle payload planted in a checkpoint folder. Inside
    this block they unpickle tensors and plain containers only, plus the three plain records
    that DeepSpeed's ZeRO optimizer states hold (allow-listed, never called: the unpickler
    only sets their attributes); anything else is refused with ``UnpicklingError``.
    """
    from deepspeed.runtime.fp16.loss_scaler import LossScaler
    from deepspeed.runtime.zero.config import ZeroStageEnum
    from deepspeed.utils.tensor_fragment import fragment_address

    original = torch.load

    def load(*args, **kwargs):
        kwargs["weights_only"] = True
        return original(*args, **kwargs)

    with torch.serialization.safe_globals([LossScaler, ZeroStageEnum, fragment_address]):
        torch.load = load
        try:
            yield
        finally:
            torch.load = original
