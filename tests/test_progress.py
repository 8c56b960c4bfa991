"""Long work shows its rate: the shared progress bar prints items per second beside the count."""

import io
import re
import time

from rich.console import Console

from assay.display import progress_tracker


def test_progress_bar_shows_items_per_second():
    out = io.StringIO()
    with progress_tracker(Console(file=out, width=120, force_terminal=False)) as track:
        advance = track("predict", 10)
        for _ in range(10):
            time.sleep(0.02)
            advance(1)
    line = out.getvalue().strip().splitlines()[-1]
    rate = re.search(r"10/10 ([\d.]+)/s", line)
    assert rate and 5 < float(rate.group(1)) <= 60, line  # ten items in about 0.2 s


def test_work_done_in_one_batch_shows_its_average_rate_not_a_burst():
    out = io.StringIO()
    with progress_tracker(Console(file=out, width=120, force_terminal=False)) as track:
        advance = track("predict", 8)
        time.sleep(0.4)
        advance(8)  # a batch of 8 predictions lands at once
    rate = re.search(r"8/8 ([\d.]+)/s", out.getvalue().strip().splitlines()[-1])
    assert rate and 5 < float(rate.group(1)) <= 25  # 8 in about 0.4 s
