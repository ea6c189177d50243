"""Progress lines in a log: one per tenth of the epoch with images/s and time left, a last one at the end."""

import io
import re

from training import progress


def test_durations_read_as_seconds_minutes_or_hours():
    assert [progress.duration(s) for s in (0, 59.4, 61, 3600, 7322)] == ["0s", "59s", "1m01s", "1h00m", "2h02m"]


def test_a_log_gets_a_line_per_tenth_of_the_epoch_and_a_final_one():
    out = io.StringIO()
    bar = progress.LogLines(100, "epoch 1/3", out)
    for _ in range(25):
        bar.update(4)
    bar.close()
    lines = out.getvalue().splitlines()
    counts = [int(re.match(r"epoch 1/3: (\d+)/100 images", line).group(1)) for line in lines]
    assert counts == [12, 24, 36, 48, 60, 72, 84, 96, 100]  # every 10% of 100 reached in steps of 4, then the end
    assert lines[-1].startswith("epoch 1/3: 100/100 images (100%), ") and lines[-1].endswith(" 0s left")


def test_close_prints_nothing_more_when_the_last_update_was_printed():
    out = io.StringIO()
    bar = progress.LogLines(10, "x", out)
    bar.update(10)
    bar.close()
    assert len(out.getvalue().splitlines()) == 1


def test_other_ranks_report_nothing_and_a_log_file_gets_lines_not_a_bar(capsys):
    silent = progress.epoch_progress(10, "x", enabled=False)
    silent.update(10)
    silent.close()
    assert isinstance(silent, progress.Silent)
    assert isinstance(progress.epoch_progress(10, "x", enabled=True), progress.LogLines)  # pytest's stderr: no tty
    assert capsys.readouterr().out == ""
