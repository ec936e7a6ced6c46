"""``wsfm sample`` for each kind and ``wsfm models list|promote``, against a real store."""

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from PIL import Image

from tests.bundles import make_bundle
from wsfm.champion import Score
from wsfm.cli import main
from wsfm.stages.base import ModelRelease
from wsfm.tracking import Tracker, publish_model, tracking_uri


def register(home, kind: str, quality: float, name: str | None = None) -> dict:
    uri = tracking_uri(home)
    run_id = Tracker(uri, "models", home / "mlartifacts").start_run("register")
    bundle = make_bundle(kind, home / f"bundle-{kind}-{quality}")
    return publish_model(uri, run_id, ModelRelease(bundle, name or f"wsfm-{kind}", True,
                                                   Score("q", quality, 0.0, True, (quality,) * 3)))


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path / "home"


def test_sample_writes_each_kind_in_its_own_form(home, capsys):
    for kind in ("vector", "image", "text"):
        register(home, kind, 1.0)
    out = home.parent
    assert main(["sample", "--home", str(home), "--model", "models:/wsfm-vector@champion",
                 "-n", "5", "--out", str(out / "v.npy")]) == 0
    assert np.load(out / "v.npy").shape == (5, 2)
    assert main(["sample", "--home", str(home), "--model", "models:/wsfm-image@champion",
                 "-n", "10", "--out", str(out / "img.png")]) == 0
    assert np.load(out / "img.npy").shape == (10, 1, 4, 4)
    grid = Image.open(out / "img.png")
    assert grid.size == (8 * 4, 2 * 4)  # 8 columns, 2 rows of 4x4 images
    assert main(["sample", "--home", str(home), "--model", "models:/wsfm-text@champion",
                 "-n", "6", "--seed", "2", "--out", str(out / "words.txt")]) == 0
    lines = (out / "words.txt").read_text().split("\n")
    assert len(lines) == 7 and lines[-1] == ""  # one sample per line
    assert "wrote 6 samples" in capsys.readouterr().out


def test_models_list_and_promote_by_hand(home, capsys, monkeypatch):
    register(home, "vector", 1.0, "wsfm-m")
    register(home, "vector", 2.0, "wsfm-m")  # worse: the champion stays v1
    assert main(["models", "list", "--home", str(home)]) == 0
    text = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in text.splitlines()[2:]}
    assert rows["1"][1] == "champion" and rows["2"][1] == "-"
    assert rows["2"][3] == "2" and rows["2"][-1] == "kept"
    assert main(["models", "promote", "wsfm-m", "2", "--home", str(home),
                 "--reason", "rollback test", "--by", "alice"]) == 0
    client = MlflowClient(tracking_uri(home))
    v2 = client.get_model_version("wsfm-m", "2")
    assert v2.aliases == ["champion"] and v2.tags["wsfm.promoted_by"] == "alice"
    assert v2.tags["wsfm.promote_reason"] == "rollback test"
    assert v2.tags["wsfm.previous_champion"] == "1"
    assert main(["models", "promote", "wsfm-m", "9", "--home", str(home),
                 "--reason", "x"]) == 2  # no such version: one line, exit 2
    assert "no version 9" in capsys.readouterr().err
