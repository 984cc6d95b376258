"""The notebook API (``mdnworld.explore``) on the tiny real run, and examples/explore.ipynb run
top to bottom on the shipped paper-scale models in a real Jupyter kernel."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from mdnworld import explore

NOTEBOOK = Path(__file__).parents[1] / "examples" / "explore.ipynb"


def test_dream_decode_and_analysis_b(full_run: Path) -> None:
    run = explore.open_run(full_run)
    assert run.models == [0, 1]
    d = run.dream(model=1, n=2, steps=30, commit=0, seed=4)
    assert d.frames.shape == (2, 30, 64, 64, 3) and d.frames.dtype == np.uint8
    assert (d.record.component == 0).all() and d.dominant.shape == (2, 30)
    again = run.dream(model=1, n=2, steps=30, commit=0, seed=4)
    assert np.array_equal(d.frames, again.frames), "a seeded dream must repeat"
    assert np.array_equal(run.decode(d.record.z[0]), d.frames[0])
    rows = run.worlds_events(d, n_shifts=20)
    assert [r["class_name"] for r in rows][:2] == ["Explosion", "Fireball"]
    assert {r["kind"] for r in rows} == {"worlds", "events"}
    import matplotlib

    matplotlib.use("Agg")
    assert explore.plot_pi(d, 1).get_xlim() == (0, 30)
    assert explore.show_frames(d, 0, every=10).images


@pytest.mark.slow
def test_the_notebook_runs_top_to_bottom(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nbclient = pytest.importorskip("nbclient", reason="pip install -e '.[dev]' brings nbclient")
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    # the kernel inherits this environment: the run goes to tmp_path, and the tests' Agg
    # backend (conftest.py) must not reach it, or the notebook's figures would not render
    monkeypatch.setenv("MDNWORLD_EXPLORE_RUN", str(tmp_path / "explore"))
    monkeypatch.delenv("MPLBACKEND", raising=False)
    t0 = time.perf_counter()
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3").execute(cwd=str(tmp_path))
    seconds = time.perf_counter() - t0
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 4, f"the figures did not render: {outputs}"
    print(f"examples/explore.ipynb ran in {seconds:.0f} s")
