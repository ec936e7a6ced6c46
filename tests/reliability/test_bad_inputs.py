"""Bad inputs through the real command line: one error line, exit 2, nothing made.

Each case runs ``wsfm run FILE --home DIR`` (``wsfm.cli.main``, in this process: the same
code as ``python -m wsfm.cli``, which one case runs as a subprocess to check the exit status
end to end). What must hold for every case: exactly one line on stderr, ``wsfm: error: ...``
naming the file (and the key, line or row); exit status 2; no stage started (no ``[wsfm]``
line, Ray not started); and nothing in the registry or the store (no ``mlflow.db``, no
``artifacts/``, no ``mlartifacts/``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.helpers import ROOT, TOY2D
from wsfm.cli import main

pytestmark = pytest.mark.reliability

WORDS = ROOT / "pipelines" / "words.yaml"
GLYPHS = ROOT / "pipelines" / "glyphs.yaml"
TEXT = ROOT / "pipelines" / "text.yaml"


def pipeline_file(folder: Path, base: Path = TOY2D, **sections) -> Path:
    """``base`` with top-level ``sections`` replaced or merged (a dict merges one level)."""
    doc = yaml.safe_load(base.read_text())
    for key, value in sections.items():
        doc[key] = {**doc[key], **value} if isinstance(value, dict) and key in doc else value
    path = folder / "pipeline.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def refused(capsys, home: Path, *argv: str) -> str:
    """Run ``wsfm run ... --home home``; assert the refusal contract; return the error line."""
    import ray

    ray_before = ray.is_initialized()  # the suite's shared local Ray may be up already
    code = main(["run", *argv, "--home", str(home)])
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2, (out, err)
    assert len(lines) == 1 and lines[0].startswith("wsfm: error: "), err
    assert "[wsfm]" not in out and "[plan]" not in out, out  # no stage ran or was planned
    assert ray.is_initialized() == ray_before  # the refusal started no Ray runtime
    for made in ("mlflow.db", "artifacts", "mlartifacts", "ray"):
        assert not (home / made).exists(), f"{made} was created for a refused run"
    return lines[0]


def test_yaml_syntax_error_names_the_file_and_line(tmp_path, capsys):
    bad = tmp_path / "broken.yaml"
    bad.write_text("name: toy2d\ntrain:\n  steps: [1, 2\n  lr: 0.1\n")
    line = refused(capsys, tmp_path / "home", str(bad))
    assert str(bad) in line and "line" in line


def test_unknown_key_names_the_file_and_key(tmp_path, capsys):
    path = pipeline_file(tmp_path, train={"stpes": 10})
    line = refused(capsys, tmp_path / "home", str(path))
    assert str(path) in line and "stpes" in line


def test_unknown_key_in_a_profile_is_refused(tmp_path, capsys):
    doc = yaml.safe_load(TOY2D.read_text())
    doc["profiles"]["smoke"]["shards"]["num_shard"] = 3
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(doc))
    line = refused(capsys, tmp_path / "home", str(path), "--profile", "smoke")
    assert str(path) in line and "num_shard" in line


def test_wrong_type_names_the_file_and_key(tmp_path, capsys):
    path = pipeline_file(tmp_path, train={"steps": "many"})
    line = refused(capsys, tmp_path / "home", str(path))
    assert str(path) in line and "steps" in line


@pytest.mark.parametrize("t0", [1.0, -0.1, 1.5])
def test_t0_outside_unit_interval(tmp_path, capsys, t0):
    path = pipeline_file(tmp_path, flow={"t0": t0})
    line = refused(capsys, tmp_path / "home", str(path))
    assert str(path) in line and "t0" in line


def test_zero_shards(tmp_path, capsys):
    path = pipeline_file(tmp_path, shards={"num_shards": 0})
    line = refused(capsys, tmp_path / "home", str(path))
    assert str(path) in line and "num_shards" in line


def test_batch_size_the_workers_cannot_divide(tmp_path, capsys):
    path = pipeline_file(tmp_path, train={"batch_size": 129, "num_workers": 2})
    line = refused(capsys, tmp_path / "home", str(path))
    assert str(path) in line and "batch_size" in line and "129" in line


def test_batch_size_indivisible_by_workers_from_the_command_line(tmp_path, capsys):
    path = pipeline_file(tmp_path, train={"batch_size": 128})
    line = refused(capsys, tmp_path / "home", str(path), "--workers", "3")
    assert "batch_size" in line and "num_workers=3" in line


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_nan_or_infinite_user_data_names_the_file_and_row(tmp_path, capsys, value):
    x = np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32)
    x[17, 1] = value
    data = tmp_path / "x.npy"
    np.save(data, x)
    path = pipeline_file(tmp_path, data={"kind": "npy", "path": str(data)})
    line = refused(capsys, tmp_path / "home", str(path))
    assert str(data) in line and "row 17" in line


def test_empty_text_file(tmp_path, capsys):
    data = tmp_path / "words.txt"
    data.write_text("")
    path = pipeline_file(tmp_path, WORDS, data={"kind": "text_lines", "path": str(data)})
    line = refused(capsys, tmp_path / "home", str(path))
    assert str(data) in line and "0 distinct" in line


def test_characters_outside_the_alphabet_name_the_line(tmp_path, capsys):
    words = [f"{a}{b}" for a in "abcde" for b in "fghij"]
    words[12] = "caf\u00e9"
    data = tmp_path / "words.txt"
    data.write_text("\n".join(words) + "\n", encoding="utf-8")
    path = pipeline_file(tmp_path, WORDS, data={"kind": "text_lines", "path": str(data)})
    line = refused(capsys, tmp_path / "home", str(path))
    assert f"{data}:13" in line and "\u00e9" in line


def test_users_prose_outside_the_alphabet_names_the_file_and_line(tmp_path, capsys):
    docs = [" ".join(f"w{i}{j}" for j in range(60)) for i in range(4)]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(docs) + "\n\nla caf\u00e9\n", encoding="utf-8")
    path = pipeline_file(tmp_path, TEXT, data={"path": str(corpus)})
    line = refused(capsys, tmp_path / "home", str(path))
    assert f"{corpus}:9" in line and "\u00e9" in line


@pytest.mark.parametrize("docs, what", [(2, "at least 3"), (4, "longest document")])
def test_users_prose_too_small_or_too_short_for_a_window(tmp_path, capsys, docs, what):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(f"document {i} is short" for i in range(docs)))
    path = pipeline_file(tmp_path, TEXT, data={"path": str(corpus)})
    line = refused(capsys, tmp_path / "home", str(path))
    assert str(corpus) in line and what in line


def _images(folder: Path, sizes_modes: list[tuple[tuple[int, int], str]]) -> None:
    from PIL import Image

    folder.mkdir()
    rng = np.random.default_rng(0)
    for i, (size, mode) in enumerate(sizes_modes):
        shape = (size[1], size[0]) + ((3,) if mode == "RGB" else ())
        Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8), mode).save(
            folder / f"img{i:02d}.png")


@pytest.mark.parametrize("base, odd, what", [
    (((8, 8), "L"), ((8, 8), "RGB"), "mode"), (((8, 8), "L"), ((9, 8), "L"), "size"),
    (((32, 32), "RGB"), ((32, 32), "L"), "mode"), (((32, 32), "RGB"), ((32, 30), "RGB"), "size"),
])
def test_images_of_mixed_sizes_or_modes_name_both_files(tmp_path, capsys, base, odd, what):
    images = tmp_path / "imgs"
    _images(images, [base] * 11 + [odd])
    size, channels = list(base[0]), 3 if base[1] == "RGB" else 1
    path = pipeline_file(tmp_path, GLYPHS, data={"kind": "image_folder", "path": str(images),
                                                 "image_size": size, "channels": channels})
    line = refused(capsys, tmp_path / "home", str(path))
    assert str(images) in line and "img00.png" in line and "img11.png" in line
    assert f"mixed {what}s" in line


def test_a_corrupt_image_is_named(tmp_path, capsys):
    images = tmp_path / "imgs"
    _images(images, [((32, 32), "RGB")] * 12)
    corrupt = images / "img05.png"
    corrupt.write_bytes(corrupt.read_bytes()[:40])  # a PNG cut short, as by a failed copy
    path = pipeline_file(tmp_path, GLYPHS, data={"kind": "image_folder", "path": str(images),
                                                 "image_size": [32, 32], "channels": 3})
    line = refused(capsys, tmp_path / "home", str(path))
    assert str(corrupt) in line and "not a readable image" in line


def test_pipeline_file_that_does_not_exist(tmp_path, capsys):
    missing = tmp_path / "nope.yaml"
    line = refused(capsys, tmp_path / "home", str(missing))
    assert str(missing) in line


def test_data_path_that_does_not_exist(tmp_path, capsys):
    missing = tmp_path / "absent.npy"
    path = pipeline_file(tmp_path, data={"kind": "npy", "path": str(missing)})
    line = refused(capsys, tmp_path / "home", str(path))
    assert str(missing) in line


@pytest.mark.parametrize("flag", ["--from", "--only"])
def test_unknown_stage_name(tmp_path, capsys, flag):
    path = pipeline_file(tmp_path)
    line = refused(capsys, tmp_path / "home", str(path), flag, "train_refinr")
    assert flag in line and "train_refinr" in line


def test_the_refusal_through_python_m_wsfm_cli(tmp_path):
    """The same contract end to end: a fresh interpreter, its exit status and stderr."""
    path = pipeline_file(tmp_path, flow={"t0": 1.0})
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "WSFM_HOME")}
    proc = subprocess.run([sys.executable, "-m", "wsfm.cli", "run", str(path), "--home",
                           str(home)], capture_output=True, text=True, timeout=300, env=env,
                          cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("wsfm: error: ")
    assert str(path) in proc.stderr and "t0" in proc.stderr
    assert proc.stdout == "" and not home.exists()
