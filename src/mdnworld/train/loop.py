"""The resumable training loop that V's and M's trainers share; the math stays in each trainer.

One run is ``epochs`` epochs of ``steps_per_epoch`` optimizer steps over ``n_items`` items in
batches of ``batch_size``. A trainer reads like this::

    loop = TrainLoop(cfg, n_items, seed=cfg.seed, desc="train-vae")
    loop.step = saved_step                        # resume: the steps already done
    for epoch in loop.epochs(checkpoint):         # checkpoint(step) saves everything
        for ids in loop.steps(epoch.batch_ids):   # item ids of one batch
            ...                                   # forward, loss, backward, optimizer step
            if loop.end_step(len(ids), loss):     # counts the step; True: log it now
                logger.log(loop.step, ...)
        ...                                       # end of epoch: validate, log, loop.write(...)

What the loop owns:
- the order: epoch e visits the items in a permutation seeded by (seed, e), so a run resumed
  at step s (``epoch.batch_ids`` starts at batch s mod steps_per_epoch) sees the batches it
  would have seen without stopping;
- the checkpoint timer: ``checkpoint(step)`` every ``checkpoint_every`` steps or
  ``checkpoint_minutes`` minutes, whichever comes first, and after every epoch's own code;
- a finite loss: the losses given to ``end_step`` are checked at each logged step and before
  every checkpoint (one device sync each, not one per step); a non-finite one raises a
  ``DataError`` naming the step, and nothing after it is saved;
- the progress bar (``loop.bar``), and ``loop.rate``: items per second over the steps since
  the last logged one, all the loop's work included (on a GPU, the queued kernels too);
- the test hook ``stop_after_steps``: after that many steps of this loop, ``Stopped`` is raised
  where a kill could have struck (before the step's checkpoint, or after an epoch's end), and
  nothing more is saved. Trainers catch it and return what they have.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import numpy as np
import torch
from tqdm import tqdm

from mdnworld.errors import DataError

B = TypeVar("B")


class LoopConfig(Protocol):
    """The config fields the loop reads (``VAEConfig`` and ``RNNConfig`` have them)."""

    epochs: int
    batch_size: int
    log_every: int
    checkpoint_every: int
    checkpoint_minutes: float


class Stopped(Exception):
    """``stop_after_steps`` was reached: the run stops as if killed (tests only)."""


def epoch_order(seed: int, epoch: int, n_items: int) -> np.ndarray:
    """The order in which epoch ``epoch`` visits ``n_items`` items: the same for the same
    (seed, epoch), whenever it runs."""
    return np.random.default_rng([seed, epoch]).permutation(n_items)


def batch_ids(order: np.ndarray, batch_size: int, start: int = 0) -> Iterator[np.ndarray]:
    """``order`` cut into batches of ``batch_size`` (the last may be smaller), from batch
    ``start`` on."""
    for b in range(start, math.ceil(len(order) / batch_size)):
        yield order[b * batch_size : (b + 1) * batch_size]


@dataclass(frozen=True)
class Epoch:
    """One epoch to run: ``index`` (0-based), ``start`` (its first batch: > 0 when resumed
    mid-epoch) and the item ids of its batches from ``start`` on."""

    index: int
    start: int
    batch_ids: Iterator[np.ndarray]


class TrainLoop:
    """Epochs of seeded batch order, resumable at any step; see the module docstring."""

    def __init__(
        self,
        cfg: LoopConfig,
        n_items: int,
        *,
        seed: int,
        desc: str,
        stop_after_steps: int | None = None,
    ) -> None:
        self.cfg = cfg
        self.n_items = n_items
        self.seed = seed
        self.desc = desc
        self.stop_after_steps = stop_after_steps
        self.steps_per_epoch = math.ceil(n_items / cfg.batch_size)
        self.total_steps = self.steps_per_epoch * cfg.epochs
        self.step = 0
        """Optimizer steps done (set it to the checkpoint's step to resume)."""
        self.steps_run = 0
        """Steps done by this loop (the ``stop_after_steps`` count)."""
        self.rate = 0.0
        self.bar: tqdm | None = None
        self._checkpoint: Callable[[int], None] = lambda step: None
        self._last_save = time.monotonic()
        self._saved_step = 0
        self._losses: list[torch.Tensor] = []  # losses of the steps not checked yet
        self._counted = False

    @property
    def epochs_done(self) -> int:
        return self.step // self.steps_per_epoch

    def epochs(
        self,
        checkpoint: Callable[[int], None],
        stop_when: Callable[[], bool] = lambda: False,
        bar_per_epoch: bool = False,
    ) -> Iterator[Epoch]:
        """The epochs left, from the current step, until ``total_steps`` or ``stop_when()``
        (early stopping). After the caller's code for an epoch: a checkpoint.

        The progress bar counts all the steps to ``cfg.epochs``, or, with ``bar_per_epoch``
        (for a run that early stopping ends long before its maximum: its time left is
        unknown), each epoch's steps, named "epoch e/max"."""
        self._checkpoint = checkpoint
        self._last_save, self._saved_step = time.monotonic(), self.step
        self.bar = self._new_bar(bar_per_epoch)
        try:
            while self.step < self.total_steps and not stop_when():
                index, start = divmod(self.step, self.steps_per_epoch)
                if bar_per_epoch and self.bar.n == self.bar.total:  # the last epoch's
                    self.bar.close()
                    self.bar = self._new_bar(bar_per_epoch)
                order = epoch_order(self.seed, index, self.n_items)
                yield Epoch(index, start, batch_ids(order, self.cfg.batch_size, start))
                if self.step % self.steps_per_epoch:
                    raise RuntimeError(f"{self.desc}: epoch {index} ended at step {self.step}")
                self.save()
                self._stop_if_due()
        finally:
            self.bar.close()

    def _new_bar(self, per_epoch: bool) -> tqdm:
        """A progress bar from the current step: to the last epoch, or to this epoch's end."""
        index, start = divmod(self.step, self.steps_per_epoch)
        if not per_epoch:
            return tqdm(total=self.total_steps, initial=self.step, desc=self.desc, unit="step",
                        dynamic_ncols=True)  # fmt: skip
        desc = f"{self.desc} epoch {index + 1}/{self.cfg.epochs}"
        return tqdm(total=self.steps_per_epoch, initial=start, desc=desc, unit="step",
                    dynamic_ncols=True, leave=False)  # fmt: skip

    def steps(self, batches: Iterable[B]) -> Iterator[B]:
        """Each batch of one epoch; the caller takes one optimizer step on it and calls
        ``end_step``. Between steps: the stop hook and the checkpoint timer."""
        self._t0, self._n0 = time.perf_counter(), self.step
        for batch in batches:
            self._counted = False
            yield batch
            if not self._counted:
                raise RuntimeError(f"{self.desc}: a step ended without loop.end_step(...)")
            if self.step % self.steps_per_epoch == 0:
                return  # the epoch's end: the caller evaluates, then epochs() saves
            self._stop_if_due()
            if (
                self.step % self.cfg.checkpoint_every == 0
                or time.monotonic() - self._last_save > 60 * self.cfg.checkpoint_minutes
            ):
                self.save()

    def end_step(self, n_items: int, loss: torch.Tensor) -> bool:
        """Count the step just taken on ``n_items`` items with training loss ``loss``; True
        when it is a step to log (``loop.step`` is then its number, ``loop.rate`` its items
        per second)."""
        self._counted = True
        self.step += 1
        self.steps_run += 1
        self._losses.append(loss.detach())
        assert self.bar is not None
        self.bar.update(1)
        if self.step % self.cfg.log_every:
            return False
        self.check_losses()  # waits for the device: the time below covers the work queued
        now = time.perf_counter()
        self.rate = n_items * (self.step - self._n0) / max(now - self._t0, 1e-9)
        self._t0, self._n0 = now, self.step
        return True

    def check_losses(self) -> None:
        """Raise a ``DataError`` naming the first step whose loss was not finite."""
        if not self._losses:
            return
        finite = torch.isfinite(torch.stack(self._losses).float()).cpu()
        first = self.step - len(self._losses) + 1
        losses, self._losses = self._losses, []
        if bool(finite.all()):
            return
        i = int(np.flatnonzero(~finite.numpy())[0])
        step = first + i
        raise DataError(
            f"{self.desc}: the training loss is {float(losses[i])} at step {step} (epoch "
            f"{(step - 1) // self.steps_per_epoch + 1}); nothing after step {self._saved_step} "
            "was saved. Try a lower learning rate (lr)"
        )

    def save(self) -> None:
        """A checkpoint now (after checking the losses since the last one)."""
        self.check_losses()
        self._checkpoint(self.step)
        self._last_save, self._saved_step = time.monotonic(), self.step

    def postfix(self, **values: str) -> None:
        """Show ``values`` after the progress bar (e.g. the latest loss)."""
        assert self.bar is not None
        self.bar.set_postfix(values, refresh=False)

    def write(self, line: str) -> None:
        """Print ``line`` above the progress bar."""
        assert self.bar is not None
        self.bar.write(line)

    def _stop_if_due(self) -> None:
        if self.stop_after_steps is not None and self.steps_run >= self.stop_after_steps:
            if self.bar is not None:
                self.bar.close()
            raise Stopped(f"{self.desc}: stopped after {self.steps_run} steps")


@dataclass
class EarlyStopping:
    """Best validation NLL so far and the epochs since; saved in the checkpoint."""

    patience: int
    best_val: float | None = None
    best_epoch: int = 0
    bad_epochs: int = 0
    timed_out: bool = False  # max_minutes passed (not saved: it counts per call)

    def saved(self) -> dict[str, Any]:
        return {
            "best_val": self.best_val,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
        }

    def update(self, val: float, epoch: int) -> bool:
        """Record epoch ``epoch``'s validation NLL; True if it is the best so far."""
        if self.best_val is None or val < self.best_val:
            self.best_val, self.best_epoch, self.bad_epochs = val, epoch, 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def early(self) -> bool:
        return self.patience > 0 and self.bad_epochs >= self.patience

    def done(self) -> bool:
        return self.early or self.timed_out
