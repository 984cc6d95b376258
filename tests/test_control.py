"""The controller: its model, the DreamEnv, CMA-ES in the dream (resume, improvement), the real
game evaluation and the executors (local processes and a real local Ray)."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from mdnworld.checkpoints import save_weights
from mdnworld.config import ControllerConfig, EvaluateConfig, RNNConfig
from mdnworld.control.cmaes import CMAES
from mdnworld.control.evaluate import evaluate, load_controller
from mdnworld.control.executors import LocalExecutor, make_executor
from mdnworld.control.realgame import PlayJob, play_job, seed_jobs
from mdnworld.control.train import dream_fitness, train_controller
from mdnworld.dreams import DreamEnv
from mdnworld.errors import CheckpointError, LockedError
from mdnworld.io import exclusive_lock
from mdnworld.models.controller import Controller, ControllerArch, PopulationController
from mdnworld.models.mdnrnn import MDNRNN, MDNRNNArch
from mdnworld.train.rnn import train_rnn

QUIET = {"log": lambda s: None}
Z, H = 8, 16


def done_model(p_death: float = 0.1) -> MDNRNN:
    """An M whose done head says death with probability p_death at every step."""
    torch.manual_seed(0)
    m = MDNRNN(MDNRNNArch(latent_dim=Z, hidden=H, n_components=3, done_head=True)).eval()
    with torch.no_grad():
        m.done.weight.zero_()
        m.done.bias.fill_(float(np.log(p_death / (1 - p_death))))
    return m


def test_controller_shapes_and_flat_parameters() -> None:
    arch = ControllerArch(latent_dim=Z, hidden=H)
    c = Controller(arch)
    a = c(torch.randn(5, Z), torch.randn(5, H))
    assert a.shape == (5, 1) and (a.abs() <= 1).all()
    assert arch.n_params == Z + H + 1 == c.flat().numel()
    flat = torch.randn(arch.n_params)
    torch.testing.assert_close(Controller(arch).set_flat(flat).flat(), flat)
    # a population: dream i driven by candidate owner[i] = the same numbers as that controller
    params = torch.randn(3, arch.n_params)
    owner = torch.tensor([0, 0, 1, 2, 2])
    z, h = torch.randn(5, Z), torch.randn(5, H)
    got = PopulationController(params, owner, arch)(z, h)
    want = torch.cat([Controller(arch).set_flat(params[o])(z[i : i + 1], h[i : i + 1])
                      for i, o in enumerate(owner)])  # fmt: skip
    torch.testing.assert_close(got, want)
    with pytest.raises(ValueError, match="shape"):
        PopulationController(torch.zeros(2, 7), owner, arch)


def test_dream_env_resets_only_finished_dreams_and_respects_the_cap() -> None:
    m = done_model(p_death=1e-9)  # never dies: only the cap ends dreams
    env = DreamEnv(m, torch.randn(4, Z), n=6, tau=1.0, max_steps=5, seed=0)
    env.reset()
    for _ in range(2):
        env.step(torch.zeros(6, 1))
    env._start(torch.tensor([0, 1]))  # dreams 0 and 1 start again later than the others
    h_before = env.obs[1].clone()
    total = torch.zeros(6)
    for step in range(3):
        _, reward, terminated, truncated = env.step(torch.zeros(6, 1))
        total += reward
        assert not terminated.any()
        assert truncated[2:].tolist() == [step == 2] * 4  # the others reach 5 steps
        assert not truncated[:2].any()
    assert env.t[:2].tolist() == [3, 3]  # untouched by the others' resets
    assert env.t[2:].tolist() == [0] * 4  # reset after truncation (autoreset)
    assert (env.obs[1][2:] == 0).all() and not (env.obs[1][:2] == h_before[:2]).all()
    assert total.tolist() == [3.0] * 6


def test_dream_env_sampled_death_has_the_head_s_probability() -> None:
    """Death ~ Bernoulli(0.1) per step -> survival ~ geometric with mean 10."""
    env = DreamEnv(done_model(0.1), torch.randn(4, Z), n=4000, max_steps=2100, autoreset=False)
    env.reset()
    survived = torch.zeros(4000)
    while not env.finished.all():
        survived += env.step(torch.zeros(4000, 1))[1]
    assert abs(survived.mean().item() - 10.0) < 0.5
    with pytest.raises(ValueError, match="done head"):
        DreamEnv(MDNRNN(MDNRNNArch(latent_dim=Z, hidden=H)), torch.randn(4, Z), n=2)


def action_matters_model(p_death: float = 0.1) -> MDNRNN:
    """An M whose death probability rises with the action (a = 0: p_death per step)."""
    m = done_model(p_death)
    with torch.no_grad():  # the LSTM passes the action into h[0]; the done head reads h[0]
        m.lstm.weight_ih_l0.zero_(), m.lstm.weight_hh_l0.zero_()
        m.lstm.bias_ih_l0.zero_(), m.lstm.bias_hh_l0.zero_()
        m.lstm.bias_ih_l0[H : 2 * H] = 10.0  # forget gate open
        m.lstm.bias_ih_l0[3 * H : 4 * H] = 10.0  # output gate open
        m.lstm.weight_ih_l0[2 * H, Z] = 3.0  # cell input of unit 0 = tanh(3 a)
        m.lstm.bias_ih_l0[0:H] = 10.0  # input gate open
        m.done.weight[0, 0] = 6.0  # death logit = 6 h_0 + logit(p_death)
    return m


def test_cma_es_learns_to_survive_when_the_action_matters() -> None:
    """CMA-ES in the dream must learn to hold the action low (all-zero parameters: a = 0,
    p = 0.1 per step, ~10 steps survived)."""
    m = action_matters_model()
    es = CMAES(ControllerArch(Z, H).n_params, sigma0=0.5, popsize=16, seed=0)
    means = []
    for g in range(8):
        X = es.ask()
        fit = dream_fitness(m, torch.zeros(4, Z), X, 8, 1.0, 300, 0.5, seed=g)
        es.tell(X, fit)
        means.append(fit.mean())
    assert means[-1] > 3 * means[0], means


def test_dropping_ended_dreams_changes_no_fitness() -> None:
    """dream_fitness drops ended dreams from the batch as it goes (DreamEnv.keep); every dream
    keeps its own random streams, so the fitnesses equal those of the full batch exactly."""
    m = action_matters_model(0.004)  # survival depends on the dream's actions, hence its z, h
    params = np.random.default_rng(0).normal(0, 0.05, (6, ControllerArch(Z, H).n_params))
    starts = torch.randn(5, Z)
    full = dream_fitness(m, starts, params, 4, 1.15, 400, 0.5, seed=3, compact=0.0)
    assert len(set(full.tolist())) > 3  # the candidates differ
    for compact in (0.25, 0.9):
        got = dream_fitness(m, starts, params, 4, 1.15, 400, 0.5, seed=3, compact=compact)
        np.testing.assert_array_equal(got, full)
    env = DreamEnv(m, torch.zeros(2, Z), 4, autoreset=True)
    with pytest.raises(ValueError, match="autoreset=False"):
        env.keep(torch.tensor([0, 1]))


def test_dream_dropout_changes_the_fitness_reproducibly() -> None:
    """ControllerConfig.dream_dropout reaches the dreams: the same seed gives the same
    fitnesses, and they differ from the dreams without dropout."""
    m = action_matters_model(0.004)
    params = np.random.default_rng(1).normal(0, 0.05, (4, ControllerArch(Z, H).n_params))
    starts = torch.randn(5, Z)
    plain = dream_fitness(m, starts, params, 4, 1.15, 300, 0.5, seed=5)
    a = dream_fitness(m, starts, params, 4, 1.15, 300, 0.5, seed=5, dropout=0.2)
    b = dream_fitness(m, starts, params, 4, 1.15, 300, 0.5, seed=5, dropout=0.2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, plain)


def _listing(run: Path) -> dict[str, tuple[int, int]]:
    return {p.relative_to(run).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(run.rglob("*")) if p.is_file()}  # fmt: skip


@pytest.fixture(scope="module")
def controller_run(encoded: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Real latents (conftest's ``encoded``) and a small M with a done head trained on them,
    trained once and READ-ONLY: a test that writes into a run trains in its own copy
    (``_copy_run``), so no test depends on another's having run (checked at the end)."""
    run = tmp_path_factory.mktemp("controller_run")
    for sub in ("episodes", "vae", "latents"):
        shutil.copytree(encoded / sub, run / sub)
    cfg = RNNConfig(hidden=32, epochs=2, patience=0, batch_size=32, done_head=True,
                    device="cpu", threads=1)  # fmt: skip
    train_rnn(run, cfg, **QUIET)
    before = _listing(run)
    yield run
    assert _listing(run) == before, "a test wrote into the shared controller_run: copy it"


def _copy_run(base: Path, dest: Path, subs: tuple[str, ...] = ("vae", "latents", "rnn")) -> Path:
    """A test's own run: ``subs`` of the read-only ``controller_run``, copied to ``dest``."""
    for sub in subs:
        shutil.copytree(base / sub, dest / sub)
    return dest


def _cfg(**kw) -> ControllerConfig:
    base = dict(popsize=6, rollouts=3, generations=4, eval_every=0, workers=1, max_steps=200,
                device="cpu", threads=1)  # fmt: skip
    return ControllerConfig(**{**base, **kw})


def test_cma_es_resume_gives_the_same_next_generation(controller_run: Path, tmp_path: Path) -> None:
    runs = {name: _copy_run(controller_run, tmp_path / name) for name in ("straight", "stopped")}
    train_controller(runs["straight"], _cfg(), **QUIET)
    stopped = train_controller(runs["stopped"], _cfg(), stop_after_generations=2, **QUIET)
    assert stopped == {"generation": 2, "stopped": True}
    lines: list[str] = []
    train_controller(runs["stopped"], _cfg(), log=lines.append)
    assert any("resumed after generation 2" in line for line in lines)
    states = [np.load(r / "controller" / "cmaes_state.npz") for r in runs.values()]
    assert states[0]["fitness"].shape == (4, 6)
    np.testing.assert_array_equal(states[0]["fitness"], states[1]["fitness"])
    a, b = (load_controller(r)[0] for r in runs.values())
    np.testing.assert_array_equal(a, b)
    # other settings than the checkpoint's -> a clear error naming the file
    with pytest.raises(ValueError, match="cmaes_state.npz: saved with other settings"):
        train_controller(runs["stopped"], _cfg(popsize=8, generations=5), **QUIET)


def test_selection_rescores_the_best_candidates_on_fresh_dreams(
    controller_run: Path, tmp_path: Path
) -> None:
    """Each generation's best is kept; select_top re-scores the top ones and the mean on
    select_rollouts fresh dreams and saves the highest as "selected"."""
    run = _copy_run(controller_run, tmp_path / "select")
    lines: list[str] = []
    train_controller(run, _cfg(generations=3, select_top=2, select_rollouts=5), log=lines.append)
    with np.load(run / "controller" / "candidates.npz") as c:
        assert c["generation"].tolist() == [1, 2, 3] and c["params"].shape[0] == 3
        best_two = np.argsort(-c["fitness"], kind="stable")[:2]
        kept = c["params"][best_two]
    table = json.loads((run / "controller" / "selection.json").read_text())
    names = [r["candidate"] for r in table["rows"]]
    assert len(names) == 3 and names[-1] == "CMA-ES mean" and table["rollouts"] == 5
    win = max(range(3), key=lambda i: table["rows"][i]["rescored"])
    assert table["winner"] == names[win] and any("chose" in line for line in lines)
    params, meta = load_controller(run, "selected")
    assert meta["fitness"] == table["rows"][win]["rescored"]
    expected = load_controller(run, "mean")[0] if win == 2 else kept[win]
    np.testing.assert_allclose(params, expected, rtol=0, atol=1e-7)


def test_init_starts_the_search_at_a_given_controller(controller_run: Path, tmp_path: Path) -> None:
    """controller.init (iterate's warm start): with a tiny step size the search stays at the
    given controller; one for another M's sizes is refused, naming the file."""
    first = _copy_run(controller_run, tmp_path / "first")
    train_controller(first, _cfg(generations=2), **QUIET)
    start, _ = load_controller(first)
    assert np.abs(start).max() > 1e-3
    init = str(first / "controller" / "controller.safetensors")
    second = _copy_run(controller_run, tmp_path / "second")
    train_controller(second, _cfg(generations=1, sigma0=1e-6, init=init), **QUIET)
    np.testing.assert_allclose(load_controller(second)[0], start, rtol=0, atol=1e-4)
    other = Controller(ControllerArch(latent_dim=3, hidden=2, action_dim=1))
    bad = tmp_path / "other.safetensors"
    meta = {"arch": dataclasses.asdict(other.arch), "generation": 1, "model_index": 0}
    save_weights(bad, other.state_dict(), meta)
    with pytest.raises(CheckpointError, match="controller.init is a controller for") as e:
        train_controller(
            _copy_run(controller_run, tmp_path / "third"), _cfg(init=str(bad)), **QUIET
        )
    assert str(bad) in str(e.value)


def test_a_second_train_controller_on_the_same_run_is_refused(
    controller_run: Path, tmp_path: Path
) -> None:
    """Two processes training one run would write one state and one log over each other; the
    second gets a clear error naming the lock and the holder, and the first's files stay."""
    run = _copy_run(controller_run, tmp_path / "locked")
    train_controller(run, _cfg(generations=1), **QUIET)
    state = run / "controller" / "cmaes_state.npz"
    before = state.read_bytes()
    held = rf"\.lock: another train-controller \(pid {os.getpid()}\)"
    with (
        exclusive_lock(run / "controller" / ".lock", "train-controller"),  # as another process
        pytest.raises(LockedError, match=held),
    ):
        train_controller(run, _cfg(generations=2), **QUIET)
    assert state.read_bytes() == before
    train_controller(run, _cfg(generations=2), **QUIET)  # released: it goes on
    assert np.load(state)["fitness"].shape == (2, 6)


def _rewrite_state(path: Path, drop: tuple[str, ...] = (), **meta_changes) -> None:
    """Edit a saved CMA-ES state as another machine or an older version would have left it."""
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files if k not in drop}
    meta = {**json.loads(str(arrays.pop("meta"))), **meta_changes}
    np.savez(path, **arrays, meta=np.array(json.dumps(meta)))


def test_cma_es_moved_to_another_machine_restarts_at_its_mean(
    controller_run: Path, tmp_path: Path
) -> None:
    """Where the replay differs (another numpy or CPU: here, faked by changing the saved
    checksums), resume restarts CMA-ES at the saved mean and σ, keeps the history, records the
    restart point, and from then on resumes exactly again."""
    runs = {name: _copy_run(controller_run, tmp_path / name) for name in ("moved", "moved_stopped")}
    for r in runs.values():
        train_controller(r, _cfg(generations=2), **QUIET)
    state = runs["moved"] / "controller" / "cmaes_state.npz"
    with np.load(state, allow_pickle=False) as f:
        saved_mean, meta, n = f["mean"], json.loads(str(f["meta"])), f["best_params"].shape
    assert meta["format"] == "mdnworld.cmaes/2" and saved_mean.shape == n
    for r in runs.values():
        _rewrite_state(r / "controller" / "cmaes_state.npz",
                       mean_checks=[c + 1.0 for c in meta["mean_checks"]])  # fmt: skip
    lines: list[str] = []
    train_controller(runs["moved"], _cfg(), log=lines.append)
    assert any("restarting it at generation 2's mean" in line for line in lines)
    with np.load(state, allow_pickle=False) as f:
        assert f["fitness"].shape == (4, 6)
        np.testing.assert_array_equal(f["restart_mean"], saved_mean)
        assert json.loads(str(f["meta"]))["restart"] == {"generation": 2, "sigma": meta["sigma"]}
    # a stop after the restart resumes exactly from the restart point
    train_controller(runs["moved_stopped"], _cfg(), stop_after_generations=1, **QUIET)
    lines = []
    train_controller(runs["moved_stopped"], _cfg(), log=lines.append)
    assert not any("restarting" in line for line in lines)
    states = [np.load(r / "controller" / "cmaes_state.npz") for r in runs.values()]
    np.testing.assert_array_equal(states[0]["fitness"], states[1]["fitness"])
    a, b = (load_controller(r)[0] for r in runs.values())
    np.testing.assert_array_equal(a, b)
    # an older state (format 1: no mean) that does not replay: a clear error, nothing changed
    _rewrite_state(state, drop=("mean",), format="mdnworld.cmaes/1", mean_checks=[0.0] * 4)
    before = state.read_bytes()
    with pytest.raises(ValueError, match="no saved mean to restart from"):
        train_controller(runs["moved"], _cfg(generations=5), **QUIET)
    assert state.read_bytes() == before


def test_evaluate_scores_are_steps_survived(controller_run: Path, tmp_path: Path) -> None:
    run = _copy_run(controller_run, tmp_path / "run", ("episodes", "vae", "latents", "rnn"))
    train_controller(run, _cfg(generations=1), **QUIET)
    params, meta = load_controller(run)
    job = PlayJob(str(run), model_index=0, params=params, max_steps=150, seeds=(5, 6),
                  record=True)  # fmt: skip
    rows = play_job(job)
    for r in rows:  # one frame per step survived; a capped episode scores the cap
        assert r["score"] == len(r["frames"]) == len(r["recons"]) <= 150
    bare = play_job(dataclasses.replace(job, decode=False))  # iterate's: no reconstructions
    assert [sorted(r) for r in bare] == [["actions", "frames", "score", "seed"]] * 2
    for r, b in zip(rows, bare, strict=True):
        assert b["score"] == r["score"] and np.array_equal(b["frames"], r["frames"])
    result = evaluate(run, EvaluateConfig(episodes=3, workers=2, max_steps=150, seed=5), **QUIET)
    scores = [e["score"] for e in result["per_episode"]]
    assert scores[:2] == [r["score"] for r in rows]  # worker processes = this process
    assert (run / "evaluate" / "best.mp4").stat().st_size > 0
    assert result["mean"] == pytest.approx(np.mean(scores))


def test_ray_executor_gives_the_local_scores(controller_run: Path) -> None:
    pytest.importorskip("ray")
    params = np.zeros(ControllerArch(64, 32).n_params, np.float32)
    base = PlayJob(str(controller_run), model_index=0, params=params, max_steps=120)
    jobs = seed_jobs(base, [11, 12, 13], 3)
    local = LocalExecutor(workers=1).map(play_job, jobs)
    ray_exec = make_executor("ray", workers=2)
    try:
        remote = ray_exec.map(play_job, jobs)
    finally:
        ray_exec.close()
    assert [r["score"] for part in remote for r in part] == [
        r["score"] for part in local for r in part
    ]


def test_controller_cost_is_split_by_the_machine_each_generation_ran_on(tmp_path: Path) -> None:
    """A run trained on a GPU and resumed on CPUs: each generation row names its machine (older
    rows take the run's one machine from stages.jsonl); CPU hours count the CPU-only part."""
    from mdnworld.control.results import controller_markdown, summarise_run

    run = tmp_path / "moved_run"
    (run / "controller").mkdir(parents=True)
    (run / "controller" / "controller.json").write_text(json.dumps(
        {"config": {"tau": 1.15, "popsize": 64, "rollouts": 16, "generations": 300}}))  # fmt: skip
    gpu, cpu = "16 CPUs, NVIDIA H200", "2 CPUs"
    rows = [{"step": g, "fitness/mean": 100.0 + g, "fitness/best": 200.0, "fitness/worst": 50.0,
             "seconds": 3.6 if g <= 2 else 36.0, **({} if g == 1 else
                                                   {"machine": gpu if g <= 2 else cpu})}
            for g in range(1, 6)]  # fmt: skip
    rows[4]["real/seconds"] = 72.0
    (run / "controller" / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run / "stages.jsonl").write_text(json.dumps(  # the GPU run's record: row 1's machine
        {"stage": "train-controller", "started": "2026-11-26T09:56:00+00:00", "seconds": 7.2,
         "finished": False, "machine": gpu, "cpus": 16}) + "\n")  # fmt: skip
    s = summarise_run(run)
    assert [(c["machine"], c["generations"]) for c in s["cost"]] == [(gpu, 2), (cpu, 3)]
    assert s["cost"][0]["seconds_per_generation"] == pytest.approx(3.6)
    assert s["train_gpu_hours"] == pytest.approx(7.2 / 3600)
    assert s["train_cpu_hours"] == pytest.approx((3 * 36.0 + 72.0) * 2 / 3600)
    assert s["train_hours"] == pytest.approx((7.2 + 3 * 36.0 + 72.0) / 3600)
    md = controller_markdown([s])
    assert f"| moved_run | 1.15 | {gpu} | 2 | 3.6 | 0.00 h | — (GPU) |" in md
    assert f"| moved_run | 1.15 | {cpu} | 3 | 36.0 | 0.05 h | 0.1 |" in md


# --- fast: no game, no training ---------------------------------------------------------------


def test_jobs_are_typed_picklable_and_split_by_seed() -> None:
    import pickle

    from mdnworld.control.train import DreamJob

    base = PlayJob("runs/x", model_index=1, params=[0.5, -1.0, 2.0], max_steps=100)
    assert base.params.dtype == np.float32 and base.params.shape == (3,) and base.seeds == ()
    jobs = seed_jobs(base, [10, 11, 12, 13, 14], 2)
    assert [j.seeds for j in jobs] == [(10, 11, 12), (13, 14)]
    assert all(j.run_dir == "runs/x" and j.model_index == 1 and j.max_steps == 100 for j in jobs)
    assert [j.seeds for j in seed_jobs(base, [7], 4)] == [(7,)]  # never an empty job
    back = pickle.loads(pickle.dumps(jobs[1]))  # what the process pool and Ray do
    assert isinstance(back, PlayJob) and back.seeds == (13, 14)
    np.testing.assert_array_equal(back.params, base.params)
    with pytest.raises(dataclasses.FrozenInstanceError):
        base.max_steps = 5  # type: ignore[misc]
    with pytest.raises(ValueError, match=r"PlayJob.params must have shape \(n,\)"):
        PlayJob("runs/x", 0, np.zeros((2, 3)), 100)
    dream = DreamJob("runs/x", 0, [[0.0, 1.0], [2.0, 3.0]], "cpu", rollouts=2, tau=1.15,
                     max_steps=50, done_threshold=0.5, seed=3)  # fmt: skip
    assert dream.params.shape == (2, 2) and dream.params.dtype == np.float32
    assert (dream.done, dream.threads) == ("sample", 0)
    assert pickle.loads(pickle.dumps(dream)).seed == 3
    with pytest.raises(ValueError, match=r"DreamJob.params must have shape \(P, n\)"):
        DreamJob("runs/x", 0, [1.0, 2.0], "cpu", 2, 1.15, 50, 0.5, 3)


def test_bad_options_and_files_raise_user_errors(tmp_path: Path) -> None:
    from mdnworld.checkpoints import save_weights
    from mdnworld.errors import CheckpointError, ConfigError, MissingError

    with pytest.raises(ConfigError, match="executor must be one of"):
        make_executor("dask")
    with pytest.raises(ConfigError, match="controller.done must be one of"):
        cfg = ControllerConfig()
        cfg.done = "never"  # type: ignore[assignment] - past the config's own check
        train_controller(tmp_path, cfg, **QUIET)
    assert not (tmp_path / "controller").exists()  # refused before anything is written
    with pytest.raises(ConfigError, match="which must be one of"):
        load_controller(tmp_path, "worst")
    with pytest.raises(MissingError, match="train-controller"):
        load_controller(tmp_path)
    path = tmp_path / "controller" / "controller.safetensors"
    save_weights(path, {"fc.weight": torch.zeros(1, 3)}, {"generation": 1, "model_index": 0})
    with pytest.raises(CheckpointError, match="'arch'"):
        load_controller(tmp_path)


def test_model_cache_reloads_a_rewritten_model(tmp_path: Path) -> None:
    """The cache keys on the weights files' identity, not the run's name: a retrained M (its
    weights rewritten) is a new object in a long-lived worker; an unchanged one is reused."""
    from mdnworld.checkpoints import MODELS, cached_mdnrnn, save_weights
    from mdnworld.control.train import dream_inputs
    from mdnworld.errors import ConfigError
    from mdnworld.layout import RunLayout
    from mdnworld.models.mdnrnn import StandardisedMDNRNN

    run = RunLayout(tmp_path / "run")

    def save_m(seed: int, done_head: bool = True) -> None:
        torch.manual_seed(seed)
        arch = MDNRNNArch(latent_dim=Z, hidden=H, n_components=2, done_head=done_head)
        m = StandardisedMDNRNN(arch)
        save_weights(run.rnn_model(0), m.state_dict(), {"arch": dataclasses.asdict(arch)})

    MODELS.clear()
    save_m(0)
    first = cached_mdnrnn(run.root, 0)
    assert cached_mdnrnn(run.root, 0) is first and cached_mdnrnn(str(run.root), 0) is first
    save_m(1)  # retrained
    second = cached_mdnrnn(run.root, 0)
    assert second is not first
    w = "lstm.weight_ih_l0"
    assert not torch.equal(first.state_dict()[w], second.state_dict()[w])
    assert cached_mdnrnn(run.root, 0) is second
    MODELS.clear()
    assert len(MODELS) == 0 and cached_mdnrnn(run.root, 0) is not second
    save_m(2, done_head=False)  # the controller's dreams need a done head: the fix is named
    with pytest.raises(ConfigError, match=r"model_0/model.safetensors: .*--done-head"):
        dream_inputs(run.root, 0, "cpu")
