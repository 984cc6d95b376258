"""rnn.init's file for each model: a file for all, or a folder with one per model."""

from __future__ import annotations

from pathlib import Path

import pytest

from mdnworld.errors import MissingError
from mdnworld.layout import RunLayout
from mdnworld.train.rnn_start import init_file


def test_init_is_a_file_a_shipped_folder_or_a_run(tmp_path: Path) -> None:
    one = tmp_path / "m.safetensors"
    assert init_file(one, 3) == one  # a file (or a missing path: load_weights names it)
    shipped = tmp_path / "shipped" / "rnn"
    shipped.mkdir(parents=True)
    for i in (0, 1):
        (shipped / f"model_{i}.safetensors").write_bytes(b"")
    assert init_file(shipped, 1) == shipped / "model_1.safetensors"
    run = RunLayout(tmp_path / "run")
    run.rnn_model(2).parent.mkdir(parents=True)
    run.rnn_model(2).write_bytes(b"")
    assert init_file(run.root, 2) == run.rnn_model(2)
    with pytest.raises(MissingError, match=r"shipped/rnn: rnn.init is a folder .* model 2"):
        init_file(shipped, 2)
