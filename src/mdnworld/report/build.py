"""``mdnworld report RUN_DIR``: one HTML page per run, in ``RUN_DIR/report/index.html``.

The report reads only files of the run directory (JSON, JSONL, CSV, PNG, MP4; it never loads
a model) and works on a partial run: each section is there when its inputs exist, and
otherwise says in one line what is missing and which command makes it.

The folder is self-contained, so it can be copied or opened from disk: the videos and images
it shows are copied to ``report/media/``, the JSON/JSONL/CSV files it quotes to
``report/data/`` (every number on the page links to the file it came from), and the figures
it draws itself (matplotlib) go to ``report/fig/``. Every file is written atomically;
``index.html`` last, then files of an earlier report that the new page no longer uses are
deleted.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import http.server
import json
import os
import shlex
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mdnworld.io import atomic_path, atomic_write_text, read_json
from mdnworld.report import figures
from mdnworld.report.html import (
    Section,
    code,
    esc,
    facts,
    fmt,
    grid,
    how,
    image,
    is_number,
    link,
    missing,
    page,
    table,
    video,
)

REPORT_DIR = "report"
OWN_DIRS = ("data", "media", "fig")
"""Sub-folders of ``report/`` that belong to the report (stale files there are deleted)."""
MAX_DREAM_VIDEOS = 8
"""Free dreams shown per model (the rest are listed, not embedded)."""

Log = Callable[[str], None]


def _dedupe(rows: Iterable[Mapping], key: str) -> list[dict]:
    """The last row for each value of ``key`` (a resumed run logs some steps twice), sorted."""
    last: dict[Any, dict] = {}
    for r in rows:
        if key in r:
            last[r[key]] = dict(r)
    return [last[k] for k in sorted(last)]


def _copy_if_changed(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst`` atomically, unless ``dst`` already has its size and mtime."""
    s = src.stat()
    with contextlib.suppress(FileNotFoundError):
        d = dst.stat()
        if d.st_size == s.st_size and d.st_mtime_ns == s.st_mtime_ns:
            return
    with atomic_path(dst) as tmp:
        shutil.copy2(src, tmp)


class _Report:
    """Reads the run directory, copies what the page quotes, draws the figures."""

    def __init__(self, run_dir: Path, log: Log) -> None:
        self.run = run_dir
        self.out = run_dir / REPORT_DIR
        self.log = log
        self.keep: set[str] = set()
        """Files (relative to ``report/``, POSIX) the page uses."""

    # ---------------------------------------------------------------- files
    def path(self, rel: str) -> Path:
        return self.run / rel

    def exists(self, rel: str) -> bool:
        return self.path(rel).is_file()

    def json(self, rel: str) -> Any:
        return read_json(self.path(rel))

    def jsonl(self, rel: str) -> list[dict]:
        """Rows of a JSONL log; a line that does not parse (one being appended) is skipped."""
        rows = []
        for line in self.path(rel).read_text().splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                row = json.loads(line)
                if isinstance(row, dict):
                    rows.append(row)
        return rows

    def copy(self, rel: str, folder: str) -> str:
        """Copy run file ``rel`` to ``report/<folder>/<rel>``; returns the page's href."""
        href = f"{folder}/{Path(rel).as_posix()}"
        if href not in self.keep:
            _copy_if_changed(self.path(rel), self.out / href)
            self.keep.add(href)
        return href

    def data(self, rel: str) -> str:
        return self.copy(rel, "data")

    def media(self, rel: str) -> str:
        return self.copy(rel, "media")

    def video(self, rel: str, caption: str) -> str:
        """Run video ``rel`` (copied to media/) with a poster: a frame drawn from it."""
        return video(self.media(rel), caption, self.poster(rel))

    def poster(self, rel: str) -> str | None:
        href = f"fig/posters/{Path(rel).with_suffix('.png').as_posix()}"
        src, dst = self.path(rel), self.out / href
        try:
            if not (dst.is_file() and dst.stat().st_mtime_ns >= src.stat().st_mtime_ns):
                figures.write_png(figures.video_frame(src), dst)
        except (OSError, ValueError, RuntimeError, StopIteration) as e:
            self.log(f"report: no poster frame for {rel}: {e}")
            return None
        self.keep.add(href)
        return href

    def figure(self, name: str) -> tuple[Path, str]:
        """Where to draw figure ``name`` and its href."""
        href = f"fig/{name}"
        self.keep.add(href)
        return self.out / href, href

    def source(self, rel: str, text: str | None = None) -> str:
        """A link to a quoted data file (copied into ``report/data/``)."""
        return link(code(text or rel), self.data(rel), f"{rel} of the run, copied here")

    def num(self, value: Any, rel: str, key: str, spec: str = ".4g") -> str:
        """``value`` as text that links to the data file it came from."""
        text = esc(fmt(value, spec))
        if not is_number(value):
            return text
        return link(text, self.data(rel), f"{key} in {rel}", "num")

    def cmd(self, *args: str) -> str:
        """A command line on this run directory."""
        return "mdnworld " + " ".join([*args[:1], shlex.quote(str(self.run)), *args[1:]])

    def prune(self) -> int:
        """Delete files in the report's own folders that this page no longer uses."""
        n = 0
        for folder in OWN_DIRS:
            root = self.out / folder
            if not root.is_dir():
                continue
            for p in sorted(root.rglob("*"), reverse=True):
                rel = p.relative_to(self.out).as_posix()
                if p.is_file() and rel not in self.keep:
                    p.unlink()
                    n += 1
                elif p.is_dir() and not any(p.iterdir()):
                    p.rmdir()
        return n

    # ---------------------------------------------------------------- sections
    def sections(self) -> list[Section]:
        out = []
        for sid, title, build in (
            ("data", "Data: real episodes", self.sec_data),
            ("vae", "V: the VAE", self.sec_vae),
            ("rnn", "M: the MDN-RNN", self.sec_rnn),
            ("dreams", "Dreams", self.sec_dreams),
            ("components", "Analysis A: components over time", self.sec_components),
            ("worlds-events", "Analysis B: worlds and events", self.sec_worlds_events),
            ("committed", "Analysis C: committed dreaming", self.sec_committed),
            ("controller", "Controller: training and the real game", self.sec_controller),
        ):
            try:
                how_html, body, present = build()
            except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError) as e:
                self.log(f"report: section {title!r} could not be built: {e!r}")
                how_html, present = "", False
                body = (
                    f'<p class="missing">Could not read this section\'s files: '
                    f"{esc(type(e).__name__)}: {esc(e)}</p>"
                )
            out.append(Section(sid, title, how_html, body, present))
        return out

    # ---- data
    def sec_data(self) -> tuple[str, str, bool]:
        text = how(
            "The random policy's episodes in the real game: V and M learn from them.",
            "The histogram shows how long the random policy survives (its length, in steps); "
            "the video and the contact sheet show one stored episode at 64×64, as V sees it.",
        )
        man = "episodes/manifest.json"
        if not self.exists(man):
            folder = self.path("episodes")
            n = len(list(folder.glob("ep_*.npz"))) if folder.is_dir() else 0
            what = (
                f"{code(man)} (there are {n} episode files but no manifest: generation unfinished?)"
                if n
                else f"the episodes ({code(man)} not found)"
            )
            return text, missing(what, self.cmd("generate")), False
        m = self.json(man)
        eps = m["episodes"]
        lengths = [int(e["length"]) for e in eps]
        if not lengths:
            return text, missing(f"episodes ({code(man)} lists none)", self.cmd("generate")), False
        s = sorted(lengths)
        median = (s[(len(s) - 1) // 2] + s[len(s) // 2]) / 2
        n_trunc = sum(bool(e.get("truncated")) for e in eps)
        items = [("episodes", self.num(len(eps), man, "len(episodes)"))]
        requested = m.get("config", {}).get("episodes")
        if is_number(requested) and requested != len(eps):
            items.append(("requested", self.num(requested, man, "config.episodes")))
        items += [
            ("frames", self.num(sum(lengths), man, "sum of episodes[].length")),
            ("mean length", self.num(sum(lengths) / len(lengths), man, "mean length", ".1f")),
            ("median length", self.num(median, man, "median length", ".1f")),
            ("shortest", self.num(s[0], man, "min length")),
            ("longest", self.num(s[-1], man, "max length")),
            ("cut at max_steps", self.num(n_trunc, man, "episodes with truncated = true")),
        ]
        parts = [facts(items)]
        path, href = self.figure("episode_lengths.png")
        figures.episode_lengths(lengths, path)
        parts.append(
            image(
                href,
                "histogram of episode lengths",
                f"Episode lengths, drawn from {self.source(man)}.",
                plot=True,
            )
        )
        previews = sorted(self.path("preview").glob("episode_*.mp4"))
        if previews:
            rel = f"preview/{previews[0].name}"
            idx = int(previews[0].stem.split("_")[1])
            entry = next((e for e in eps if e.get("index") == idx), None)
            cap = f"Episode {idx} of the random policy (frames ×4)"
            if entry:
                cap += (
                    f": seed {self.num(entry.get('seed'), man, f'episodes[{idx}].seed', 'id')}, "
                    f"length {self.num(entry.get('length'), man, f'episodes[{idx}].length')} steps"
                )
            items = [self.video(rel, cap + ".")]
            contact = f"preview/episode_{idx:06d}_contact.png"
            if self.exists(contact):
                items.append(
                    image(
                        self.media(contact),
                        f"contact sheet of episode {idx}",
                        f"Contact sheet of episode {idx}: frames in order.",
                        pixel=True,
                    )
                )
            parts.append(grid(items))
        else:
            parts.append(missing("the sample episode video (preview/)", self.cmd("show")))
        return text, "".join(parts), True

    # ---- V
    def sec_vae(self) -> tuple[str, str, bool]:
        text = how(
            "V compresses each 64×64 frame into a latent z; the curves are its losses while "
            "training, and the grid shows real validation frames (top) above V's "
            "reconstructions of them (bottom).",
            "The validation reconstruction loss should fall and level off; KL should stay "
            "clearly above 0 (near 0, z carries no information about the frame).",
        )
        meta_rel, log_rel, grid_rel = "vae/model.json", "vae/log.jsonl", "vae/reconstructions.png"
        if not any(self.exists(r) for r in (meta_rel, log_rel, grid_rel)):
            return text, missing("V (no vae/ files)", self.cmd("train-vae")), False
        parts = []
        if self.exists(meta_rel):
            m = self.json(meta_rel)
            cfg, val = m.get("config", {}), m.get("val", {})
            parts.append(
                facts(
                    [
                        (
                            "val reconstruction (nats/frame)",
                            self.num(val.get("recon"), meta_rel, "val.recon", ",.1f"),
                        ),
                        ("val KL (nats/frame)", self.num(val.get("kl"), meta_rel, "val.kl", ".2f")),
                        (
                            "latent dims",
                            self.num(
                                m.get("arch", {}).get("latent_dim"), meta_rel, "arch.latent_dim"
                            ),
                        ),
                        ("epochs", self.num(cfg.get("epochs"), meta_rel, "config.epochs")),
                        ("steps", self.num(m.get("steps"), meta_rel, "steps")),
                        (
                            "train / val episodes",
                            f"{self.num(m.get('train_episodes'), meta_rel, 'train_episodes')} / "
                            f"{self.num(m.get('val_episodes'), meta_rel, 'val_episodes')}",
                        ),
                    ]
                )
            )
        else:
            parts.append(
                missing(
                    f"V's final weights ({code(meta_rel)}): training unfinished or running",
                    self.cmd("train-vae"),
                )
            )
        if self.exists(log_rel):
            rows = self.jsonl(log_rel)
            train = _dedupe((r for r in rows if "train/recon" in r), "step")
            val = _dedupe((r for r in rows if "val/recon" in r), "epoch")
            if train or val:
                path, href = self.figure("vae_losses.png")
                figures.vae_curves(train, val, path)
                parts.append(
                    image(
                        href,
                        "V's loss curves",
                        f"V's losses, drawn from {self.source(log_rel)}.",
                        plot=True,
                    )
                )
        if self.exists(grid_rel):
            parts.append(
                image(
                    self.media(grid_rel),
                    "V's reconstructions",
                    "Top: validation frames; bottom: V's reconstructions from the posterior mean "
                    "(latest epoch).",
                    pixel=True,
                )
            )
        else:
            parts.append(
                missing(f"the reconstruction grid ({code(grid_rel)})", self.cmd("train-vae"))
            )
        return text, "".join(parts), True

    # ---- M
    def _rnn_models(self) -> list[int]:
        root = self.path("rnn")
        if not root.is_dir():
            return []
        idx = [
            int(p.name.split("_")[1])
            for p in root.glob("model_*")
            if p.is_dir() and p.name.split("_")[1].isdigit()
        ]
        return sorted(
            i
            for i in idx
            if self.exists(f"rnn/model_{i}/model.json") or self.exists(f"rnn/model_{i}/log.jsonl")
        )

    def _n_components(self, model: int) -> int | None:
        rel = f"rnn/model_{model}/model.json"
        if self.exists(rel):
            return self.json(rel).get("arch", {}).get("n_components")
        return None

    def sec_rnn(self) -> tuple[str, str, bool]:
        text = how(
            "M predicts the next latent as a mixture of K Gaussians weighted by π; its NLL is "
            "per latent dimension, next to a random-walk baseline z<sub>t+1</sub> ~ "
            "N(z<sub>t</sub>, σ²) (dotted).",
            "M has learned dynamics when its validation NLL is clearly below the baseline; "
            "π entropy near ln K means the components share the work, near 0 that one "
            "dominates, and the bars show how often each component leads.",
        )
        models = self._rnn_models()
        if not models:
            return text, missing("M (no rnn/model_*/ files)", self.cmd("train-rnn")), False
        rows_html, curves, usage, K = [], {}, {}, 0
        for i in models:
            meta_rel, log_rel = f"rnn/model_{i}/model.json", f"rnn/model_{i}/log.jsonl"
            epochs = (
                _dedupe((r for r in self.jsonl(log_rel) if "val/nll_per_dim" in r), "epoch")
                if self.exists(log_rel)
                else []
            )
            if epochs:
                curves[i] = epochs
            if self.exists(meta_rel):
                m = self.json(meta_rel)
                x, arch = m.get("metrics", {}), m.get("arch", {})
                K = max(K, int(arch.get("n_components") or 0))
                if x.get("component_usage"):
                    usage[i] = x["component_usage"]
                base, val = x.get("val_baseline_nll_per_dim"), x.get("val_nll_per_dim")
                gain = base - val if is_number(base) and is_number(val) else None
                done = (
                    self.num(x.get("val_done_bce"), meta_rel, "metrics.val_done_bce")
                    if arch.get("done_head")
                    else "no"
                )
                rows_html.append(
                    [
                        f"model_{i}",
                        self.num(val, meta_rel, "metrics.val_nll_per_dim"),
                        self.num(base, meta_rel, "metrics.val_baseline_nll_per_dim"),
                        self.num(gain, meta_rel, "val_baseline_nll_per_dim − val_nll_per_dim"),
                        self.num(x.get("train_nll_per_dim"), meta_rel, "metrics.train_nll_per_dim"),
                        self.num(x.get("pi_entropy"), meta_rel, "metrics.pi_entropy", ".3f")
                        + " / "
                        + self.num(
                            x.get("pi_entropy_max"), meta_rel, "metrics.pi_entropy_max", ".3f"
                        ),
                        f"{self.num(m.get('best_epoch'), meta_rel, 'best_epoch')} / "
                        f"{self.num(m.get('epochs_run'), meta_rel, 'epochs_run')}",
                        done,
                        "trained",
                    ]
                )
            elif epochs:
                last = epochs[-1]
                K = max(K, sum(1 for k in last if k.startswith("val/usage_")))
                u = [last[f"val/usage_{k}"] for k in range(K) if f"val/usage_{k}" in last]
                if u:
                    usage[i] = u
                base, val = last.get("val/baseline_nll_per_dim"), last.get("val/nll_per_dim")
                gain = base - val if is_number(base) and is_number(val) else None
                rows_html.append(
                    [
                        f"model_{i}",
                        self.num(val, log_rel, "val/nll_per_dim (last epoch)"),
                        self.num(base, log_rel, "val/baseline_nll_per_dim"),
                        self.num(gain, log_rel, "val/baseline_nll_per_dim − val/nll_per_dim"),
                        self.num(
                            last.get("train/eval_nll_per_dim"), log_rel, "train/eval_nll_per_dim"
                        ),
                        self.num(last.get("val/pi_entropy"), log_rel, "val/pi_entropy", ".3f"),
                        f"– / {self.num(last.get('epoch'), log_rel, 'epoch', 'd')}",
                        "—",
                        "training (last epoch of log.jsonl)",
                    ]
                )
        parts = [
            table(
                [
                    "M",
                    "val NLL/dim",
                    "baseline",
                    "below baseline by",
                    "train NLL/dim",
                    "π entropy / max",
                    "best / run epochs",
                    "done head (val BCE)",
                    "status",
                ],
                rows_html,
                "NLL in nats per latent dimension on the validation episodes (lower is better); "
                "each number links to the model.json (or log.jsonl) it comes from.",
            )
        ]
        sources = ", ".join(self.source(f"rnn/model_{i}/log.jsonl") for i in curves)
        if curves:
            path, href = self.figure("rnn_nll.png")
            figures.rnn_nll(curves, path)
            parts.append(
                image(
                    href,
                    "M's NLL per epoch",
                    f"Solid: validation; dashed: training windows; dotted: the "
                    f"random-walk baseline. Drawn from {sources}.",
                    plot=True,
                )
            )
            if any("val/pi_entropy" in r for rows in curves.values() for r in rows):
                path, href = self.figure("rnn_pi_entropy.png")
                figures.rnn_entropy(curves, K, path)
                parts.append(
                    image(
                        href,
                        "π entropy per epoch",
                        f"π entropy per epoch, drawn from {sources}.",
                        plot=True,
                    )
                )
        if usage:
            path, href = self.figure("rnn_usage.png")
            figures.rnn_usage(usage, path)
            srcs = ", ".join(
                self.source(f"rnn/model_{i}/model.json")
                if self.exists(f"rnn/model_{i}/model.json")
                else self.source(f"rnn/model_{i}/log.jsonl")
                for i in usage
            )
            parts.append(
                image(
                    href,
                    "component usage per model",
                    f"Component usage (colours as in the dream videos), from {srcs}.",
                    plot=True,
                )
            )
        return text, "".join(parts), True

    # ---- dreams
    def sec_dreams(self) -> tuple[str, str, bool]:
        text = how(
            "A dream is M imagining the game from its own samples, decoded to frames by V; "
            "the bars beside each frame are π at that step, and the bar with a black frame "
            "is the component the frame was drawn from.",
            "Free dreams sample the component from π at every step; a committed dream forces "
            "one component k for the whole dream, so it shows what that component alone "
            "predicts.",
        )
        root = self.path("dreams")
        dirs = (
            sorted(
                (p for p in root.glob("model_*") if p.name.split("_")[1].isdigit()),
                key=lambda p: int(p.name.split("_")[1]),
            )
            if root.is_dir()
            else []
        )
        dirs = [d for d in dirs if list(d.glob("dream_*.mp4")) or list(d.glob("committed_*"))]
        if not dirs:
            return text, missing("dreams (no dreams/model_*/ videos)", self.cmd("dream")), False
        parts = []
        for d in dirs:
            i = int(d.name.split("_")[1])
            parts.append(f"<h3>model_{i}</h3>")
            settings = f"dreams/model_{i}/dreams.json"
            K = None
            if self.exists(settings):
                s = self.json(settings)
                K = s.get("n_components")
                parts.append(
                    "<p>"
                    f"{self.num(s.get('dreams'), settings, 'dreams')} dream(s) of "
                    f"{self.num(s.get('steps'), settings, 'steps')} steps; "
                    f"τ<sub>π</sub> = {self.num(s.get('tau_pi'), settings, 'tau_pi')}, "
                    f"τ<sub>σ</sub> = {self.num(s.get('tau_sigma'), settings, 'tau_sigma')}, "
                    f"warm-up {self.num(s.get('warmup'), settings, 'warmup')} steps, "
                    f"{self.num(s.get('teacher_steps'), settings, 'teacher_steps')} real steps "
                    f"fed first; the random action changes with probability "
                    f"{self.num(s.get('p_change'), settings, 'p_change')} per step "
                    f"({self.source(settings, 'dreams.json')}).</p>"
                )
            vids = sorted(d.glob("dream_*.mp4"), key=lambda p: int(p.stem.split("_")[1]))
            if vids:
                parts.append(
                    grid(
                        self.video(f"dreams/model_{i}/{v.name}", f"Free dream {v.stem[6:]}.")
                        for v in vids[:MAX_DREAM_VIDEOS]
                    )
                )
                if len(vids) > MAX_DREAM_VIDEOS:
                    parts.append(
                        f'<p class="meta">{len(vids) - MAX_DREAM_VIDEOS} more in '
                        f"{code(f'dreams/model_{i}/')} (not copied).</p>"
                    )
            committed = {}
            for c in d.glob("committed_*"):
                k = c.name.split("_")[1]
                if k.isdigit() and (c / "dream_0.mp4").is_file():
                    committed[int(k)] = c
            K = K or self._n_components(i)
            if committed:
                parts.append(f"<h3>model_{i}: one committed dream per component</h3>")
                parts.append(
                    grid(
                        self.video(
                            f"dreams/model_{i}/committed_{k}/dream_0.mp4",
                            f"Committed to component k={k}.",
                        )
                        for k in sorted(committed)
                    )
                )
            if is_number(K):
                absent = [k for k in range(int(K)) if k not in committed]
                if absent:
                    ks = ", ".join(str(k) for k in absent)
                    parts.append(
                        missing(
                            f"committed dreams of model_{i} for k = {ks}",
                            self.cmd("dream", f"--model-index {i}", f"--commit {absent[0]}")
                            + (" (and so on for each k)" if len(absent) > 1 else ""),
                        )
                    )
        return text, "".join(parts), True

    # ---- analyses
    def _summary_link(self) -> str:
        rel = "analysis/summary.md"
        return f" All three analyses in one file: {self.source(rel)}." if self.exists(rel) else ""

    def sec_components(self) -> tuple[str, str, bool]:
        text = how(
            "Each figure follows one free dream of one M after a warm-up: π<sub>k</sub> of "
            "every component against time (top), the world classes the detectors see in the "
            "dreamed frames (middle) and the frames themselves (bottom).",
            "In the paper the leading component changes with what happens in the dream; a model "
            "whose lead never changes uses one component for everything.",
        )
        rel = "analysis/components_over_time/results.json"
        if not self.exists(rel):
            return (
                text,
                missing(
                    f"analysis A ({code(rel)} not found)", self.cmd("analyze components-over-time")
                ),
                False,
            )
        res = self.json(rel)
        models = res.get("models", {})
        K = max((len(m.get("dominant_share", [])) for m in models.values()), default=0)
        rows = []
        for key in sorted(models, key=int):
            m = models[key]
            share = m.get("dominant_share", [])
            rows.append(
                [
                    f"model_{key}",
                    *(
                        self.num(
                            share[k] if k < len(share) else None,
                            rel,
                            f"models.{key}.dominant_share[{k}]",
                        )
                        for k in range(K)
                    ),
                    self.num(m.get("switches"), rel, f"models.{key}.switches"),
                    self.num(m.get("start_episode"), rel, f"models.{key}.start_episode", "id"),
                ]
            )
        parts = [
            f"<p>{self.num(res.get('steps'), rel, 'steps')} recorded steps after "
            f"{self.num(res.get('warmup'), rel, 'warmup')} warm-up steps, per M "
            f"({self.source(rel, 'results.json')}).{self._summary_link()}</p>",
            table(
                ["M", *(f"steps led by k={k}" for k in range(K)), "lead changes", "start episode"],
                rows,
                "Steps at which each component has the largest π (the dominant component), "
                "and how often the lead changes.",
            ),
        ]
        figs = []
        for key in sorted(models, key=int):
            fig_rel = models[key].get("figure")
            png = f"analysis/{fig_rel}" if fig_rel else ""
            if png and self.exists(png):
                csv_rel = png[: -len(".png")] + ".csv"
                cap = f"model_{key}."
                if self.exists(csv_rel):
                    cap += f" Per-step values: {self.source(csv_rel, Path(csv_rel).name)}."
                figs.append(
                    image(self.media(png), f"components over time, model_{key}", cap, plot=True)
                )
        parts.extend(figs)
        return text, "".join(parts), True

    def sec_worlds_events(self) -> tuple[str, str, bool]:
        text = how(
            "Per class, <i>main</i> is the component that most often dominates the class's "
            "frames; Current is the share of those frames it dominates, Any its share of all "
            "frames, and the stars test Current &gt; Any (Mann–Whitney U, as in the paper).",
            "Choosing main on the class's frames inflates Current by itself, so the null column "
            "recomputes Current with each dream's components circularly shifted: a class is "
            "only tied to a component when Current also beats the null (small null p).",
        )
        rel = "analysis/worlds_events/results.json"
        if not self.exists(rel):
            return (
                text,
                missing(f"analysis B ({code(rel)} not found)", self.cmd("analyze worlds-events")),
                False,
            )
        res = self.json(rel)
        rows = []
        for n, r in enumerate(res.get("rows", [])):

            def v(key: str, spec: str = ".2f", r: Mapping = r, n: int = n) -> str:
                return self.num(r.get(key), rel, f"rows[{n}].{key}", spec)

            rows.append(
                [
                    esc(r.get("class")),
                    esc(r.get("kind", "")),
                    v("n_dreams", "d"),
                    v("median_current"),
                    v("median_any"),
                    v("u", ".4g"),
                    v("p", ".3g"),
                    esc(r.get("stars") or "—"),
                    v("null_mean"),
                    v("null_p", ".3f"),
                    f"{v('paper_current')} / {v('paper_any')} {esc(r.get('paper_stars') or '')}",
                ]
            )
        models = ", ".join(f"model_{m}" for m in res.get("models", []))
        parts = [
            f"<p>{self.num(res.get('dreams'), rel, 'dreams')} dreams of "
            f"{self.num(res.get('steps'), rel, 'steps')} steps over {esc(models) or '—'}; the "
            f"null shifts each dream many times ({self.source(rel, 'results.json')}"
            + (
                f", {self.source('analysis/worlds_events/table.csv', 'table.csv')}"
                if self.exists("analysis/worlds_events/table.csv")
                else ""
            )
            + f").{self._summary_link()}</p>",
            table(
                [
                    "class",
                    "kind",
                    "dreams",
                    "Current",
                    "Any",
                    "U",
                    "p",
                    "sig.",
                    "null Current",
                    "null p",
                    "paper Current / Any",
                ],
                rows,
                "Medians over dreams. sig.: *** p &lt; 0.001, ** p &lt; 0.01, * p &lt; 0.05, "
                "n.s. otherwise; — where no dream showed the class.",
            ),
        ]
        png = "analysis/worlds_events/worlds_events.png"
        if self.exists(png):
            parts.append(
                image(
                    self.media(png),
                    "worlds and events box plots",
                    "Current (red) vs Any (blue) per class, with the null's mean "
                    "(diamond) and the paper's medians (stars).",
                    plot=True,
                )
            )
        return text, "".join(parts), True

    def sec_committed(self) -> tuple[str, str, bool]:
        text = how(
            "Every step of these dreams is forced onto one component k, and the detectors count "
            "the frames of each class: a row is what component k alone dreams.",
            "A component specialises when its row differs from the others (in the paper one "
            "component made most of the explosions); forcing is an intervention, so no null "
            "is needed here.",
        )
        rel = "analysis/committed/results.json"
        if not self.exists(rel):
            return (
                text,
                missing(f"analysis C ({code(rel)} not found)", self.cmd("analyze committed")),
                False,
            )
        res = self.json(rel)
        classes = res.get("classes", [])
        medians = res.get("median_frames", [])
        # results.json names an explosion component even when no dream exploded (the argmax
        # of all zeros): highlight it only when its median is above 0
        expl = res.get("explosion_component")
        expl_row = next((r for r in medians if r.get("component") == expl), {})
        explodes = is_number(expl_row.get("Explosion")) and expl_row["Explosion"] > 0
        rows, hl = [], []
        for n, r in enumerate(medians):
            if explodes and r is expl_row:
                hl.append(n)
            rows.append(
                [
                    f"k={esc(r.get('component'))}",
                    *(self.num(r.get(c), rel, f"median_frames[{n}].{c}", "d") for c in classes),
                ]
            )
        csvs = [
            self.source(f"analysis/committed/{f}", f)
            for f in ("table.csv", "counts.csv")
            if self.exists(f"analysis/committed/{f}")
        ]
        parts = [
            f"<p>model_{esc(res.get('model'))}: {self.num(res.get('tests'), rel, 'tests')} "
            f"dreams per forced component, {self.num(res.get('steps'), rel, 'steps')} steps "
            f"each from step {self.num(res.get('start_t'), rel, 'start_t')} of real episodes "
            f"({', '.join([self.source(rel, 'results.json'), *csvs])}).{self._summary_link()}"
            "</p>",
            table(
                ["component", *(esc(c) for c in classes)],
                rows,
                "Median frames per class over the dreams of each component"
                + (
                    f"; highlighted: the component with the most explosion frames (k={esc(expl)})"
                    if explodes
                    else "; no component's median dream showed an explosion"
                    if "Explosion" in classes
                    else ""
                )
                + (f". Paper: {esc(res['paper'])}." if res.get("paper") else "."),
                highlight=hl,
            ),
        ]
        png = "analysis/committed/committed.png"
        if self.exists(png):
            parts.append(
                image(
                    self.media(png),
                    "committed dreams box plots",
                    "Frames per class, one box per forced component.",
                    plot=True,
                )
            )
        return text, "".join(parts), True

    # ---- controller
    def sec_controller(self) -> tuple[str, str, bool]:
        text = how(
            "C is a linear controller trained by CMA-ES entirely inside M's dream (grey: "
            "dream survival); red squares: the generation's best candidate in the real game.",
            "Dream fitness can rise while the real score does not (C exploits M's mistakes); "
            "the real-game scores are what count, next to the random policy, World Models, "
            "and 750, the score at which the task counts as solved.",
        )
        log_rel, ctl_rel = "controller/log.jsonl", "controller/controller.json"
        scores_rel = "evaluate/scores.json"
        if not any(self.exists(r) for r in (log_rel, ctl_rel, scores_rel)):
            return (
                text,
                missing(
                    "the controller (no controller/ or evaluate/ files; it needs an M with a done "
                    "head)",
                    self.cmd("train-controller"),
                ),
                False,
            )
        parts = []
        ctl = self.json(ctl_rel) if self.exists(ctl_rel) else None
        if ctl is not None:
            cfg = ctl.get("config", {})
            items = [
                (
                    "generations",
                    f"{self.num(ctl.get('generation'), ctl_rel, 'generation')} / "
                    f"{self.num(cfg.get('generations'), ctl_rel, 'config.generations')}",
                ),
                (
                    "dreaming M",
                    f"model_{self.num(ctl.get('model_index'), ctl_rel, 'model_index', 'id')}",
                ),
                ("population", self.num(cfg.get("popsize"), ctl_rel, "config.popsize")),
                ("dreams per candidate", self.num(cfg.get("rollouts"), ctl_rel, "config.rollouts")),
                ("dream temperature τ", self.num(cfg.get("tau"), ctl_rel, "config.tau")),
            ]
            best_rel = "controller/best.json"
            if self.exists(best_rel):
                best = self.json(best_rel)
                items.append(
                    (
                        "best dream fitness",
                        self.num(best.get("fitness"), best_rel, "fitness", ".3g"),
                    )
                )
            parts.append(facts(items))
        else:
            parts.append(
                missing(
                    f"the trained controller ({code(ctl_rel)}): training unfinished or running",
                    self.cmd("train-controller"),
                )
            )
        if self.exists(log_rel):
            rows = _dedupe(self.jsonl(log_rel), "step")
            if rows:
                path, href = self.figure("controller_fitness.png")
                figures.controller_fitness(rows, path)
                parts.append(
                    image(
                        href,
                        "controller fitness per generation",
                        f"Drawn from {self.source(log_rel)}.",
                        plot=True,
                    )
                )
        parts.append("<h3>In the real game</h3>")
        if not self.exists(scores_rel):
            parts.append(missing(f"real-game scores ({code(scores_rel)})", self.cmd("evaluate")))
            return text, "".join(parts), True
        sc = self.json(scores_rel)
        ref = sc.get("reference", {})
        items = [
            ("mean score", self.num(sc.get("mean"), scores_rel, "mean", ".1f")),
            ("std", self.num(sc.get("std"), scores_rel, "std", ".1f")),
            ("episodes", self.num(sc.get("episodes"), scores_rel, "episodes")),
            (
                "min / max",
                f"{self.num(sc.get('min'), scores_rel, 'min')} / "
                f"{self.num(sc.get('max'), scores_rel, 'max')}",
            ),
            ("solved (mean ≥ 750)", esc(fmt(sc.get("solved")))),
        ]
        for key, name in (
            ("random_policy", "random policy"),
            ("world_models_tau_1.15", "World Models"),
        ):
            r = ref.get(key)
            if isinstance(r, Sequence) and len(r) == 2:
                items.append(
                    (
                        f"{name} (paper)",
                        f"{self.num(r[0], scores_rel, f'reference.{key}[0]')} ± "
                        f"{self.num(r[1], scores_rel, f'reference.{key}[1]')}",
                    )
                )
        parts.append(facts(items))
        note = (
            f"<p>The {esc(sc.get('controller', ''))} controller of generation "
            f"{self.num(sc.get('generation'), scores_rel, 'generation')} "
            f"({self.source(scores_rel, 'scores.json')})."
        )
        if ctl is not None and sc.get("generation") != ctl.get("generation"):
            note += (
                f" These scores are of an older controller than the one trained now "
                f"(generation {self.num(ctl.get('generation'), ctl_rel, 'generation')}): "
                f"run {code(self.cmd('evaluate'))} again."
            )
        parts.append(note + "</p>")
        per = [e.get("score") for e in sc.get("per_episode", []) if is_number(e.get("score"))]
        if per:
            path, href = self.figure("real_scores.png")
            figures.real_scores(per, ref, path)
            parts.append(
                image(
                    href,
                    "histogram of real-game scores",
                    f"Real-game scores per episode, drawn from {self.source(scores_rel)}.",
                    plot=True,
                )
            )
        vids = []
        for key, name in (("best_video", "Best"), ("worst_video", "Worst")):
            v = sc.get(key)
            if isinstance(v, Mapping) and v.get("file") and self.exists(f"evaluate/{v['file']}"):
                vids.append(
                    self.video(
                        f"evaluate/{v['file']}",
                        f"{name} episode: score "
                        + self.num(v.get("score"), scores_rel, f"{key}.score")
                        + ", seed "
                        + self.num(v.get("seed"), scores_rel, f"{key}.seed", "id")
                        + "; the real frame beside V's reconstruction.",
                    )
                )
        if vids:
            parts.append(grid(vids))
        elif sc.get("best_video") or sc.get("worst_video"):
            parts.append(
                missing("the best/worst episode videos in evaluate/", self.cmd("evaluate"))
            )
        return text, "".join(parts), True

    # ---------------------------------------------------------------- page
    def header(self) -> str:
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        links = [self.source(r, Path(r).name) for r in ("config.json",) if self.exists(r)]
        cfg = f" Latest command's settings: {links[0]}." if links else ""
        return (
            f'<p class="meta">Run directory {code(str(self.run))}; report written '
            f"{esc(now)}.{cfg}<br>Every number links to the JSON or CSV file it comes from "
            f"(copied into {code('report/data/')}); sections whose files are missing say so and "
            f"name the command that makes them.</p>"
        )


def write_report(run_dir: Path, log: Log = print) -> Path:
    """Write ``RUN_DIR/report/index.html`` (and its media, data and figures); returns its
    path. Works on a partial run; raises FileNotFoundError when ``run_dir`` does not exist."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: no such run directory")
    r = _Report(run_dir, log)
    sections = r.sections()
    absent = [s.title for s in sections if not s.present]
    header = r.header()
    if absent:
        header += f'<p class="missing">Not in this run yet: {esc("; ".join(absent))}.</p>'
    name = run_dir.resolve().name
    footer = (
        f"Made by {code('mdnworld report')} from the files of {code(name)} only; "
        f"open {code('index.html')} from disk or serve the folder with "
        f"{code(r.cmd('report', '--serve'))}."
    )
    html = page(f"mdnworld report: {name}", header, sections, footer)
    index = r.out / "index.html"
    atomic_write_text(index, html)
    removed = r.prune()
    present = len(sections) - len(absent)
    log(
        f"report: {present}/{len(sections)} sections"
        + (f" (missing: {', '.join(absent)})" if absent else "")
        + (f", {removed} stale file(s) removed" if removed else "")
        + f"; {index}"
    )
    return index


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


def make_server(report_dir: Path, port: int = 8000) -> http.server.ThreadingHTTPServer:
    """An HTTP server for ``report_dir`` on 127.0.0.1 (port 0: any free port)."""
    report_dir = Path(report_dir)
    if not (report_dir / "index.html").is_file():
        raise FileNotFoundError(f"{report_dir / 'index.html'}: no report (run mdnworld report)")
    handler = functools.partial(_QuietHandler, directory=os.fspath(report_dir))
    return http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)


def serve(report_dir: Path, port: int = 8000, log: Log = print) -> None:
    """Serve the report folder on http://127.0.0.1:PORT/ until interrupted (Ctrl-C)."""
    with make_server(report_dir, port) as server:
        host, real_port = server.server_address[:2]
        log(
            f"report: serving {report_dir} on http://{host}:{real_port}/ (Ctrl-C stops it; "
            f"on a remote machine: ssh -L {real_port}:127.0.0.1:{real_port} HOST, then open "
            "that address here)"
        )
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            log("report: server stopped")
