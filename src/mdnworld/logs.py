"""Training logs: scalars to ``log.jsonl`` (one JSON object per line) and to TensorBoard."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mdnworld.io import atomic_open


class Logger:
    """Scalars to ``log.jsonl`` (one JSON object per line) and to TensorBoard (``tb/``).

    On resume, rows past ``resume_step`` (written after the checkpoint, before a stop) are
    dropped, so the log reads as if the run had never stopped.
    """

    def __init__(self, folder: Path, resume_step: int = 0, tensorboard: bool = True) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / "log.jsonl"
        rows = []
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by a stop
                if row.get("step", 0) <= resume_step:
                    rows.append(line)
        with atomic_open(self.path, "w") as f:
            f.write("".join(r + "\n" for r in rows))
        self._f = open(self.path, "a")  # noqa: SIM115 - closed in close()
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(folder / "tb"), purge_step=resume_step + 1)

    def log(self, step: int, tags: dict[str, str] | None = None, **scalars: float) -> None:
        """One row: ``scalars`` go to both, ``tags`` (text, e.g. the machine) to the JSONL only."""
        scalars = {k: float(v.item() if hasattr(v, "item") else v) for k, v in scalars.items()}
        row = {"step": step, **scalars, **(tags or {})}
        self._f.write(json.dumps(row) + "\n")
        self._f.flush()
        if self._tb is not None:
            for k, v in scalars.items():
                self._tb.add_scalar(k, v, step)

    def close(self) -> None:
        self._f.close()
        if self._tb is not None:
            self._tb.close()


def read_log(path: Path) -> list[dict[str, Any]]:
    """All complete rows of a ``log.jsonl``."""
    rows = []
    for line in Path(path).read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows
