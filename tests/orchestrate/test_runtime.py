"""RayRuntime.map on a real local Ray: order, retries that apply, errors that name the item."""

import pytest

from wsfm.orchestrate.runtime import MapError, RayRuntime


def _runtime(tmp_path, retries=2):
    return RayRuntime(storage_path=str(tmp_path / "ray"), run_name="t", max_retries=retries)


def test_results_come_back_in_order_with_progress(tmp_path, ray_local, capsys):
    out = _runtime(tmp_path).map(lambda x: x * x, list(range(7)), desc="squares", unit="jobs",
                                 work=lambda x: 10, work_unit="things")
    assert out == [x * x for x in range(7)]
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("squares  0/7 jobs")
    assert lines[-1].startswith("squares  7/7 jobs") and "70 things" in lines[-1]


def test_a_raising_task_is_retried(tmp_path, ray_local):
    marker = tmp_path / "raised"

    def flaky(x):
        if x == 2 and not marker.exists():
            marker.touch()
            raise OSError("transient")
        return x + 1

    assert _runtime(tmp_path).map(flaky, [0, 1, 2, 3]) == [1, 2, 3, 4]
    assert marker.exists()  # it did fail once


class Job:
    def __init__(self, i):
        self.i = i

    def __str__(self):
        return f"job-{self.i}"


def test_a_task_that_keeps_failing_is_named_and_the_others_finish(tmp_path, ray_local):
    done = tmp_path / "done"
    done.mkdir()
    attempts = tmp_path / "attempts"
    attempts.mkdir()

    def work(job):
        if job.i == 1:
            (attempts / str(len(list(attempts.iterdir())))).touch()
            raise ValueError("bad draft")
        (done / str(job.i)).touch()
        return job.i

    with pytest.raises(MapError) as err:
        _runtime(tmp_path, retries=2).map(work, [Job(i) for i in range(4)])
    assert "job-1: ValueError: bad draft" in str(err.value)
    assert "1 of 4 tasks failed after 2 retries" in str(err.value)
    assert sorted(p.name for p in done.iterdir()) == ["0", "2", "3"]
    assert len(list(attempts.iterdir())) == 3  # the first try and two retries


def test_a_killed_worker_that_keeps_dying_is_named(tmp_path, ray_local):
    import os
    import signal

    def die(x):
        if x == 0:
            os.kill(os.getpid(), signal.SIGKILL)
        return x

    with pytest.raises(MapError, match=r"job-0: .*(Worker|Crashed|died)"):
        _runtime(tmp_path, retries=1).map(lambda j: die(j.i), [Job(0), Job(1)])


def test_local_runtime_maps_in_order_and_names_every_failed_item():
    from wsfm.orchestrate.local import LocalRuntime

    assert LocalRuntime().map(lambda x: x * x, list(range(5))) == [0, 1, 4, 9, 16]
    seen = []

    def flaky(x):
        seen.append(x)
        if x in (1, 3) and seen.count(x) < 3:  # 1 and 3 need two retries
            raise OSError(f"transient {x}")
        return x

    assert LocalRuntime(max_retries=2).map(flaky, [0, 1, 2, 3]) == [0, 1, 2, 3]

    def odd_fails(x):
        if x % 2:
            raise OSError(f"odd {x}")
        return x

    with pytest.raises(MapError, match=r"2 of 4 tasks failed.*1: OSError: odd 1.*3: OSError"):
        LocalRuntime().map(odd_fails, [0, 1, 2, 3])


def test_local_runtime_trains_a_pipeline_config_in_process(tmp_path, tiny_config):
    """A pipeline's 2-worker training config trains in this process (one worker, the same
    global batch) and leaves the stage's files, as on Ray Train."""
    import json

    from wsfm.orchestrate.local import LocalRuntime
    from wsfm.train.spec import TrainSpec

    assert tiny_config.train.num_workers == 2
    spec = TrainSpec(mode="cold", data=tiny_config.data, flow=tiny_config.flow,
                     model=tiny_config.model, train=tiny_config.train, dim=2,
                     out_dir=str(tmp_path / "out"))
    with pytest.warns(UserWarning, match="num_workers=2 is ignored"):
        summary = LocalRuntime().train(spec)
    assert summary["steps"] == tiny_config.train.steps and summary["world_size"] == 1
    written = json.loads((tmp_path / "out" / "train_summary.json").read_text())
    assert written["world_size"] == 1 and (tmp_path / "out" / "model.pt").is_file()
