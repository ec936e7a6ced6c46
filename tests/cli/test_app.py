"""The command line's error contract: users' mistakes are one line, bugs keep a traceback."""

from __future__ import annotations

import pytest

from wsfm.cli import app as cli
from wsfm.errors import DataError, InputNotFound, UserError


def test_a_users_mistake_is_one_line_and_exit_2(tmp_path, capsys):
    missing = tmp_path / "nope.yaml"
    assert cli.main(["run", str(missing), "--dry-run", "--home", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "nope.yaml" in err and err.startswith("wsfm: error:")


def test_a_missing_shard_folder_is_named(tmp_path, capsys):
    assert cli.main(["shards", "verify", str(tmp_path / "gone")]) == 2
    assert "no shard manifest" in capsys.readouterr().err


def test_an_internal_error_keeps_its_traceback(monkeypatch, tmp_path):
    def broken(args):
        raise ValueError("an internal invariant broke")  # not a UserError: a bug

    monkeypatch.setattr(cli, "_cmd_shards_verify", broken)  # the parser binds it per call
    with pytest.raises(ValueError, match="internal invariant"):
        cli.main(["shards", "verify", str(tmp_path)])


def test_user_errors_are_value_errors_and_missing_inputs_file_errors():
    assert issubclass(DataError, UserError) and issubclass(UserError, ValueError)
    assert issubclass(InputNotFound, FileNotFoundError)
