"""What a training run tells the world: rank-0 metrics and progress, and divergence.

Only rank 0 logs, every ``log_every`` steps: loss, learning rate, samples/s and step time to the
stage's MLflow run, and a progress line (step, loss, samples/s, ETA) that Ray forwards to the
invocation's log file. Each logged step is first appended to ``train_metrics.jsonl`` in the
stage folder (step, time, values), then sent to MLflow by a background thread: a tracking
server that is slow or down never stalls or fails training, and what it did not receive is
logged from that file (its format: ``wsfm.train.metrics_log``) afterwards, with the same
timestamps (``wsfm.tracking``), by the driver that logs the stage. About once a second it
also replaces ``progress.json`` in the stage folder, the snapshot from which the driver shows
progress (``wsfm.progress``). Divergence (a NaN or inf loss on any rank) is decided
collectively, so that every rank stops at the same step and none hangs in a collective.
"""

from __future__ import annotations

import json
import math
import queue
import statistics
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from wsfm.progress import SNAPSHOT, format_duration, format_rate, write_snapshot
from wsfm.train.metrics_log import STEP_METRICS, append_step_metrics, read_step_metrics

# STEP_METRICS and read_step_metrics live in metrics_log; they stay importable from here.
__all__ = ["DIVERGED", "STEP_METRICS", "Divergence", "RankZeroMonitor", "check_divergence",
           "global_losses", "read_step_metrics"]

DIVERGED = "diverged.json"  # written by rank 0 into the stage folder when the loss blows up


class _Sender:
    """Sends step metrics to MLflow from a daemon thread, in order; a failure is reported
    once (a line into the log) and the rest of this attempt's records are not sent (they are
    in ``train_metrics.jsonl``)."""

    def __init__(self, tracking: dict[str, str]):
        self.tracking = tracking
        self.queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.sent = 0
        self.failed: str = ""
        self.thread = threading.Thread(target=self._run, name="wsfm-metrics", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        # lazy: MLflow loads only in a rank-0 worker that has a run to log to
        from wsfm.tracking import log_step_metrics, redact

        while (record := self.queue.get()) is not None:
            if self.failed:
                continue
            try:
                log_step_metrics(self.tracking["uri"], self.tracking["run_id"],
                                 record["metrics"], record["step"], record["timestamp"])
                self.sent += 1
            except Exception as exc:  # noqa: BLE001 - tracking must not stop training
                self.failed = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
                print(f"[train] MLflow ({redact(self.tracking['uri'])}) did not take the "
                      f"metrics of step {record['step']}: {self.failed}; training goes on, "
                      f"the steps stay in {STEP_METRICS}", file=sys.__stdout__, flush=True)

    def close(self, timeout: float) -> None:
        self.queue.put(None)
        self.thread.join(timeout)


class Divergence(FloatingPointError):
    """The loss became NaN or inf; the message names the step and the checkpoint kept."""


def global_losses(losses: torch.Tensor, world_size: int) -> list[float]:
    """Each step's loss averaged over the ranks: ``losses`` (K,) this rank's losses of K steps,
    on its device; one all-reduce and one copy to the host for all K. NaN or inf on any rank
    makes that step's value non-finite on every rank."""
    value = losses.detach().float().clone()
    if world_size > 1:
        import torch.distributed as dist

        dist.all_reduce(value)
    return (value / world_size).tolist()


def check_divergence(losses: Sequence[float], *, first_step: int, lrs: Sequence[float],
                     mode: str, rank: int, world_size: int, out_dir: Path) -> None:
    """Raise :class:`Divergence` on every rank if a global loss of steps ``first_step`` ...
    ``first_step + K - 1`` (``losses``, K values; ``lrs`` their learning rates) is not finite.

    The loop checks every ``log_every`` steps and before every checkpoint, so the message names
    the first non-finite step and the range checked, and a checkpoint never holds weights
    trained on a non-finite loss. Rank 0 first writes ``diverged.json`` into the stage folder
    (so that a restarted worker group stops at once instead of training into the same NaN
    again), then all ranks meet at a barrier, so that the file exists before any rank fails.
    """
    bad = next((i for i, v in enumerate(losses) if not math.isfinite(v)), None)
    if bad is None:
        return
    # lazy: checkpoint imports DeepSpeed and Ray, which the monitor's tests do without
    from wsfm.train.checkpoint import read_pointer

    step, last = first_step + bad, first_step + len(losses) - 1
    last_checkpoint = read_pointer(out_dir)
    kept = (f"the last good checkpoint (step {last_checkpoint['step']}, "
            f"{last_checkpoint['path']}) is kept" if last_checkpoint else "no checkpoint was "
            "written before it")
    message = (f"{mode} training diverged: the loss is {losses[bad]} at step {step} (the first "
               f"non-finite loss of steps {first_step}-{last}, checked at step {last}; "
               f"learning rate {lrs[bad]:.3g}); {kept}. Lower train.lr or check the data.")
    if rank == 0:
        (Path(out_dir) / DIVERGED).write_text(json.dumps({"step": step, "message": message}))
    if world_size > 1:
        import torch.distributed as dist

        dist.barrier()
    raise Divergence(message)


class RankZeroMonitor:
    """Step timing on every rank; MLflow metrics and progress lines from rank 0 only.

    Args:
        tracking: ``{"uri", "run_id"}`` of the MLflow run, or None.
        rank: this worker's rank (only rank 0 logs).
        every: log every this many steps.
        total, start: the run's last step and the step it (re)starts from.
        batch: the global batch, for samples/s.
        desc: the label of progress lines ("train_refiner").
        out_dir: the stage folder, for ``progress.json``.
    """

    def __init__(self, tracking: dict[str, str] | None, *, rank: int, every: int, total: int,
                 start: int, batch: int, desc: str, out_dir: Path):
        self.enabled = rank == 0
        self.tracking = tracking if self.enabled else None
        self.every, self.batch, self.total = max(1, every), batch, total
        self.losses: list[float] = []
        self.step_times: list[float] = []
        self.desc, self.out_dir = desc, Path(out_dir)
        self._eta_start = (time.perf_counter(), start)
        self._saved = -float("inf")
        self._sender = _Sender(self.tracking) if self.tracking else None
        self.recorded = 0

    def step(self, step: int, loss: float, lr: float, seconds: float) -> None:
        """Record one optimizer step; log on rank 0 every ``every`` steps."""
        self.losses.append(loss)
        self.step_times.append(seconds)
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self._saved >= 1.0 or step == self.total:
            self._saved = now
            self._snapshot(step, lr, now)
        if step % self.every:
            return
        window = self.step_times[-self.every:]  # compute only: checkpoints are left out
        step_time = sum(window) / len(window)
        metrics = {"train/loss": self.recent_loss(), "train/lr": lr,
                   "train/step_time_s": step_time, "train/samples_per_s": self.batch / step_time}
        record = {"step": step, "timestamp": int(time.time() * 1000), "metrics": metrics}
        append_step_metrics(self.out_dir, record)
        self.recorded += 1
        if self._sender is not None:
            self._sender.queue.put(record)
        self._print(step, metrics, now)

    def close(self, timeout: float = 30.0) -> dict[str, Any]:
        """Let the sender finish (at most ``timeout`` seconds); what it did and did not send."""
        if self._sender is None:
            return {}
        self._sender.close(timeout)
        return {"metrics_sent": self._sender.sent,
                "metrics_unsent": self.recorded - self._sender.sent,
                **({"tracking_error": self._sender.failed} if self._sender.failed else {})}

    def _eta(self, step: int, now: float) -> tuple[float, float]:
        """(seconds since this attempt began, seconds left at its pace so far)."""
        began, first = self._eta_start
        elapsed = now - began
        return elapsed, (self.total - step) * elapsed / max(1, step - first)

    def _snapshot(self, step: int, lr: float, now: float) -> None:
        elapsed, eta = self._eta(step, now)
        window = self.step_times[-self.every:]
        write_snapshot(self.out_dir / SNAPSHOT, {
            "desc": self.desc, "done": step, "total": self.total, "unit": "steps",
            "rate": self.batch * len(window) / sum(window) if sum(window) > 0 else 0.0,
            "rate_unit": "samples", "eta_s": eta, "elapsed_s": elapsed,
            "note": f"loss {self.recent_loss():.4f}  lr {lr:.2e}"})

    def _print(self, step: int, metrics: dict[str, float], now: float) -> None:
        eta = self._eta(step, now)[1]
        print(f"[train] {self.desc}  step {step}/{self.total}  "
              f"loss {metrics['train/loss']:.4f}  lr {metrics['train/lr']:.2e}  "
              f"{format_rate(metrics['train/samples_per_s'])} samples/s  "
              f"{1000 * metrics['train/step_time_s']:.1f} ms/step  ETA {format_duration(eta)}",
              file=sys.__stdout__, flush=True)  # Ray Train's print patch would log it twice

    def recent_loss(self) -> float:
        tail = self.losses[-self.every:]
        return float(sum(tail) / len(tail)) if tail else float("nan")

    def median_step_time(self) -> float:
        """Median seconds per step, leaving out the first tenth (at most 20) as warm-up."""
        skip = min(20, len(self.step_times) // 10)
        times = self.step_times[skip:]
        return float(statistics.median(times)) if times else float("nan")

    def summary(self) -> dict[str, Any]:
        median = self.median_step_time()
        return {"final_loss": self.recent_loss(), "step_time_median_s": median,
                "samples_per_s": self.batch / median if median == median else float("nan")}
