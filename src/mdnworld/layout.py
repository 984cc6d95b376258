"""The run directory: every path in it, every file-name parse, and each stage's "done" test.

This is the only module that spells a run-directory path. A stage talks to the next through
the files named here, so each stage can be rerun, resumed or replaced alone::

    RUN_DIR/
      config.json  stages.jsonl          resolved config of the latest command; stage timings
      episodes/    ep_NNNNNN.npz, manifest.json                      generate     (data/)
      preview/     episode_NNNNNN.{mp4,gif}, _contact.png            show         (data/)
      vae/         model.*, checkpoint.*, split.json, log.jsonl, tb/, recon/      train-vae
      latents/     ep_NNNNNN.npz, manifest.json, starts.npz          encode / from-shipped
      rnn/         split.json, model_<i>/{model,best,checkpoint}.*, log.jsonl     train-rnn
      dreams/      model_<i>/[committed_<k>/]{dreams.npz,dreams.json,dream_<j>.mp4}  dream
      analysis/    <analysis>/results.json, summary.md                analyze
                   detectors/{table.csv,results.json,detectors.png}  detectors
                   detectors/validated/{same}, detectors/compare.csv  detectors
      controller/  cmaes_state.npz, controller.*, best.*, log.jsonl   train-controller
      evaluate/    scores.json, best.mp4, worst.mp4                  evaluate
      report/      index.html and its assets                         report

Weights are ``NAME.safetensors`` beside ``NAME.json`` (checkpoints.py's format). Only file
names and folders live here; what is inside a file is documented where it is written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from mdnworld.errors import ConfigError, DataError
from mdnworld.io import read_json

EPISODE_RE = re.compile(r"^ep_(\d{6,})\.npz$")
MODEL_RE = re.compile(r"^model_(\d+)$")
PREVIEW_RE = re.compile(r"^episode_(\d+)\.mp4$")
DREAM_VIDEO_RE = re.compile(r"^dream_(\d+)\.mp4$")
COMMIT_RE = re.compile(r"^committed_(\d+)$")
PLAY_RE = re.compile(r"play_[0-9a-f]{8}_\d{1,6}\.(mp4|gif)")
ANALYSES = {
    "components-over-time": "components_over_time",
    "worlds-events": "worlds_events",
    "committed": "committed",
}
"""CLI name of each analysis -> its folder under ``analysis/``."""


def episode_name(index: int) -> str:
    """17 -> "ep_000017.npz" (an episode file and its latent file share the name)."""
    return f"ep_{index:06d}.npz"


def episode_index(path: Path | str) -> int:
    """The inverse of ``episode_name``: ``.../ep_000017.npz`` -> 17; a ValueError naming the
    file for anything else (a stray ``ep_000001 (copy).npz`` is not an episode)."""
    m = EPISODE_RE.match(Path(path).name)
    if m is None:
        raise ValueError(f"{path}: not an episode file name (expected ep_NNNNNN.npz)")
    return int(m.group(1))


def model_index(folder: Path | str) -> int:
    """``.../model_3`` -> 3."""
    m = MODEL_RE.match(Path(folder).name)
    if m is None:
        raise ValueError(f"{folder}: not a model folder name (expected model_<i>)")
    return int(m.group(1))


def _numbered(folder: Path) -> list[Path]:
    """Episode-named files of ``folder``, sorted by index (other names are ignored)."""
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if EPISODE_RE.match(p.name)), key=episode_index)


def _indices(folder: Path, pattern: re.Pattern[str]) -> list[int]:
    """The numbers in the names of ``folder``'s entries that match ``pattern``, sorted."""
    if not folder.is_dir():
        return []
    return sorted(int(m.group(1)) for p in folder.iterdir() if (m := pattern.match(p.name)))


def within(root: Path, path: object, source: str, base: Path | None = None) -> Path:
    """``base / path`` (``base``: ``root`` by default) for a path read from a file, checked:
    a DataError naming ``source`` (the file and key it came from) unless it is a relative path
    whose real location (``..`` and symlinks resolved) is inside ``root``. The result is under
    ``root`` as given (not made absolute), with ``..`` and symlinks taken out."""
    if not isinstance(path, str) or not path or "\0" in path or Path(path).is_absolute():
        raise DataError(f"{source}: {path!r} is not a relative path inside {root}")
    try:
        real_root, real = root.resolve(), ((base or root) / path).resolve()
    except (OSError, RuntimeError) as e:  # a symlink loop
        raise DataError(f"{source}: {path!r} cannot be resolved ({e})") from None
    if not real.is_relative_to(real_root):
        raise DataError(f"{source}: {path!r} leads out of {root} (to {real})")
    return root / real.relative_to(real_root)


@dataclass(frozen=True)
class RunLayout:
    """Paths of one run directory. ``RunLayout(run_dir).vae_model`` etc.; creates nothing."""

    root: Path

    def __init__(self, root: Path | str) -> None:
        object.__setattr__(self, "root", Path(root))

    # --- the whole run ---------------------------------------------------------------------
    @property
    def config_json(self) -> Path:
        return self.root / "config.json"

    @property
    def stage_log(self) -> Path:
        return self.root / "stages.jsonl"

    def rel(self, path: Path) -> str:
        """``path`` relative to the run directory, with forward slashes."""
        return path.relative_to(self.root).as_posix()

    def inside(self, path: object, source: str, base: Path | None = None) -> Path:
        """A run-directory path read from one of the run's files (relative to ``base``, a
        folder of the run; the run directory by default), refused with a DataError naming
        ``source`` when it leaves the run (``layout.within``). Every path a reader takes from
        a file's contents goes through here."""
        return within(self.root, path, source, base)

    # --- step 1: episodes (data/generate.py, data/episodes.py) ------------------------------
    @property
    def episodes_dir(self) -> Path:
        return self.root / "episodes"

    @property
    def episode_manifest(self) -> Path:
        return self.episodes_dir / "manifest.json"

    def episode(self, index: int) -> Path:
        return self.episodes_dir / episode_name(index)

    def episode_files(self) -> list[Path]:
        """All finished episode files, sorted by index."""
        return _numbered(self.episodes_dir)

    @property
    def preview_dir(self) -> Path:
        return self.root / "preview"

    def preview(self, episode: int, suffix: str) -> Path:
        """``suffix``: ".mp4", ".gif" or "_contact.png"."""
        return self.preview_dir / f"episode_{episode:06d}{suffix}"

    def preview_episodes(self) -> list[int]:
        """Episodes with a preview video, sorted."""
        return _indices(self.preview_dir, PREVIEW_RE)

    # --- step 2: V (train/vae.py) --------------------------------------------------------------
    @property
    def vae_dir(self) -> Path:
        return self.root / "vae"

    @property
    def vae_model(self) -> Path:
        """Final weights (``.safetensors``; its meta is ``vae_meta``)."""
        return self.vae_dir / "model.safetensors"

    @property
    def vae_meta(self) -> Path:
        return self.vae_dir / "model.json"

    @property
    def vae_checkpoint(self) -> Path:
        """Checkpoint stem: ``checkpoint.safetensors`` + ``checkpoint.json``."""
        return self.vae_dir / "checkpoint"

    @property
    def vae_log(self) -> Path:
        return self.vae_dir / "log.jsonl"

    @property
    def vae_split(self) -> Path:
        return self.vae_dir / "split.json"

    @property
    def vae_reconstructions(self) -> Path:
        """The latest reconstruction grid."""
        return self.vae_dir / "reconstructions.png"

    def vae_recon_epoch(self, epoch: int) -> Path:
        return self.vae_dir / "recon" / f"epoch_{epoch:03d}.png"

    # --- step 3: latents (train/encode.py, checkpoints.py) ------------------------------------
    @property
    def latents_dir(self) -> Path:
        return self.root / "latents"

    @property
    def latent_manifest(self) -> Path:
        return self.latents_dir / "manifest.json"

    def latent(self, index: int) -> Path:
        return self.latents_dir / episode_name(index)

    def latent_files(self) -> list[Path]:
        return _numbered(self.latents_dir)

    @property
    def starts(self) -> Path:
        """Start latents of a run made from shipped models (no encoded episodes)."""
        return self.latents_dir / "starts.npz"

    # --- step 4: M (train/rnn.py) --------------------------------------------------------------
    @property
    def rnn_dir(self) -> Path:
        return self.root / "rnn"

    @property
    def rnn_split(self) -> Path:
        return self.rnn_dir / "split.json"

    def rnn_model_dir(self, index: int) -> Path:
        return self.rnn_dir / f"model_{index}"

    def rnn_model(self, index: int) -> Path:
        """Final (best-epoch) weights of M ``index``."""
        return self.rnn_model_dir(index) / "model.safetensors"

    def rnn_meta(self, index: int) -> Path:
        return self.rnn_model_dir(index) / "model.json"

    def rnn_best(self, index: int) -> Path:
        return self.rnn_model_dir(index) / "best.safetensors"

    def rnn_checkpoint(self, index: int) -> Path:
        return self.rnn_model_dir(index) / "checkpoint"

    def rnn_log(self, index: int) -> Path:
        return self.rnn_model_dir(index) / "log.jsonl"

    def rnn_indices(self) -> list[int]:
        """Indices of the finished Ms (those with a ``model.json``), sorted."""
        if not self.rnn_dir.is_dir():
            return []
        return sorted(
            model_index(p)
            for p in self.rnn_dir.iterdir()
            if MODEL_RE.match(p.name) and (p / "model.json").exists()
        )

    def rnn_logged(self) -> list[int]:
        """Indices of the Ms that have a training log (finished or not), sorted."""
        if not self.rnn_dir.is_dir():
            return []
        return sorted(
            model_index(p)
            for p in self.rnn_dir.iterdir()
            if MODEL_RE.match(p.name) and (p / "log.jsonl").exists()
        )

    # --- dreams (dreams/videos.py) -------------------------------------------------------------
    @property
    def dreams_dir(self) -> Path:
        return self.root / "dreams"

    def dream_dir(self, model: int, commit: int = -1) -> Path:
        """Free dreams of M ``model``, or (``commit`` >= 0) the dreams committed to k."""
        out = self.dreams_dir / f"model_{model}"
        return out / f"committed_{commit}" if commit >= 0 else out

    def dream_settings(self, model: int, commit: int = -1) -> Path:
        """``dreams.json``: the settings; written last, it marks the folder finished."""
        return self.dream_dir(model, commit) / "dreams.json"

    def dream_arrays(self, model: int, commit: int = -1) -> Path:
        return self.dream_dir(model, commit) / "dreams.npz"

    def dream_video(self, model: int, commit: int, j: int, suffix: str = ".mp4") -> Path:
        return self.dream_dir(model, commit) / f"dream_{j}{suffix}"

    def dream_models(self) -> list[int]:
        """Ms with a dreams folder, sorted."""
        return _indices(self.dreams_dir, MODEL_RE)

    def dream_videos(self, model: int, commit: int = -1) -> list[int]:
        """``j`` of each MP4 ``dream_video(model, commit, j)`` there is, sorted."""
        return _indices(self.dream_dir(model, commit), DREAM_VIDEO_RE)

    def dream_commits(self, model: int) -> list[int]:
        """``k`` of each committed-dreams folder ``dream_dir(model, k)``, sorted."""
        return _indices(self.dream_dir(model), COMMIT_RE)

    # --- play-throughs recorded by `mdnworld play` (play/) ---------------------------------------
    @property
    def play_dir(self) -> Path:
        return self.root / "play"

    def play_recording(self, name: str) -> Path | None:
        """``play/<name>`` if ``name`` is a recording's file name (``play_<tag>_<n>.mp4|gif``),
        else None: the play server serves only such names from this folder."""
        return self.play_dir / name if PLAY_RE.fullmatch(name) else None

    # --- analyses (analysis/) --------------------------------------------------------------------
    @property
    def analysis_dir(self) -> Path:
        return self.root / "analysis"

    def analysis(self, name: str) -> Path:
        """The folder of an analysis, by CLI name ("worlds-events") or folder name."""
        return self.analysis_dir / ANALYSES.get(name, name)

    def analysis_results(self, name: str) -> Path:
        return self.analysis(name) / "results.json"

    def analysis_table(self, name: str) -> Path:
        """The analysis's table (``table.csv``: B's rows per class, C's medians)."""
        return self.analysis(name) / "table.csv"

    def analysis_figure(self, name: str) -> Path:
        """B's and C's figure: ``<folder>/<folder>.png``."""
        folder = self.analysis(name)
        return folder / f"{folder.name}.png"

    def analysis_model_file(self, name: str, model: int, suffix: str) -> Path:
        """Per-M files of an analysis: A's ``model_<i>.png/.csv``, B's ``model_<i>.npz/.json``."""
        return self.analysis(name) / f"model_{model}{suffix}"

    def analysis_models(self, name: str, suffix: str) -> list[int]:
        """Ms that have an ``analysis_model_file(name, i, suffix)``, sorted."""
        pattern = re.compile(rf"^model_(\d+){re.escape(suffix)}$")
        return _indices(self.analysis(name), pattern)

    @property
    def committed_counts(self) -> Path:
        """C's frames per class of every committed dream (``counts.csv``)."""
        return self.analysis("committed") / "counts.csv"

    @property
    def analysis_summary(self) -> Path:
        return self.analysis_dir / "summary.md"

    # the detectors against the game's truth (`mdnworld detectors`; not one of ANALYSES)
    @property
    def detectors_dir(self) -> Path:
        return self.analysis_dir / "detectors"

    @property
    def detectors_table(self) -> Path:
        """Precision, recall, F1 per source x class (``table.csv``)."""
        return self.detectors_dir / "table.csv"

    @property
    def detectors_results(self) -> Path:
        return self.detectors_dir / "results.json"

    @property
    def detectors_figure(self) -> Path:
        """Example frames per class: hits, misses, false alarms (``detectors.png``)."""
        return self.detectors_dir / "detectors.png"

    def detectors_set_dir(self, name: str) -> Path:
        """Where one detector set's three files go: "spec" -> ``detectors/``, else a subfolder."""
        return self.detectors_dir if name == "spec" else self.detectors_dir / name

    @property
    def detectors_compare(self) -> Path:
        """F1 per source x class, one column per detector set scored so far (``compare.csv``)."""
        return self.detectors_dir / "compare.csv"

    # --- controller (control/) -------------------------------------------------------------------
    @property
    def controller_dir(self) -> Path:
        return self.root / "controller"

    @property
    def controller_state(self) -> Path:
        """CMA-ES state (``cmaes_state.npz``)."""
        return self.controller_dir / "cmaes_state.npz"

    def controller_meta_of(self, which: str = "mean") -> Path:
        """The ``.json`` beside ``controller_weights(which)``."""
        return self.controller_weights(which).with_suffix(".json")

    def controller_weights(self, which: str = "mean") -> Path:
        """ "mean" -> the trained controller (CMA-ES mean); "best" -> the best dream candidate;
        "selected" -> the winner of the re-scoring on fresh dreams (control/select.py)."""
        names = {"mean": "controller", "best": "best", "selected": "selected"}
        if which not in names:
            raise ConfigError(f"evaluate.which must be one of {list(names)}, got {which!r}")
        return self.controller_dir / f"{names[which]}.safetensors"

    @property
    def controller_candidates(self) -> Path:
        """Each generation's best candidate (``candidates.npz``, control/select.py)."""
        return self.controller_dir / "candidates.npz"

    @property
    def controller_selection(self) -> Path:
        """The re-scoring table (``selection.json``, control/select.py)."""
        return self.controller_dir / "selection.json"

    @property
    def controller_meta(self) -> Path:
        return self.controller_dir / "controller.json"

    @property
    def controller_log(self) -> Path:
        return self.controller_dir / "log.jsonl"

    @property
    def controller_lock(self) -> Path:
        return self.controller_dir / ".lock"

    @property
    def evaluate_dir(self) -> Path:
        return self.root / "evaluate"

    @property
    def evaluate_scores(self) -> Path:
        return self.evaluate_dir / "scores.json"

    def evaluate_video(self, which: str) -> Path:
        """``which``: "best" or "worst"."""
        return self.evaluate_dir / f"{which}.mp4"

    # --- iterate (iterate.py) ------------------------------------------------------------------
    def iterate_round(self, r: int) -> Path:
        """Round ``r``'s own run directory, ``iterate/round_<r>/`` (r >= 1)."""
        return self.root / "iterate" / f"round_{r}"

    def iterate_summary(self, r: int) -> Path:
        """Round ``r``'s row, ``iterate/round_<r>.json`` (r = 0: the run's own controller)."""
        return self.root / "iterate" / f"round_{r}.json"

    # --- report (report/) ------------------------------------------------------------------------
    @property
    def report_dir(self) -> Path:
        return self.root / "report"

    @property
    def report_index(self) -> Path:
        return self.report_dir / "index.html"

    # --- "is this stage done?" -------------------------------------------------------------------
    def generate_done(self, episodes: int) -> bool:
        """Episodes 0 .. episodes - 1 are all written."""
        return all(self.episode(i).exists() for i in range(episodes))

    def show_done(self, episode: int) -> bool:
        return self.preview(episode, "_contact.png").exists()

    def vae_done(self, epochs: int) -> bool:
        """The final weights exist for ``epochs`` epochs (raising ``epochs`` later continues
        the same training from its checkpoint)."""
        return self.vae_meta.exists() and read_json(self.vae_meta)["config"]["epochs"] == epochs

    def encode_done(self) -> bool:
        """Every episode has its latent file."""
        eps = self.episode_files()
        return bool(eps) and all((self.latents_dir / p.name).exists() for p in eps)

    def rnn_done(self, indices: list[int]) -> bool:
        """Every M in ``indices`` has its final ``model.json``."""
        return all(self.rnn_meta(i).exists() for i in indices)

    def dreams_done(self, model: int, commit: int = -1, committed: int = 0) -> bool:
        """The dreams of (model, commit) are finished and, for free dreams with
        ``committed`` > 0, the committed dreams of every component too."""
        settings = self.dream_settings(model, commit)
        if not settings.exists():
            return False
        if commit >= 0 or committed <= 0:
            return True
        K = read_json(settings).get("n_components", 0)
        return all(self.dream_settings(model, k).exists() for k in range(K))

    def analyses_done(self) -> bool:
        return all(self.analysis_results(a).exists() for a in ANALYSES)

    def controller_done(self, generations: int) -> bool:
        meta = self.controller_meta
        return meta.exists() and read_json(meta).get("generation") == generations

    def evaluate_done(self, generation: int, episodes: int) -> bool:
        """Scores exist for the controller of ``generation`` over ``episodes`` episodes."""
        if not self.evaluate_scores.exists():
            return False
        scores = read_json(self.evaluate_scores)
        return scores["generation"] == generation and scores["episodes"] == episodes
