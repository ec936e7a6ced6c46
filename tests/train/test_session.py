"""The local session's checkpoint folder: only complete checkpoints count, the newest two stay."""

from pathlib import Path

from wsfm.train.session import LocalSession


def _written(tmp: Path, name: str) -> str:
    folder = tmp / f"src-{name}"
    folder.mkdir()
    (folder / "trainer.json").write_text(name)
    return str(folder)


def test_resume_takes_the_newest_complete_checkpoint_and_keeps_two(tmp_path):
    session = LocalSession(tmp_path / "checkpoints")
    assert session.resume_from() is None and (session.rank, session.world_size) == (0, 1)
    for step in (5, 10, 15):
        name = f"step-{step:06d}"
        path = session.commit(_written(tmp_path, name), name, {"loss": 1.0})
        assert path == str(tmp_path / "checkpoints" / name)
    assert [p.name for p in session.complete()] == ["step-000010", "step-000015"]
    # A checkpoint still being copied is a dot-folder: never resumed from.
    (tmp_path / "checkpoints" / ".step-000020.tmp").mkdir()
    with session.resume_from() as folder:
        assert Path(folder, "trainer.json").read_text() == "step-000015"
    with session.checkpoint("step-000010") as folder:
        assert Path(folder, "trainer.json").read_text() == "step-000010"
