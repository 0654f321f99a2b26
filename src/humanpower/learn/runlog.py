"""Metrics logging: a CSV file, TensorBoard scalars and the progress bar, fed one dict per log row."""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm


class RunLogger:
    """Writes metric rows to ``metrics.csv`` and TensorBoard, and shows a progress bar over env steps.

    Columns are fixed by the first row written in a run folder (later new keys go to TensorBoard only), so
    a resumed run keeps appending to the same CSV.
    """

    def __init__(
        self, root: Path | None, total_steps: int, initial_steps: int = 0, progress: bool = True
    ) -> None:
        self.root = root
        self._csv_columns: list[str] | None = None
        self._tb: Any = None
        if root is not None:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(root / "tb"), purge_step=initial_steps or None)
            csv_path = root / "metrics.csv"
            if csv_path.is_file() and csv_path.stat().st_size > 0:
                with csv_path.open() as f:
                    self._csv_columns = next(csv.reader(f))
        self.bar = tqdm(
            total=total_steps,
            initial=initial_steps,
            unit="step",
            disable=not progress,
            dynamic_ncols=True,
            file=sys.stderr,
        )

    def advance(self, env_steps: int) -> None:
        self.bar.update(env_steps)

    def log(
        self, row: dict[str, float | int | str], step: int, postfix: dict[str, str] | None = None
    ) -> None:
        if postfix:
            self.bar.set_postfix(postfix, refresh=False)
        if self.root is None:
            return
        for key, value in row.items():
            if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(float(value)):
                self._tb.add_scalar(key, float(value), step)
        path = self.root / "metrics.csv"
        new = self._csv_columns is None
        if new:
            self._csv_columns = list(row)
        assert self._csv_columns is not None
        with path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self._csv_columns, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(row)

    def close(self) -> None:
        self.bar.close()
        if self._tb is not None:
            self._tb.flush()
            self._tb.close()
