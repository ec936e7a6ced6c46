from pathlib import Path

import pytest

from wsfm.cli import main
from wsfm.config import ConfigError, load_pipeline

from tests.conftest import TOY2D


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return path


def test_toy2d_pipeline_loads_and_smoke_profile_overrides_it():
    base = load_pipeline(TOY2D)
    smoke = load_pipeline(TOY2D, profile="smoke")
    assert base.name == smoke.name == "toy2d"
    assert smoke.train.steps < base.train.steps
    assert smoke.shards.num_shards == 2
    assert smoke.model == base.model  # untouched sections keep the base values


def test_unknown_key_names_the_key_and_the_file(tmp_path):
    path = write(tmp_path, "name: x\ntrain:\n  stepz: 3\n")
    with pytest.raises(ConfigError) as err:
        load_pipeline(path)
    assert "train.stepz" in str(err.value) and str(path) in str(err.value)


def test_wrong_type_names_the_key(tmp_path):
    path = write(tmp_path, "name: x\ntrain:\n  steps: many\n")
    with pytest.raises(ConfigError, match=r"'train.steps' must be int, got str"):
        load_pipeline(path)


def test_bad_value_and_bad_choice(tmp_path):
    with pytest.raises(ConfigError, match=r"flow: t0 must be in \[0, 1\)"):
        load_pipeline(write(tmp_path, "name: x\nflow: {t0: 1.5}\n"))
    with pytest.raises(ConfigError, match=r"'flow.coupling' must be one of"):
        load_pipeline(write(tmp_path, "name: x\nflow: {coupling: magic}\n"))
    with pytest.raises(ConfigError, match="not divisible"):
        load_pipeline(write(tmp_path, "name: x\ntrain: {batch_size: 7, num_workers: 2}\n"))
    # A stored pairing is the coupling training uses: the two settings must agree.
    doc = "name: x\nflow: {coupling: minibatch_ot}\nshards: {pair: nearest}\n"
    with pytest.raises(ConfigError, match=r"p.yaml.*shards.pair 'nearest'.*flow.coupling is "
                                          r"'minibatch_ot'"):
        load_pipeline(write(tmp_path, doc))
    assert load_pipeline(write(tmp_path, doc.replace("minibatch_ot", "nearest"))).shards.pair \
        == "nearest"


def test_profile_errors_name_the_profile_key(tmp_path):
    path = write(tmp_path, "name: x\nprofiles:\n  smoke:\n    train: {stepz: 1}\n")
    with pytest.raises(ConfigError, match=r"profiles.smoke.train.stepz"):
        load_pipeline(path, profile="smoke")
    with pytest.raises(ConfigError, match=r"unknown profile 'fast'"):
        load_pipeline(path, profile="fast")


def test_float_written_in_exponent_form_is_accepted(tmp_path):
    assert load_pipeline(write(tmp_path, "name: x\ntrain: {lr: 1e-3}\n")).train.lr == 1e-3


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="pipeline file not found: .*nope.yaml"):
        load_pipeline(tmp_path / "nope.yaml")


def test_cli_refuses_a_bad_file_before_anything_runs(tmp_path, capsys):
    path = write(tmp_path, "name: x\nmodel: {widht: 3}\n")
    home = tmp_path / "home"
    assert main(["run", str(path), "--home", str(home)]) == 2
    err = capsys.readouterr().err
    assert "model.widht" in err and str(path) in err
    assert not home.exists()


def test_cli_refuses_bad_user_data_before_anything_runs(tmp_path, capsys):
    import numpy as np

    data = tmp_path / "x.npy"
    np.save(data, np.array([[0.0, np.inf]] * 50))
    path = write(tmp_path, f"name: x\ndata: {{kind: npy, path: {data}}}\n")
    home = tmp_path / "home"
    assert main(["run", str(path), "--home", str(home)]) == 2
    err = capsys.readouterr().err
    assert "x.npy" in err and "NaN or infinite" in err
    assert not home.exists()
