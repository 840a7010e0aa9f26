"""How an ECS load task ended, read off DescribeTasks' documented fields (ecs.task_end):
which ends are the run's own failure, and which lost the run (measured again once)."""

from __future__ import annotations

import pytest

from cachebench.targets.aws import ecs

ARN = "arn:aws:ecs:us-east-1:123456789012:task/cachebench-load/0123456789abcdef"


def stopped(
    exit_code: int | None, stop_code: str | None, reason: str = "", container_reason: str = ""
) -> dict:
    """A STOPPED task as DescribeTasks describes it (only the fields task_end reads)."""
    container = {"name": "memtier", "lastStatus": "STOPPED"}
    if exit_code is not None:
        container["exitCode"] = exit_code
    if container_reason:
        container["reason"] = container_reason
    task = {
        "taskArn": ARN,
        "lastStatus": "STOPPED",
        "containers": [container],
        "overrides": {
            "containerOverrides": [
                {"name": "memtier", "environment": [{"name": ecs.GENERATOR_ENV, "value": "g1"}]}
            ]
        },
    }
    if stop_code:
        task["stopCode"] = stop_code
    if reason:
        task["stoppedReason"] = reason
    return task


def end_of(task: dict) -> ecs.TaskEnd:
    end = ecs.task_end(task, "memtier")
    assert end is not None
    return end


@pytest.mark.parametrize(
    ("task", "ok", "lost"),
    [
        # its tool finished: exit 0 by itself
        (stopped(0, "EssentialContainerExited", "Essential container in task exited"), True, False),
        # the tool's own error (memtier exit 1, the script's checks 78-82): a plain failure
        (
            stopped(1, "EssentialContainerExited", "Essential container in task exited"),
            False,
            False,
        ),
        (stopped(79, "EssentialContainerExited"), False, False),
        # killed by a signal: SIGKILL (the OOM killer: 137) or SIGTERM (143), not by us
        (stopped(137, "EssentialContainerExited", "", "OutOfMemoryError: killed"), False, True),
        (stopped(143, "EssentialContainerExited"), False, True),
        # a StopTask nobody here sent, whatever the container's exit
        (stopped(143, "UserInitiated", "Task stopped by user"), False, True),
        (stopped(0, "UserInitiated", "maintenance"), False, True),
        # ours: the run had failed already (or was interrupted): says nothing itself
        (stopped(143, "UserInitiated", f"{ecs.STOPPED_BY_US}run failed"), False, False),
        # the platform ended it
        (stopped(143, "SpotInterruption", "Your Spot Task was interrupted."), False, True),
        (stopped(None, "TerminationNotice", "Task stopped due to host termination"), False, True),
        (stopped(0, "ServiceSchedulerInitiated", "Scaling activity initiated"), False, True),
        # never started: ECS's capacity or agent, or the task's own set-up
        (stopped(None, "TaskFailedToStart", "TaskFailedToStart: RESOURCE:MEMORY"), False, True),
        (stopped(None, "TaskFailedToStart", "Capacity is unavailable at this time."), False, True),
        (
            stopped(None, "TaskFailedToStart", "", "CannotPullContainerError: pull access denied"),
            False,
            False,
        ),
        # no exit code: its container was never seen to end
        (stopped(None, "EssentialContainerExited"), False, True),
    ],
)
def test_which_ends_lost_the_run(task: dict, ok: bool, lost: bool) -> None:
    end = end_of(task)
    assert (end.ok, end.lost) == (ok, lost), end


def test_a_running_task_has_not_ended() -> None:
    assert ecs.task_end({**stopped(None, None), "lastStatus": "RUNNING"}, "memtier") is None


def test_the_end_names_exit_signal_stop_code_and_reasons() -> None:
    text = end_of(stopped(137, "UserInitiated", "drained", "OutOfMemoryError")).describe()
    assert text.startswith("task 0123456789abcdef (g1) stopped with exit code 137")
    assert "signal 9, SIGKILL" in text and "stop code UserInitiated" in text
    assert "reason: drained" in text and "container: OutOfMemoryError" in text
    assert "the run was lost" in text
    ours = end_of(stopped(143, "UserInitiated", f"{ecs.STOPPED_BY_US}run failed")).describe()
    assert "signal 15, SIGTERM" in ours and "stopped by cachebench" in ours
    tool = end_of(stopped(1, "EssentialContainerExited")).describe()
    assert "exit code 1;" in tool and "lost" not in tool
    gone = ecs.TaskEnd(task_id="abc", name="g0", missing=True)
    assert gone.lost and not gone.ok
    assert gone.describe() == "task abc (g0) vanished: ECS answers MISSING for it (DescribeTasks)"
