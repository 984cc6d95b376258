"""``mdnworld collect-results RUN_DIR OUT``: the committed record of a run (e.g. results/paper/).

Copies what a reader needs and nothing heavy: the analyses' figures and tables, training curves
drawn from the logs, the wall time and peak memory of every stage (``stages.jsonl``), checksums
of the data and the models, and writes ``RESULTS.md`` with every number of the paper (SPEC §7)
next to ours. The interpretation is written by a person: ``--discussion FILE`` (markdown) is
put at the end of RESULTS.md as it is.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mdnworld.analysis.run import committed_table
from mdnworld.io import atomic_open, atomic_write_json, read_json, sha256_file
from mdnworld.layout import RunLayout
from mdnworld.records import (
    read_committed,
    read_episode_manifest,
    read_log_rows,
    read_rnn_meta,
    read_worlds_events,
)
from mdnworld.reference import RANDOM_POLICY
from mdnworld.stage_log import stage_totals
from mdnworld.text import fmt


def _copies(run: RunLayout) -> list[tuple[Path, str]]:
    """(file of the run, where it goes in OUT)."""
    return [
        (run.analysis_summary, "analysis/summary.md"),
        (run.analysis_figure("worlds-events"), "figures/worlds_events.png"),
        (run.analysis_table("worlds-events"), "tables/worlds_events.csv"),
        (run.analysis_results("worlds-events"), "tables/worlds_events.json"),
        (run.analysis_figure("committed"), "figures/committed.png"),
        (run.analysis_table("committed"), "tables/committed_medians.csv"),
        (run.committed_counts, "tables/committed_counts.csv"),
        (run.analysis_results("committed"), "tables/committed.json"),
        (run.analysis_results("components-over-time"), "tables/components_over_time.json"),
        (run.vae_reconstructions, "figures/vae_reconstructions.png"),
        (run.episode_manifest, "data/episodes_manifest.json"),
        (run.evaluate_scores, "tables/real_game_scores.json"),
    ]


def checksums(run_dir: Path) -> dict[str, Any]:
    """sha256 of every episode file (and one over all of them), V and every M (the
    controller has its own record: ``mdnworld controller-results``)."""
    run = RunLayout(run_dir)
    episodes = run.episode_files()
    per_episode = {p.name: sha256_file(p) for p in episodes}
    overall = hashlib.sha256("".join(per_episode[k] for k in sorted(per_episode)).encode())
    models = sorted([run.vae_model] + [run.rnn_model(i) for i in run.rnn_indices()])
    return {
        "episodes": len(episodes),
        "episodes_sha256": overall.hexdigest(),
        "episode_files": per_episode,
        "models": {run.rel(p): sha256_file(p) for p in models if p.exists()},
    }


def _data_lines(run: RunLayout) -> list[str]:
    if not run.episode_manifest.exists():
        return []
    lengths = read_episode_manifest(run.episode_manifest).lengths
    if not lengths:
        return []
    import numpy as np

    return [
        "## Data",
        "",
        f"{len(lengths)} random-policy episodes, {sum(lengths):,} frames; survival "
        f"{np.mean(lengths):.1f} ± {np.std(lengths):.1f} steps (World Models' random policy: "
        f"{RANDOM_POLICY[0]} ± {RANDOM_POLICY[1]}).",
        "",
    ]


def _vae_lines(run: RunLayout) -> list[str]:
    if not (run.vae_meta.exists() and run.vae_log.exists()):
        return []
    val = [r for r in read_log_rows(run.vae_log) if "val/recon" in r]
    if not val:
        return []
    return [
        "## V",
        "",
        "| epoch | val reconstruction | val KL |",
        "|---|---|---|",
        *(f"| {r['epoch']:g} | {r['val/recon']:.1f} | {r['val/kl']:.2f} |" for r in val),
        "",
        "![V's reconstructions](figures/vae_reconstructions.png)",
        "",
    ]


def rnn_rows(run: RunLayout) -> list[dict[str, Any]]:
    """Each M's best epoch as a row (``tables/rnn_models.json`` of a collected run)."""
    rows = []
    for i in run.rnn_indices():
        m = read_rnn_meta(run.rnn_meta(i))
        x = m.metrics
        rows.append({
            "model": run.rnn_model_dir(i).name, "epochs": m.epochs_run,
            "best_epoch": m.best_epoch, "val_nll_per_dim": x.val_nll_per_dim,
            "baseline_nll_per_dim": x.val_baseline_nll_per_dim, "pi_entropy": x.pi_entropy,
            "pi_entropy_max": x.pi_entropy_max, "usage": list(x.component_usage),
        })  # fmt: skip
    return rows


def _rnn_lines(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return []
    lines = [
        "## M",
        "",
        "| model | epochs (best) | val NLL/dim | baseline | π entropy (max) | usage |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        usage = " ".join(f"{u:.2f}" for u in r["usage"])
        lines.append(
            f"| {r['model']} | {r['epochs']} ({r['best_epoch']}) | {r['val_nll_per_dim']:.3f} | "
            f"{r['baseline_nll_per_dim']:.3f} | {r['pi_entropy']:.3f} "
            f"({r['pi_entropy_max']:.3f}) | {usage} |"
        )
    return [*lines, "", "![M's training curves](figures/rnn_nll.png)", ""]


def _worlds_events_lines(path: Path) -> list[str]:
    r = read_worlds_events(path)
    lines = [
        "## B. Worlds and events vs. the main component, against the paper",
        "",
        f"{r.dreams} dreams × {r.steps} steps from {len(r.models)} Ms. Current / Any "
        "are medians over dreams; sig.: the paper's Mann–Whitney U; null: median Current "
        "under circular shifts of the dominant components, and its empirical p.",
        "",
        "| class | paper Current / Any (sig.) | ours Current / Any (sig., p) "
        "| null Current (p) | dreams |",
        "|---|---|---|---|---|",
    ]
    for row in r.rows:
        paper = (
            f"{fmt(row.paper_current, '.2f')} / {fmt(row.paper_any, '.2f')} ({row.paper_stars})"
            if row.paper_stars
            else "—"
        )
        ours = (
            f"{fmt(row.median_current, '.2f')} / {fmt(row.median_any, '.2f')} "
            f"({row.stars}, {fmt(row.p, '.2g')})"
            if row.n_dreams
            else "class never seen"
        )
        null = f"{fmt(row.null_mean, '.2f')} ({fmt(row.null_p, '.3f')})"
        lines.append(f"| {row.cls} | {paper} | {ours} | {null} | {row.n_dreams} |")
    return [*lines, "", "![B](figures/worlds_events.png)", ""]


def _committed_lines(path: Path) -> list[str]:
    r = read_committed(path)
    return [
        "## C. Committed dreaming, against the paper",
        "",
        f"Paper: {r.paper}. Ours (model_{r.model}, median frames of {r.steps} over "
        f"{r.tests} dreams per component):",
        "",
        *committed_table(r),
        "",
        "![C](figures/committed.png)",
        "",
    ]


def _cost_lines(run: RunLayout) -> list[str]:
    totals = stage_totals(run.root)
    if not totals:
        return []
    lines = [
        "## Cost of each stage",
        "",
        "| stage | machine | wall time | peak RSS (process tree) | runs (stops, resumes, "
        "side by side) |",
        "|---|---|---|---|---|",
    ]
    for name, total in totals.items():
        for where, t in total["by_machine"].items():
            hours = t["seconds"] / 3600
            wall = f"{hours:.2f} h" if hours >= 1 else f"{t['seconds'] / 60:.1f} min"
            mb, runs = t["peak_rss_mb"], t["runs"]
            lines.append(f"| {name} | {where} | {wall} | {mb:.0f} MB | {runs} |")
    return [*lines, ""]


# --- runs side by side (``collect-results ... --beside NAME=FOLDER``) ---------------------------

B_FILES = ("tables/worlds_events.json", "detectors/validated_analyses/worlds_events.json")
C_FILES = ("tables/committed.json", "detectors/validated_analyses/committed.json")
"""Where a collected folder holds B's and C's results: as the run was analysed, and with the
validated detectors (copied there by ``scripts/paper_analyses.sh``)."""


def _detector_label(detectors: str, wall_red_over_blue: float) -> str:
    return detectors + (f", walls red-blue > {wall_red_over_blue:g}" if wall_red_over_blue else "")


def _range(values: list[float], spec: str) -> str:
    lo, hi = min(values), max(values)
    return f"{lo:{spec}}" if f"{lo:{spec}}" == f"{hi:{spec}}" else f"{lo:{spec}} … {hi:{spec}}"


def _beside_m(folders: dict[str, Path]) -> list[str]:
    lines = ["| run | Ms | epochs (best) | val NLL/dim | copy-last baseline | π entropy |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for name, folder in folders.items():
        path = folder / "tables" / "rnn_models.json"
        if not path.exists():
            continue
        rows = read_json(path)
        if not rows:
            continue
        col = {k: [r[k] for r in rows] for k in rows[0]}
        lines.append(
            f"| {name} | {len(rows)} | {_range(col['epochs'], 'd')} "
            f"({_range(col['best_epoch'], 'd')}) | {_range(col['val_nll_per_dim'], '.3f')} | "
            f"{_range(col['baseline_nll_per_dim'], '.3f')} | {_range(col['pi_entropy'], '.2f')} |"
        )
    return [*lines, ""] if len(lines) > 2 else []


def _columns(folders: dict[str, Path], files: tuple[str, ...], read: Callable) -> list:
    """(column heading, record) of each of ``files`` that each folder holds."""
    return [(f"{name} ({_detector_label(r.detectors, r.wall_red_over_blue)})", r)
            for name, folder in folders.items() for f in files
            if (folder / f).exists() for r in [read(folder / f)]]  # fmt: skip


def _header(intro: str, first: list[str], cols: list) -> list[str]:
    heads = [*first, *(c for c, _ in cols)]
    return [intro, "", "| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]


def _beside_b(folders: dict[str, Path]) -> list[str]:
    cols = _columns(folders, B_FILES, read_worlds_events)
    if not cols:
        return []
    lines = _header(
        "B: Current / Any over dreams (the paper's Mann–Whitney stars), the circular-shift "
        "null's p, and the dreams that show the class.",
        ["class", "paper"],
        cols,
    )
    by_class = [{row.cls: row for row in r.rows} for _, r in cols]
    for cls in dict.fromkeys(row.cls for _, r in cols for row in r.rows):
        first = next(rows[cls] for rows in by_class if cls in rows)
        paper = (f"{fmt(first.paper_current, '.2f')} / {fmt(first.paper_any, '.2f')} "
                 f"{first.paper_stars}" if first.paper_stars else "—")  # fmt: skip
        cells = []
        for rows in by_class:
            row = rows.get(cls)
            cells.append(
                "—" if row is None or not row.n_dreams else
                f"{fmt(row.median_current, '.2f')} / {fmt(row.median_any, '.2f')} {row.stars}, "
                f"null p {fmt(row.null_p, '.3f')} ({row.n_dreams})"
            )  # fmt: skip
        lines.append(f"| {cls} | {paper} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _beside_c(folders: dict[str, Path]) -> list[str]:
    cols = _columns(folders, C_FILES, read_committed)
    if not cols:
        return []
    lines = _header(
        "C: for each class, the component that dreams it most when forced (median frames of "
        "1000) and the most any other component dreams.",
        ["class"],
        cols,
    )
    for cls in dict.fromkeys(c for _, r in cols for c in r.classes):
        cells = []
        for _, r in cols:
            lead = r.lead(cls)
            if lead is None:
                cells.append("—")
                continue
            k, frames, rest = lead
            cells.append(f"k={k}: {frames:g} (others ≤ {rest:g})")
        lines.append(f"| {cls} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def beside_lines(folders: dict[str, Path]) -> list[str]:
    """Runs side by side, from their collected folders (``name -> folder``, this run first):
    M's convergence, B and C with every detector set each folder holds."""
    body = _beside_m(folders) + _beside_b(folders) + _beside_c(folders)
    return ["## Side by side: " + ", ".join(f"`{n}`" for n in folders), "", *body] if body else []


def results_markdown(
    run_dir: Path, out: Path, discussion: str = "", beside: dict[str, Path] | None = None
) -> str:
    """RESULTS.md from the files collected in ``out`` and the run's logs; ``beside`` (name ->
    collected folder of another run) adds the runs side by side."""
    run = RunLayout(run_dir)
    lines = [f"# Results: `{run.root.name}`", ""]
    lines += _data_lines(run) + _vae_lines(run) + _rnn_lines(rnn_rows(run))
    b, c = Path(out) / "tables" / "worlds_events.json", Path(out) / "tables" / "committed.json"
    if b.exists():
        lines += _worlds_events_lines(b)
    if c.exists():
        lines += _committed_lines(c)
    if beside:
        lines += beside_lines({run.root.name: Path(out), **beside})
    lines += _cost_lines(run)
    lines += ["Checksums of the data and the models: `checksums.json`.", ""]
    if discussion:
        lines += [discussion.strip(), ""]
    return "\n".join(lines)


def collect_results(
    run_dir: Path,
    out: Path,
    discussion: Path | None = None,
    log: Callable[[str], None] = print,
    beside: dict[str, Path] | None = None,
) -> Path:
    from mdnworld.report import figures

    run, out = RunLayout(run_dir), Path(out)
    for src, dst in _copies(run):
        if src.exists():
            (out / dst).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, out / dst)
    a = "components-over-time"
    for p in (run.analysis_model_file(a, i, ".png") for i in run.analysis_models(a, ".png")):
        (out / "figures").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(p, out / "figures" / f"components_over_time_{p.stem}.png")
    if run.vae_log.exists():
        rows = read_log_rows(run.vae_log)
        train = [r for r in rows if "train/recon" in r]
        val = [r for r in rows if "val/recon" in r]
        figures.vae_curves(train, val, out / "figures" / "vae_curves.png")
    rnn_logs = {i: [r for r in read_log_rows(run.rnn_log(i)) if "epoch" in r]
                for i in run.rnn_logged()}  # fmt: skip
    if rnn_logs:
        figures.rnn_nll(rnn_logs, out / "figures" / "rnn_nll.png")
    if rows := rnn_rows(run):
        (out / "tables").mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "tables" / "rnn_models.json", rows)
    atomic_write_json(out / "stages.json", stage_totals(run.root))
    atomic_write_json(out / "checksums.json", checksums(run.root))
    text = results_markdown(run.root, out, discussion.read_text() if discussion else "", beside)
    path = out / "RESULTS.md"
    with atomic_open(path, "w") as f:
        f.write(text)
    log(f"collect-results: {path}")
    return path
