"""Progress of an epoch in images: a tqdm bar on a terminal, plain lines in a log.

A bar redraws itself with carriage returns, which a log file keeps as one endless line; so when stderr is not
a terminal (nohup, CI, `> run.log`) a plain line with images/s and the time left goes to stdout every 10% of
the epoch or every minute, whichever comes first.
"""

import sys
import time

LOG_EVERY_FRACTION = 0.1  # a line per tenth of the epoch ...
LOG_EVERY_SECONDS = 60.0  # ... or per minute on long epochs


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


class LogLines:
    """`update(n)` / `close()` like tqdm, printing 'desc: done/total images (p%), r img/s, t left'."""

    def __init__(self, total: int, desc: str, out=None):
        self.total, self.desc, self.out = total, desc, out or sys.stdout
        self.done, self.printed, self.start = 0, 0, time.monotonic()
        self.next_count, self.next_time = total * LOG_EVERY_FRACTION, self.start + LOG_EVERY_SECONDS

    def update(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if self.done >= self.next_count or now >= self.next_time:
            self.next_count = self.done + self.total * LOG_EVERY_FRACTION
            self.next_time = now + LOG_EVERY_SECONDS
            self._line(now)

    def _line(self, now: float) -> None:
        self.printed = self.done
        rate = self.done / max(now - self.start, 1e-9)
        left = (self.total - self.done) / rate if rate > 0 else 0.0
        pct = 100.0 * self.done / max(1, self.total)
        print(
            f"{self.desc}: {self.done}/{self.total} images ({pct:.0f}%), {rate:.1f} img/s, {duration(left)} left",
            file=self.out,
            flush=True,
        )

    def close(self) -> None:
        if self.printed != self.done:
            self._line(time.monotonic())


class Silent:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def epoch_progress(total_images: int, desc: str, enabled: bool):
    """The right reporter for where output goes; `enabled` False (DDP ranks > 0) reports nothing."""
    if not enabled:
        return Silent()
    if sys.stderr.isatty():
        try:
            from tqdm import tqdm

            return tqdm(
                total=total_images,
                desc=desc,
                unit="img",
                dynamic_ncols=True,
                file=sys.stderr,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} img "
                "[{elapsed}<{remaining}, {rate_fmt}]",
            )
        except ImportError:  # Debian: apt-get install python3-tqdm
            pass
    return LogLines(total_images, desc)
