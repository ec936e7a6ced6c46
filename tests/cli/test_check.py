"""``wsfm check PIPELINE``: the file and the data checked as ``wsfm run`` checks them, with
nothing started or written."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tests.helpers import ROOT
from wsfm.cli import app as cli


def pipeline(tmp_path, rows, column="x"):
    path = tmp_path / "data.parquet"
    pq.write_table(pa.table({"x": pa.array(rows, type=pa.list_(pa.float64()))}), path)
    yaml = tmp_path / "p.yaml"
    yaml.write_text(f"name: vectors\ndata: {{kind: parquet, path: {path}, column: {column}}}\n")
    return yaml, path


def test_good_data_is_one_line_and_nothing_is_written(tmp_path, capsys):
    yaml, _ = pipeline(tmp_path, np.ones((40, 3)).tolist())
    home = tmp_path / "home"
    assert cli.main(["check", str(yaml), "--home", str(home)]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith("vectors (profile default): data ok: parquet, ")
    assert out.endswith("held out (3 values each)")
    train, test = (int(w.replace(",", "")) for w in out.split() if w.replace(",", "").isdigit())
    assert train + test == 40
    assert not home.exists()


def test_the_first_bad_row_is_named_by_file_and_row(tmp_path, capsys):
    rows = np.ones((40, 3)).tolist()
    rows[17][1] = float("inf")
    yaml, path = pipeline(tmp_path, rows)
    assert cli.main(["check", str(yaml)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"wsfm: error: {path}: row 17: NaN or infinite values in column 'x'")


def test_a_bad_key_names_the_key_and_the_file(tmp_path, capsys):
    yaml, _ = pipeline(tmp_path, np.ones((40, 3)).tolist())
    yaml.write_text(yaml.read_text() + "sped: 1\n")
    assert cli.main(["check", str(yaml)]) == 2
    err = capsys.readouterr().err
    assert "sped" in err and str(yaml) in err


def test_a_built_in_task_is_checked_too(capsys):
    assert cli.main(["check", str(ROOT / "pipelines/toy2d.yaml"), "--profile", "smoke"]) == 0
    assert "data ok: toy2d, " in capsys.readouterr().out


def test_a_keyed_source_is_counted_as_it_streams_as_its_loader_splits_it(tmp_path, capsys):
    """Three files of 9,000 rows, checked a batch at a time: the same sides as the source
    loaded whole."""
    from wsfm.config import load_pipeline
    from wsfm.data.datasets import load_dataset

    folder = tmp_path / "rows"
    folder.mkdir()
    x = np.random.default_rng(0).normal(size=(9000, 2))
    for i, part in enumerate(np.array_split(x, 3)):
        pq.write_table(pa.table({"x": pa.array(part.tolist(), type=pa.list_(pa.float64()))}),
                       folder / f"part-{i}.parquet")
    yaml = tmp_path / "p.yaml"
    yaml.write_text(f"name: vectors\ndata: {{kind: parquet, path: {folder}, column: x}}\n")
    assert cli.main(["check", str(yaml)]) == 0
    data = load_dataset(load_pipeline(yaml).data)
    assert capsys.readouterr().out.strip().endswith(
        f"data ok: parquet, {len(data.train):,} training rows and {len(data.test):,} held out "
        "(2 values each)")
