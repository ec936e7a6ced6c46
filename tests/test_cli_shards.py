"""``wsfm shards verify`` / ``wsfm shards stats`` on a real stage output."""

import dataclasses
import hashlib
import subprocess
import sys

import pytest

from tests.helpers import context
from wsfm.cli import main
from wsfm.orchestrate.local import LocalRuntime
from wsfm.stages.generate_drafts import generate_drafts


@pytest.fixture
def shards(tmp_path, tiny_config, draft_dir):
    cfg = dataclasses.replace(tiny_config, shards=dataclasses.replace(
        tiny_config.shards, num_shards=3, per_shard=500))
    out = tmp_path / "shards"
    generate_drafts(context(cfg, out, LocalRuntime(), pretrain_draft=draft_dir))
    return cfg, out, draft_dir


def test_verify_names_a_truncated_shard_and_a_rerun_repairs_it(shards, capsys):
    cfg, out, draft = shards
    assert main(["shards", "verify", str(out)]) == 0
    assert "ok: 3 shards, 1,500 drafts" in capsys.readouterr().out

    bad = out / "shard-000001.tar"
    good_sha = hashlib.sha256(bad.read_bytes()).hexdigest()
    bad.write_bytes(bad.read_bytes()[:2048])
    assert main(["shards", "verify", str(out)]) == 1
    printed = capsys.readouterr().out
    assert "BAD" in printed and "shard-000001.tar" in printed
    assert "shard-000000.tar" not in printed and "shard-000002.tar" not in printed

    result = generate_drafts(context(cfg, out, LocalRuntime(), pretrain_draft=draft))
    assert result.tags["shards_repaired"] == "shard-000001.tar"
    assert "made again: shard-000001.tar" in capsys.readouterr().out
    assert hashlib.sha256(bad.read_bytes()).hexdigest() == good_sha
    assert main(["shards", "verify", str(out)]) == 0


def test_stats_prints_counts_and_sizes(shards):
    _, out, _ = shards
    # Through the installed entry point, as a user would run it.
    run = subprocess.run([sys.executable, "-m", "wsfm.cli", "shards", "stats", str(out),
                          "--per-shard"], capture_output=True, text=True, check=True)
    size = sum(p.stat().st_size for p in out.glob("shard-*.tar"))
    assert f"3 shards, 1,500 drafts, {size / 1e6:.2f} MB" in run.stdout
    assert "drafts per shard: min 500  median 500  max 500" in run.stdout
    assert run.stdout.count("shard-00000") == 3


def test_verify_exits_non_zero_without_a_manifest(tmp_path, capsys):
    assert main(["shards", "verify", str(tmp_path)]) == 2
    assert "no shard manifest" in capsys.readouterr().err
