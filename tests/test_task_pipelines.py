"""The digits, glyphs, words and text pipelines' smoke profiles, end to end through the CLI;
and users' 32x32 colour images through the glyphs pipeline."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from tests.helpers import ROOT, job_stages, stage_lines, wsfm
from wsfm.config import load_pipeline
from wsfm.orchestrate.store import ArtifactStore

pytestmark = pytest.mark.pipeline


@pytest.mark.parametrize("task,metric,lower", [("digits", "fd", True),
                                               ("glyphs", "fd", True),
                                               ("words", "novel_valid_rate", False),
                                               ("text", "nll", True)])
def test_task_smoke_pipeline(tmp_path, task, metric, lower):
    home = tmp_path / "home"
    pipeline = ROOT / "pipelines" / f"{task}.yaml"
    proc = wsfm("run", str(pipeline), "--profile", "smoke", home=home)
    assert proc.returncode == 0, proc.stderr[-3000:]
    job = job_stages(load_pipeline(pipeline, profile="smoke"))
    assert stage_lines(proc.stdout) == {name: "done" for name in job}
    store = ArtifactStore(home / "artifacts", task)
    (evaluated,) = (store.root / task / "evaluate").iterdir()
    report = json.loads((evaluated / "metrics.json").read_text())
    assert report["task"] == task and report["metric"] == metric
    assert report["lower_is_better"] is lower
    methods = {r["method"] for r in report["rows"]}
    assert {"draft", "cold", "zero_shot"} <= methods
    # warm_ot; warm_nearest for words; warm_substitute for text
    assert any(m.startswith("warm") for m in methods)
    assert report["speedup_nfe"] == 10.0
    # The reference (real held-out data) beats the draft on the task's own metric.
    draft = next(r for r in report["rows"] if r["method"] == "draft")
    assert (report["reference"] < draft["quality"]) if lower else (
        report["reference"] > draft["quality"])


def test_users_32x32_colour_image_folder_through_the_glyphs_pipeline(tmp_path):
    """A folder of 32x32 RGB PNGs (glyphs tinted per face, so colour carries information),
    run by the glyphs pipeline's smoke profile: unlabelled images are judged in PCA space,
    and the registered model samples (n, 3, 32, 32)."""
    from PIL import Image

    from wsfm.data.glyphs import render_glyphs

    glyphs = render_glyphs(1, seed=0)
    folder = tmp_path / "imgs"
    folder.mkdir()
    tints = np.random.default_rng(0).uniform(0.3, 1.0, size=(len(glyphs.face_names), 3))
    for i in range(0, len(glyphs.labels), 7):  # 194 images
        ink = (glyphs.images[i].reshape(32, 32, 1) + 1) / 2
        rgb = (ink * tints[glyphs.faces[i]] * 255).round().astype(np.uint8)
        Image.fromarray(rgb, "RGB").save(folder / f"g{i:04d}.png")
    doc = yaml.safe_load((ROOT / "pipelines" / "glyphs.yaml").read_text())
    doc["name"] = doc["task"] = "users-images"
    doc["data"] = {"kind": "image_folder", "path": str(folder), "image_size": [32, 32],
                   "channels": 3}
    pipeline = tmp_path / "images.yaml"
    pipeline.write_text(yaml.safe_dump(doc))
    home = tmp_path / "home"
    proc = wsfm("run", str(pipeline), "--profile", "smoke", home=home)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert set(stage_lines(proc.stdout).values()) == {"done"}
    (evaluated,) = (home / "artifacts" / "users-images" / "evaluate").iterdir()
    report = json.loads((evaluated / "metrics.json").read_text())
    assert report["metric"] == "fd" and "confidence" not in report["reference_metrics"]
    proc = wsfm("sample", "--model", "models:/wsfm-users-images/1", "-n", "4", "--out",
                str(tmp_path / "s.png"), home=home)
    assert proc.returncode == 0, proc.stderr[-3000:]
    samples = np.load(tmp_path / "s.npy")
    assert samples.shape == (4, 3, 32, 32) and (tmp_path / "s.png").is_file()
