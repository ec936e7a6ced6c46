import dataclasses
from pathlib import Path

import pytest

from tests.helpers import ROOT, TOY2D
from wsfm.cli import main
from wsfm.config import ConfigError, PipelineConfig, TrainConfig, load_pipeline


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
    with pytest.raises(ConfigError, match=r"unknown key 'profiles.smoke.train.stepz' \(known "
                                          r"keys: batch_size, "):
        load_pipeline(path, profile="smoke")
    path = write(tmp_path, "name: x\ntrain: {steps: 500}\nprofiles:\n  smoke:\n"
                           "    train: {steps: many}\n")
    assert load_pipeline(path).train.steps == 500  # the base alone is fine
    with pytest.raises(ConfigError, match=r"'profiles.smoke.train.steps' must be int, got str"):
        load_pipeline(path, profile="smoke")
    with pytest.raises(ConfigError, match=r"unknown profile 'fast'"):
        load_pipeline(path, profile="fast")


def test_float_written_in_exponent_form_is_accepted(tmp_path):
    assert load_pipeline(write(tmp_path, "name: x\ntrain: {lr: 1e-3}\n")).train.lr == 1e-3
    doc = "name: x\nevaluate: {warm_t0s: [5e-1, 0.9]}\ntrain: {lr: 1}\n"
    cfg = load_pipeline(write(tmp_path, doc))
    assert cfg.evaluate.warm_t0s == [0.5, 0.9]
    assert cfg.train.lr == 1.0 and type(cfg.train.lr) is float  # an int is a fine float


@pytest.mark.parametrize("doc, message", [
    ("train: {use_gpu: 1}", r"p\.yaml: 'train.use_gpu' must be bool, got int 1$"),
    ("train: {steps: true}", r"'train.steps' must be int, got bool True$"),
    ("train: {zero_stage: true}", r"'train.zero_stage' must be one of \[0, 1, 2, 3\], got True"),
    ("train: {lr: fast}", r"'train.lr' must be float, got str 'fast'"),
    ("evaluate: {nfe_grid: [1, 2, x]}", r"'evaluate.nfe_grid\[2\]' must be int, got str 'x'"),
    ("evaluate: {nfe_grid: 4}", r"'evaluate.nfe_grid' must be a list, got int"),
    ("train: 5", r"'train' must be a mapping, got int"),
    ("resources: {evaluate: {num_cpu: 1}}",
     r"unknown key 'resources.evaluate.num_cpu' \(known keys: max_retries, num_cpus, num_gpus\)"),
    ("seed: 0", r"missing required key 'name'"),
])
def test_strict_types_name_the_dotted_key_on_one_line(tmp_path, doc, message):
    text = doc + "\n" if doc.startswith("seed") else f"name: x\n{doc}\n"
    with pytest.raises(ConfigError, match=message) as err:
        load_pipeline(write(tmp_path, text))
    assert "\n" not in str(err.value)


def test_replace_and_construction_validate_with_one_line_errors():
    cfg = TrainConfig(batch_size=64, num_workers=2)
    with pytest.raises(ConfigError, match=r"^'steps' must be int, got str 'a'$"):
        dataclasses.replace(cfg, steps="a")
    with pytest.raises(ConfigError, match=r"^batch_size 64 must be .* not divisible by 3$"):
        dataclasses.replace(cfg, num_workers=3)
    with pytest.raises(ConfigError, match=r"^'use_gpu' must be bool, got int 1$"):
        TrainConfig(use_gpu=1)
    base = PipelineConfig(name="x")
    with pytest.raises(ConfigError, match=r"shards.pair 'nearest'"):
        dataclasses.replace(base, shards=dataclasses.replace(base.shards, pair="nearest"))


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


def test_the_substitute_coupling_needs_its_draft_and_its_shards(tmp_path):
    base = (ROOT / "pipelines" / "text.yaml").read_text()
    assert load_pipeline(ROOT / "pipelines" / "text.yaml").flow.coupling == "substitute"
    for old, new in (("pair: substitute", "pair: none"), ("kind: window_gru", "kind: gru")):
        path = tmp_path / "text.yaml"
        path.write_text(base.replace(old, new))
        with pytest.raises(ConfigError, match="coupling: substitute .* ngram, window_ngram"):
            load_pipeline(path)
    # the character n-gram over windows draws substitutes too
    path.write_text(base.replace("kind: window_gru", "kind: window_ngram"))
    assert load_pipeline(path).draft.kind == "window_ngram"


def test_nearest_search_settings_are_checked(tmp_path):
    base = (ROOT / "pipelines" / "words.yaml").read_text()
    assert "\n  coupling: substitute\n" in base and "\n  pair: substitute " in base
    base = base.replace("\n  coupling: substitute\n", "\n  coupling: nearest\n").replace(
        "\n  pair: substitute ", "\n  pair: nearest ")
    path = tmp_path / "words.yaml"
    path.write_text(base.replace("  pair: nearest", "  pair: nearest\n  nearest_pool: 500"))
    assert load_pipeline(path).shards.nearest_pool == 500
    path.write_text(base.replace("  pair: nearest", "  pair: nearest\n  nearest_index: ivf"))
    with pytest.raises(ConfigError, match="ivf searches Euclidean vectors; text pairs by Hamming"):
        load_pipeline(path)
    path.write_text(base.replace("  pair: nearest", "  pair: nearest\n  nearest_pool: -1"))
    with pytest.raises(ConfigError, match="nearest_pool must be >= 0"):
        load_pipeline(path)


def test_a_users_network_and_its_weights(tmp_path):
    """model.kind python needs a target; train.init_from needs a user's network, is anchored
    to the pipeline file when relative, and rules out what a user's network cannot be (text,
    the refiner's rectified round); the bench's default leaves that round out."""
    import yaml

    doc = yaml.safe_load(TOY2D.read_text())
    bench = doc.pop("bench")  # lists warm_reflow
    doc["model"] = {"kind": "python", "target": "my_nets:Field", "kwargs": {"dim": 2}}
    doc["train"] = {**doc["train"], "init_from": "weights/field.pt"}
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(doc))
    config = load_pipeline(path)
    assert config.train.init_from == str(tmp_path / "weights" / "field.pt")
    assert config.model.kwargs == {"dim": 2} and config.model.user_clock
    assert "warm_reflow" not in load_pipeline(path, bench=True).evaluate.methods
    for edit, message in (
            ({"model": {"kind": "python", "target": "my_nets"}}, "needs target"),
            ({"model": {"kind": "mlp"}}, "train.init_from initialises a user's network"),
            ({"evaluate": {**doc["evaluate"], "methods": ["cold", "warm", "warm_reflow"]}},
             "warm_reflow"),
            ({"data": {"kind": "words"}}, "text data")):
        path.write_text(yaml.safe_dump({**doc, **edit}))
        with pytest.raises(ConfigError, match=message):
            load_pipeline(path)
    path.write_text(yaml.safe_dump({**doc, "bench": bench}))
    with pytest.raises(ConfigError, match="with the bench section.*warm_reflow"):
        load_pipeline(path)
    registered = {**doc, "train": {**doc["train"], "init_from": "models:/field/2"}}
    path.write_text(yaml.safe_dump(registered))
    assert load_pipeline(path).train.init_from == "models:/field/2"


def test_attention_width_must_split_into_the_heads():
    from wsfm.config import ModelConfig

    with pytest.raises(ConfigError, match="d_model 10 is not divisible by n_heads 4"):
        ModelConfig(kind="transformer", d_model=10, n_heads=4)
