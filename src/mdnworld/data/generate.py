"""Step 1, ``mdnworld generate``: random-policy episodes from the real game, over worker processes.

Episode i always uses seed ``base_seed + i`` (game and policy alike), so the data does not
depend on the number of workers or on the order they finish in. Each worker keeps one game
instance, plays whole episodes and writes each one atomically itself; the parent only keeps the
manifest and the progress bar. Finished files are skipped on a re-run (resume).
With ``truth`` each file also holds the game's per-frame truth (``data/truth.py``); the game
then also renders its labels buffer, which changes neither the frames nor the game's RNG.

A worker that raises or dies takes its episodes to a retry round on a fresh pool; after
``retries`` rounds the run fails with an error that names the episodes.
"""

from __future__ import annotations

import multiprocessing as mp
import multiprocessing.util
import sys
import time
from collections.abc import Callable
from concurrent.futures import (
    FIRST_COMPLETED,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    wait,
)
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mdnworld.config import GenerateConfig, to_dict
from mdnworld.data.episodes import (
    FORMAT,
    Episode,
    disagreement,
    episode_info,
    episode_path,
    read_manifest,
    save_episode,
    unknown_files,
)
from mdnworld.data.truth import truth_arrays
from mdnworld.env.preprocess import preprocess_frame
from mdnworld.env.take_cover import RandomRepeatPolicy, TakeCoverEnv
from mdnworld.errors import DataError, EpisodeFileError, UserError
from mdnworld.io import atomic_write_json, remove_stale_temps
from mdnworld.layout import RunLayout, episode_index
from mdnworld.procs import kill_workers, prepare_worker_process, resolve_workers

# Settings that change the content of an episode: a resumed run must use the same ones.
CONTENT_KEYS = ("base_seed", "max_steps", "resolution", "truth")
CONTENT_DEFAULTS = {"truth": False}  # the value of a key that an older manifest lacks


class GenerateError(UserError, RuntimeError):
    """Generation could not finish; the message names the failed episodes."""


@dataclass
class Played:
    """One episode as the game loop leaves it: observations (raw screens or frames), the
    actions, the env's ``info`` of every observation and of the state after the last step."""

    seed: int
    observations: list[np.ndarray]
    actions: list[np.ndarray]
    infos: list[dict]
    terminated: bool
    truncated: bool

    def __len__(self) -> int:
        return len(self.observations)


def play(env: TakeCoverEnv, seed: int) -> Played:
    """The game loop of one episode with the SPEC §2 random policy: nothing but the game,
    the policy and list appends, so that a worker spends its time in the game."""
    policy = RandomRepeatPolicy(seed)
    obs, info = env.reset(seed=seed)
    observations, actions, infos = [], [], [info]
    while True:
        a = policy(obs)
        observations.append(obs)
        actions.append(a)
        obs, _, terminated, truncated, info = env.step(a)
        infos.append(info)
        if terminated or truncated:
            return Played(seed, observations, actions, infos, terminated, truncated)


def to_episode(played: Played, env: TakeCoverEnv) -> Episode:
    """The stored episode of ``played`` (``env`` says whether its observations still need
    preprocessing and whether they carry the game's truth). Frames are identical to those of
    an env that preprocesses every screen itself."""
    obs = played.observations
    frames = obs if env.preprocess else [preprocess_frame(s) for s in obs]
    n = len(frames)
    dones = np.zeros(n, bool)
    dones[-1] = played.terminated
    ep = Episode(
        frames=np.stack(frames),
        actions=np.stack(played.actions).astype(np.float32),
        rewards=np.ones(n, np.float32),
        dones=dones,
        seed=played.seed,
    )
    if env.truth:
        infos = played.infos
        ep.truth = truth_arrays(infos[:n], infos[n]["health"], env.screen_shape)
    return ep


def play_episode(env: TakeCoverEnv, seed: int) -> tuple[Episode, bool]:
    """Play one episode with the SPEC §2 random policy. Returns (episode, truncated)."""
    played = play(env, seed)
    return to_episode(played, env), played.truncated


# ---- worker process side -------------------------------------------------------------------
# A worker plays episode i+1 while its one thread preprocesses and saves episode i (OpenCV,
# zlib and file writes release the GIL): the game loop never waits for the disk. So an entry
# reaches the parent before its file exists; the parent checks the files after each round
# (``_play_round``), and a resumed run trusts the files, never the manifest.

_ENV: TakeCoverEnv | None = None
_THREADS: ThreadPoolExecutor | None = None
_SAVING: tuple[int, Future] | None = None  # (episode index, its save) in flight


def _init_worker(max_steps: int, resolution: str, truth: bool) -> None:
    global _ENV, _THREADS
    prepare_worker_process()
    # The game loop hands the GIL to the save thread at every make_action; a short switch
    # interval gives it back as soon as the game answers (at the default 5 ms a busy thread
    # can hold the loop up for 20 game steps).
    sys.setswitchinterval(1e-4)
    _ENV = TakeCoverEnv(max_steps=max_steps, resolution=resolution, preprocess=False, truth=truth)
    _THREADS = ThreadPoolExecutor(1, thread_name_prefix="save")
    # Pool workers leave through os._exit (no atexit): finish the last save and close the game
    # in multiprocessing's own exit hook (higher priority first), or the game process would
    # outlive the worker.
    mp.util.Finalize(None, _wait_for_save, exitpriority=20)
    mp.util.Finalize(None, _ENV.close, exitpriority=10)


def _save(index: int, played: Played, run_dir: str) -> None:
    assert _ENV is not None, "worker not initialised"
    save_episode(episode_path(run_dir, index), to_episode(played, _ENV))


def _wait_for_save() -> None:
    """Wait for the save in flight; its error names its episode."""
    global _SAVING
    if _SAVING is None:
        return
    (index, fut), _SAVING = _SAVING, None
    try:
        fut.result()
    except Exception as e:
        raise RuntimeError(f"saving episode {index} failed: {type(e).__name__}: {e}") from e


def _run_episode(index: int, seed: int, run_dir: str) -> dict:
    global _SAVING
    assert _ENV is not None and _THREADS is not None, "worker not initialised"
    played = play(_ENV, seed)
    _wait_for_save()  # one episode's screens in flight at most
    _SAVING = (index, _THREADS.submit(_save, index, played, run_dir))
    return {"index": index, "seed": seed, "length": len(played), "truncated": played.truncated}


# ---- parent side ---------------------------------------------------------------------------


@dataclass
class GenerateSummary:
    episodes: int
    generated: int
    skipped: int
    mean_length: float
    std_length: float
    frames: int
    bytes_on_disk: int
    seconds: float

    def __str__(self) -> str:
        return (
            f"{self.episodes} episodes ({self.generated} generated, {self.skipped} already there), "
            f"length {self.mean_length:.1f} ± {self.std_length:.1f} steps, {self.frames} frames, "
            f"{self.bytes_on_disk / 1e6:.1f} MB on disk, {self.seconds:.1f} s"
        )


def _load_manifest(run_dir: Path, cfg: GenerateConfig) -> dict[int, dict]:
    """Entries of an existing manifest (checked: a malformed one is named); refuses to resume
    with different content settings."""
    path = RunLayout(run_dir).episode_manifest
    if not path.exists():
        return {}
    try:
        old, entries = read_manifest(run_dir)
    except DataError as e:
        raise GenerateError(f"{e}; delete it to rebuild it from the episode files") from None
    for key in CONTENT_KEYS:
        was = old.get(key, CONTENT_DEFAULTS.get(key))
        if (key in old or key in CONTENT_DEFAULTS) and was != getattr(cfg, key):
            raise GenerateError(
                f"{path}: this run was generated with {key}={was!r}, not "
                f"{getattr(cfg, key)!r}; use another run directory or the same setting"
            )
    return entries


def _existing_entry(path: Path, i: int, cfg: GenerateConfig, entry: dict | None, man: Path) -> dict:
    """The manifest entry of the finished file ``path`` (episode ``i``), read from the file:
    refused when its seed is not ``base_seed + i`` or the manifest's ``entry`` disagrees."""
    try:
        info = episode_info(path)
    except EpisodeFileError as e:
        raise GenerateError(f"{e}; delete it and re-run to regenerate it") from None
    if info.seed != cfg.base_seed + i:
        raise GenerateError(
            f"{path}: holds seed {info.seed}, but episode {i} of base_seed {cfg.base_seed} has "
            f"seed {cfg.base_seed + i} (this run was made with base_seed {info.seed - i}?); use "
            "that base_seed or another run directory"
        )
    if info.truth != cfg.truth:
        raise GenerateError(
            f"{path}: generated {'with' if info.truth else 'without'} truth, but truth="
            f"{cfg.truth}; use the same setting or another run directory"
        )
    if entry is not None and (why := disagreement(info, entry)):
        raise GenerateError(
            f"{path}: {why}; delete {man} to rebuild it from the files, or the episode file "
            "to regenerate it"
        )
    return info.entry()


def _write_manifest(
    run_dir: Path, cfg: GenerateConfig, entries: dict[int, dict], extra: dict[int, dict]
) -> None:
    """The manifest: ``entries`` (episodes 0 .. cfg.episodes - 1) and the ``extra`` finished
    files past them (from an earlier run with more episodes), so it lists every file."""
    entries = {**extra, **entries}
    atomic_write_json(
        RunLayout(run_dir).episode_manifest,
        {
            "format": FORMAT,
            "frame_shape": [64, 64, 3],
            "config": to_dict(cfg),
            "episodes": [entries[i] for i in sorted(entries)],
        },
    )


def _play_round(
    run: RunLayout,
    cfg: GenerateConfig,
    todo: list[int],
    entries: dict[int, dict],
    extra: dict[int, dict],
    progress: Callable[[dict], None] | None,
) -> dict[int, str]:
    """Play episodes ``todo`` on one fresh pool of worker processes; finished ones go into
    ``entries`` (and the manifest, at least every 5 s); returns {episode: why it failed}."""
    failed: dict[int, str] = {}
    ctx = mp.get_context("spawn")  # a fresh interpreter per worker: no forked game state
    n_workers = min(resolve_workers(cfg.workers), len(todo))
    last_write = time.monotonic()
    with ProcessPoolExecutor(
        n_workers,
        mp_context=ctx,
        initializer=_init_worker,
        initargs=(cfg.max_steps, cfg.resolution, cfg.truth),
    ) as pool:
        futures: dict[Future, int] = {
            pool.submit(_run_episode, i, cfg.base_seed + i, str(run.root)): i for i in todo
        }
        pending = set(futures)
        workers: set[int] = set()
        try:
            while pending:
                workers |= set(getattr(pool, "_processes", None) or ())
                done, pending = wait(pending, timeout=1.0, return_when=FIRST_COMPLETED)
                for fut in done:
                    i = futures[fut]
                    try:
                        entry = fut.result()
                    except BrokenProcessPool:
                        failed[i] = "a worker process died (killed or crashed)"
                        continue
                    except Exception as e:  # noqa: BLE001 - reported with the episode
                        failed[i] = f"{type(e).__name__}: {e}"
                        continue
                    entries[i] = entry
                    if progress is not None:
                        progress(entry)
                if time.monotonic() - last_write > 5.0:
                    _write_manifest(run.root, cfg, entries, extra)
                    last_write = time.monotonic()
        except BaseException:  # Ctrl-C or a bug here: take the workers' games down too
            kill_workers(workers)
            raise
        finally:
            _write_manifest(run.root, cfg, entries, extra)
        if failed:
            kill_workers(workers)
    # The pool has shut down: every worker finished its last save or died. A worker that
    # died while saving leaves an entry without its file: played again in the next round.
    missing = [i for i in todo if i in entries and not episode_path(run.root, i).exists()]
    for i in missing:
        del entries[i]
        failed[i] = "its file was not written (the worker ended while saving it)"
    if missing:
        _write_manifest(run.root, cfg, entries, extra)
    return failed


def generate(
    run_dir: Path | str,
    cfg: GenerateConfig,
    progress: Callable[[dict], None] | None = None,
    log: Callable[[str], None] = print,
) -> GenerateSummary:
    """Generate ``cfg.episodes`` episodes into ``run_dir/episodes``, skipping finished ones.

    ``progress`` is called in the parent with each finished episode's entry.
    """
    t_start = time.perf_counter()
    run_dir = Path(run_dir)
    ep_dir = RunLayout(run_dir).episodes_dir
    ep_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(ep_dir)
    old_entries = _load_manifest(run_dir, cfg)

    # Every finished file, also past cfg.episodes, is checked and recorded from the file
    # itself: a kill can leave files the manifest does not list, or no manifest at all.
    run = RunLayout(run_dir)
    for p in unknown_files(run_dir):
        log(f"warning: {p}: not an episode file name (ep_NNNNNN.npz); ignored")
    on_disk = {episode_index(p): p for p in run.episode_files()}
    man = run.episode_manifest
    extra = {i: _existing_entry(p, i, cfg, old_entries.get(i), man) for i, p in on_disk.items()}
    entries: dict[int, dict] = {}
    todo: list[int] = []
    for i in range(cfg.episodes):
        if i in extra:
            entries[i] = extra.pop(i)
        else:
            todo.append(i)
    skipped = len(entries)
    _write_manifest(run_dir, cfg, entries, extra)  # lists every finished file from here on

    attempts = 0
    while todo:
        failed = _play_round(run, cfg, todo, entries, extra, progress)
        todo = sorted(failed)
        if todo:
            first = ", ".join(
                f"episode {i} (seed {cfg.base_seed + i}): {failed[i]}" for i in todo[:5]
            )
            if attempts >= cfg.retries:
                raise GenerateError(
                    f"{len(todo)} episode(s) failed after {attempts + 1} attempt(s): {first}"
                    + (" ..." if len(todo) > 5 else "")
                )
            attempts += 1
            log(
                f"retrying {len(todo)} episode(s) on a fresh pool (attempt {attempts + 1}): {first}"
            )

    lengths = np.array([entries[i]["length"] for i in sorted(entries)], dtype=np.int64)
    size = sum(episode_path(run_dir, i).stat().st_size for i in entries)
    return GenerateSummary(
        episodes=len(entries),
        generated=len(entries) - skipped,
        skipped=skipped,
        mean_length=float(lengths.mean()) if len(lengths) else 0.0,
        std_length=float(lengths.std()) if len(lengths) else 0.0,
        frames=int(lengths.sum()),
        bytes_on_disk=int(size),
        seconds=time.perf_counter() - t_start,
    )
