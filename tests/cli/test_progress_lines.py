"""Long work shows progress without a terminal too (issue 20): a line every so often."""

from cropmeta.progress import progress_lines


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def run(steps: list[tuple[float, int]], total: int = 10, every: float = 30.0) -> list[str]:
    """Lines written for updates at (seconds since the start, items done)."""
    clock, lines = Clock(), []
    update = progress_lines("meta-train maml", every=every, clock=clock, write=lines.append)
    for seconds, done in steps:
        clock.now = 100.0 + seconds
        update(done, total, {"val_acc": 0.5})
    return lines


def test_quick_work_writes_nothing():
    assert run([(1, 3), (2, 7), (5, 10)]) == []


def test_long_work_writes_a_line_every_interval_and_one_at_the_end():
    lines = run([(10, 1), (31, 2), (45, 3), (62, 5), (70, 8), (80, 10), (81, 10)])
    assert lines == [
        "meta-train maml: 2/10 (20 %), 0:00:31 elapsed, ~0:02:04 left  val acc 0.500",
        "meta-train maml: 5/10 (50 %), 0:01:02 elapsed, ~0:01:02 left  val acc 0.500",
        "meta-train maml: 10/10 (100 %), 0:01:20 elapsed  val acc 0.500",
    ]


def test_unknown_total_counts_only():
    assert run([(40, 4)], total=0) == ["meta-train maml: 4, 0:00:40 elapsed  val acc 0.500"]


def test_a_next_phase_is_reported_after_one_that_ended_quickly():
    """evaluate reports its phases on one line stream: a quick phase's end must not silence
    the long one after it."""
    clock, lines = Clock(), []
    update = progress_lines("evaluate", every=30, clock=clock, write=lines.append)
    for seconds, done, total in [(1, 1, 2), (2, 2, 2), (40, 3, 100), (75, 50, 100)]:
        clock.now = 100.0 + seconds
        update(done, total)
    assert lines == [
        "evaluate: 3/100 (3 %), 0:00:40 elapsed, ~0:21:33 left",
        "evaluate: 50/100 (50 %), 0:01:15 elapsed, ~0:01:15 left",
    ]
