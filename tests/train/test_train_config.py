"""TrainConfig validation: the DeepSpeed settings and the batch arithmetic."""

import dataclasses
from pathlib import Path

import pytest

from wsfm.config import ConfigError, TrainConfig, load_pipeline

ROOT = Path(__file__).resolve().parents[2]


def _write(tmp_path, train: str):
    path = tmp_path / "p.yaml"
    path.write_text(f"name: x\ntrain: {train}\n")
    return path


def test_defaults_suit_a_cpu_run():
    cfg = TrainConfig()
    assert (cfg.precision, cfg.use_gpu, cfg.num_workers) == ("fp32", False, 2)
    assert cfg.micro_batch_size * cfg.grad_accum * cfg.num_workers == cfg.batch_size


def test_micro_batch_is_derived_or_checked():
    assert TrainConfig(batch_size=96, num_workers=2, grad_accum=3).micro_batch_size == 16
    assert TrainConfig(batch_size=96, num_workers=2, grad_accum=3, micro_batch=16)
    with pytest.raises(ValueError, match=r"batch_size 96 != micro_batch 8 x grad_accum 3 x "
                                         r"num_workers 2 = 48"):
        TrainConfig(batch_size=96, num_workers=2, grad_accum=3, micro_batch=8)


def test_an_indivisible_batch_shows_the_arithmetic_and_the_file(tmp_path):
    path = _write(tmp_path, "{batch_size: 100, num_workers: 2, grad_accum: 3}")
    with pytest.raises(ConfigError, match=r"p\.yaml: train: batch_size 100 must be micro_batch "
                                          r"x grad_accum 3 x num_workers 2, but 100 is not "
                                          r"divisible by 6"):
        load_pipeline(path)


@pytest.mark.parametrize("train, message", [
    ("{zero_stage: 4}", r"'train.zero_stage' must be one of \[0, 1, 2, 3\]"),
    ("{precision: fp16}", r"'train.precision' must be one of \['fp32', 'bf16'\]"),
    ("{precision: bf16, zero_stage: 0}", r"bf16 needs zero_stage >= 1"),
    ("{grad_clip: -1.0}", r"grad_clip >= 0"),
    ("{ema_decay: 1.0}", r"ema_decay must be in \[0, 1\)"),
    ("{steps: 10, warmup_steps: 20}", r"warmup_steps must be in \[0, steps=10\]"),
    ("{checkpoint_every: -5}", r"checkpoint_every and max_failures must be >= 0"),
    ("{lr: 0}", r"lr must be > 0"),
])
def test_bad_settings_are_named(tmp_path, train, message):
    with pytest.raises(ConfigError, match=message):
        load_pipeline(_write(tmp_path, train))


def test_the_gpu_settings_load(tmp_path):
    cfg = load_pipeline(_write(tmp_path, "{use_gpu: true, precision: bf16, zero_stage: 2, "
                                         "num_workers: 1, batch_size: 256, grad_accum: 2}"))
    assert cfg.train.use_gpu and cfg.train.precision == "bf16"
    assert cfg.train.micro_batch_size == 128


def test_overriding_the_workers_revalidates():
    cfg = TrainConfig(batch_size=64, num_workers=2)
    assert dataclasses.replace(cfg, num_workers=4).micro_batch_size == 16
    with pytest.raises(ValueError, match="not divisible by 3"):
        dataclasses.replace(cfg, num_workers=3)


def _plan(capsys, tmp_path, *extra) -> dict[str, str]:
    from wsfm.cli import main

    assert main(["run", "pipelines/toy2d.yaml", "--dry-run", "--home", str(tmp_path), *extra]) == 0
    lines = [line.split() for line in capsys.readouterr().out.splitlines()
             if line.startswith("[plan]")]
    return {parts[1]: parts[3] for parts in lines}  # stage -> fingerprint


def test_cli_workers_and_gpu_override_the_config_and_its_fingerprints(tmp_path, capsys,
                                                                      monkeypatch):
    from wsfm.cli import main

    monkeypatch.chdir(ROOT)
    base = _plan(capsys, tmp_path)
    more = _plan(capsys, tmp_path, "--workers", "4")
    gpu = _plan(capsys, tmp_path, "--gpu")
    for stage in ("train_refiner", "train_baseline"):
        assert len({base[stage], more[stage], gpu[stage]}) == 3
    assert base["pretrain_draft"] == more["pretrain_draft"] == gpu["pretrain_draft"]
    assert main(["run", "pipelines/toy2d.yaml", "--dry-run", "--home", str(tmp_path),
                 "--workers", "3"]) == 2
    assert ("train.num_workers=3 (from the command line): batch_size 512 must be micro_batch x "
            "grad_accum 1 x num_workers 3") in capsys.readouterr().err
