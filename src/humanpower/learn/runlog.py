"""Metrics logging: a CSV file, TensorBoard scalars and progress output, fed one dict per log row.

Progress goes to stderr: a progress bar on a terminal; otherwise (a pipe, a log file) one plain line per logged
row, so that logs of batch jobs are not filled with carriage-return updates.
"""

from __future__ import annotations

import csv
import io
import math
import sys
from pathlib import Path
from typing import Any, TextIO

from tqdm import tqdm

from humanpower.learn.checkpoint import atomic_write_text, with_path


class RunLogger:
    """Writes metric rows to ``metrics.csv`` and TensorBoard, and shows progress over env steps.

    Columns are fixed by the first row written in a run folder (later new keys go to TensorBoard only), so
    a resumed run keeps appending to the same CSV. The TensorBoard writer is opened at the first row (a run that
    logs nothing adds no event file). ``purge_after``: on resume, the env step of the checkpoint; TensorBoard then
    hides the points the interrupted run logged after it (and keeps the one at that step).
    """

    def __init__(
        self,
        root: Path | None,
        total_steps: int,
        initial_steps: int = 0,
        progress: bool = True,
        *,
        purge_after: int | None = None,
        stream: TextIO | None = None,
    ) -> None:
        self.root = root
        self.total_steps = total_steps
        self.purge_after = purge_after
        self._stream = stream if stream is not None else sys.stderr
        self._csv_columns: list[str] | None = None
        self._tb: Any = None
        if root is not None:
            csv_path = root / "metrics.csv"
            if csv_path.is_file() and csv_path.stat().st_size > 0:
                with csv_path.open(newline="") as f:
                    self._csv_columns = next(csv.reader(f))
        interactive = progress and self._stream.isatty()
        self._plain_lines = progress and not interactive
        self.bar = tqdm(
            total=total_steps,
            initial=initial_steps,
            unit="step",
            disable=not interactive,
            dynamic_ncols=True,
            file=self._stream,
        )

    def advance(self, env_steps: int) -> None:
        self.bar.update(env_steps)

    def _writer(self) -> Any:
        if self._tb is None:
            assert self.root is not None
            from torch.utils.tensorboard import SummaryWriter

            purge_step = None if self.purge_after is None else self.purge_after + 1  # hides steps >= purge_step
            self._tb = SummaryWriter(str(self.root / "tb"), purge_step=purge_step)
        return self._tb

    def log(self, row: dict[str, float | int | str], step: int, postfix: dict[str, str] | None = None) -> None:
        if postfix:
            self.bar.set_postfix(postfix, refresh=False)
        if self._plain_lines:
            self._print_line(row, step, postfix or {})
        if self.root is None:
            return
        try:
            tb = self._writer()
            for key, value in row.items():
                if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(float(value)):
                    tb.add_scalar(key, float(value), step)
        except OSError as exc:  # raised again here when TensorBoard's writer thread failed
            raise with_path(exc, self.root / "tb") from exc
        path = self.root / "metrics.csv"
        new = self._csv_columns is None
        if new:
            self._csv_columns = list(row)
        assert self._csv_columns is not None
        try:
            with path.open("a", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=self._csv_columns, extrasaction="ignore")
                if new:
                    writer.writeheader()
                writer.writerow(row)
        except OSError as exc:
            raise with_path(exc, path) from exc

    def _print_line(self, row: dict[str, float | int | str], step: int, postfix: dict[str, str]) -> None:
        share = step / self.total_steps if self.total_steps else 1.0
        parts = [f"episode {row.get('episode', '?')}", f"step {step}/{self.total_steps} ({share:.0%})"]
        parts += [f"{k}={v}" for k, v in postfix.items() if k != "ep"]
        print("  ".join(parts), file=self._stream, flush=True)

    def flush(self) -> None:
        """Write buffered TensorBoard events to disk (before a checkpoint, so a kill loses none it covers)."""
        if self._tb is not None and self.root is not None:
            try:
                self._tb.flush()
            except OSError as exc:
                raise with_path(exc, self.root / "tb") from exc

    def close(self) -> None:
        self.bar.close()
        if self._tb is not None and self.root is not None:
            try:
                self._tb.flush()
                self._tb.close()
            except OSError as exc:
                raise with_path(exc, self.root / "tb") from exc


def truncate_metrics(path: Path, last_step: int) -> int:
    """Drop the rows of ``metrics.csv`` logged after env step ``last_step`` and any partial last line.

    A run killed after its last checkpoint logged rows that a resume from that checkpoint logs again; without this
    they would repeat (and go backwards). A file whose header is damaged is removed. Returns the rows dropped.
    """
    if not path.is_file():
        return 0
    text = path.read_text(encoding="utf-8", errors="replace")
    rows = list(csv.reader(io.StringIO(text)))
    if text and not text.endswith("\n"):
        rows = rows[:-1]  # cut short by a kill or a full disk
    if not rows or "total_steps" not in rows[0]:
        path.unlink()
        return max(len(rows) - 1, 0)
    header, body = rows[0], rows[1:]
    col = header.index("total_steps")
    kept = [r for r in body if len(r) == len(header) and _step(r[col]) <= last_step]
    dropped = len(body) - len(kept)
    if dropped or not text.endswith("\n"):
        out = io.StringIO()
        csv.writer(out).writerows([header, *kept])
        atomic_write_text(path, out.getvalue())
    return dropped


def _step(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        return math.inf
