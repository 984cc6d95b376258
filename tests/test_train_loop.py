"""train/loop.py alone (no game, no model): seeded order, resume at any step, the checkpoint
timer, the stop hook and the finite-loss check, on a toy "training" whose state is the list
of batches it has seen."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest
import torch

from mdnworld.config import VAEConfig
from mdnworld.errors import DataError
from mdnworld.train.loop import Stopped, TrainLoop, batch_ids, epoch_order


def loop_cfg(**kw) -> VAEConfig:
    """Any config with the loop's fields will do; V's has them."""
    return dataclasses.replace(
        VAEConfig(epochs=3, batch_size=4, log_every=2, checkpoint_every=5), **kw
    )


N_ITEMS = 10  # 3 batches an epoch: 4, 4, 2


class Toy:
    """A training run whose "weights" are the batches seen so far; ``saved`` the last
    checkpoint, ``checkpoints`` the steps at which one was saved."""

    def __init__(self) -> None:
        self.seen: list[list[int]] = []
        self.saved: tuple[int, list[list[int]]] = (0, [])
        self.checkpoints: list[int] = []
        self.logged: list[int] = []
        self.epoch_ends: list[int] = []

    def checkpoint(self, step: int) -> None:
        self.saved = (step, list(self.seen))
        self.checkpoints.append(step)

    def run(self, cfg: VAEConfig, stop: int | None = None, loss=lambda step: 1.0) -> TrainLoop:
        loop = TrainLoop(cfg, N_ITEMS, seed=7, desc="toy", stop_after_steps=stop)
        loop.step, self.seen = self.saved[0], list(self.saved[1])  # resume
        for epoch in loop.epochs(self.checkpoint):
            for ids in loop.steps(epoch.batch_ids):
                self.seen.append(ids.tolist())
                if loop.end_step(len(ids), torch.tensor(loss(loop.step + 1))):
                    self.logged.append(loop.step)
            self.epoch_ends.append(loop.step)
        return loop


def test_epochs_visit_every_item_in_a_seeded_order() -> None:
    toy = Toy()
    loop = toy.run(loop_cfg())
    assert loop.steps_per_epoch == 3 and loop.step == loop.total_steps == 9
    for e in range(3):
        batches = toy.seen[3 * e : 3 * e + 3]
        assert [len(b) for b in batches] == [4, 4, 2]
        assert sum(batches, []) == epoch_order(7, e, N_ITEMS).tolist()
    assert toy.seen[:3] != toy.seen[3:6]  # a new order each epoch
    assert toy.logged == [2, 4, 6, 8] and toy.epoch_ends == [3, 6, 9]
    assert toy.checkpoints == [3, 5, 6, 9]  # every epoch end, and every 5 steps


def test_batch_ids_resume_mid_epoch() -> None:
    order = np.arange(10)
    assert [b.tolist() for b in batch_ids(order, 4, start=1)] == [[4, 5, 6, 7], [8, 9]]


@pytest.mark.parametrize("stops", [[1], [4], [3], [2, 2, 1], [6, 1]])
def test_stopped_anywhere_and_resumed_equals_uninterrupted(stops: list[int]) -> None:
    whole = Toy()
    whole.run(loop_cfg())
    toy = Toy()
    for stop in stops:
        with pytest.raises(Stopped):
            toy.run(loop_cfg(), stop=stop)
    toy.run(loop_cfg())
    assert toy.seen == whole.seen


def test_a_stop_strikes_before_the_steps_checkpoint_and_after_an_epoch_end() -> None:
    toy = Toy()
    with pytest.raises(Stopped):
        toy.run(loop_cfg(), stop=5)  # step 5 would checkpoint: a kill comes first
    assert toy.checkpoints == [3] and len(toy.seen) == 5
    toy = Toy()
    with pytest.raises(Stopped):
        toy.run(loop_cfg(), stop=3)  # the epoch's end is saved, then the stop
    assert toy.checkpoints == [3] and toy.epoch_ends == [3]


def test_checkpoint_minutes_zero_saves_after_every_step() -> None:
    toy = Toy()
    toy.run(loop_cfg(epochs=1, checkpoint_minutes=0.0))
    assert toy.checkpoints == [1, 2, 3]


def test_stop_when_ends_at_an_epoch_end() -> None:
    toy = Toy()
    loop = TrainLoop(loop_cfg(), N_ITEMS, seed=7, desc="toy")
    for epoch in loop.epochs(toy.checkpoint, stop_when=lambda: loop.epochs_done >= 2):
        for ids in loop.steps(epoch.batch_ids):
            loop.end_step(len(ids), torch.tensor(0.0))
    assert loop.step == 6 and toy.checkpoints == [3, 5, 6]


def test_a_non_finite_loss_stops_training_and_names_the_step() -> None:
    toy = Toy()
    with pytest.raises(DataError, match=r"loss is nan at step 4 \(epoch 2\)") as e:
        toy.run(loop_cfg(), loss=lambda step: float("nan") if step >= 4 else 1.0)
    assert "nothing after step 3 was saved" in str(e.value)
    assert toy.checkpoints == [3]
    toy = Toy()  # found at the checkpoint when the step is not logged
    with pytest.raises(DataError, match="loss is inf at step 3"):
        toy.run(loop_cfg(log_every=100), loss=lambda step: float("inf") if step == 3 else 1.0)
    assert toy.checkpoints == []


def test_a_step_must_be_counted() -> None:
    loop = TrainLoop(loop_cfg(), N_ITEMS, seed=7, desc="toy")
    with pytest.raises(RuntimeError, match="end_step"):
        for epoch in loop.epochs(lambda step: None):
            for _ in loop.steps(epoch.batch_ids):
                pass


def test_the_bar_counts_each_epoch_when_early_stopping_may_end_the_run(capsys) -> None:
    """With bar_per_epoch (train-rnn under early stopping, at most 1000 epochs) the bar shows
    the epoch and its own steps, not an ETA to the maximum; without, all the steps."""
    for per_epoch, expected, absent in ((True, "toy epoch 3/3", "/9"), (False, "9/9", "epoch")):
        toy = Toy()
        loop = TrainLoop(loop_cfg(), N_ITEMS, seed=7, desc="toy")
        for epoch in loop.epochs(toy.checkpoint, bar_per_epoch=per_epoch):
            for ids in loop.steps(epoch.batch_ids):
                loop.end_step(len(ids), torch.tensor(0.0))
        err = capsys.readouterr().err
        assert loop.step == 9 and expected in err and absent not in err
        if per_epoch:
            assert "toy epoch 1/3" in err and "0/3 [" in err  # a bar of an epoch's 3 steps


def test_rate_covers_every_step_since_the_last_logged_one() -> None:
    """Two logged steps apart, of which the unlogged one takes 0.1 s and the logged one no
    time: the rate is 2 batches over ~0.1 s (not one batch over the logged step's ~0 s)."""
    loop = TrainLoop(loop_cfg(epochs=1, log_every=2), 8, seed=0, desc="toy")
    rates = []
    for epoch in loop.epochs(lambda step: None):
        for ids in loop.steps(epoch.batch_ids):
            if loop.step % 2 == 0:
                time.sleep(0.1)
            if loop.end_step(len(ids), torch.tensor(1.0)):
                rates.append(loop.rate)
    assert len(rates) == 1 and 60 < rates[0] < 80  # 8 items / 0.1 s; the old figure was ~1e5
