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
from mdnworld.io import atomic_open, atomic_write_json, sha256_file
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


def _rnn_lines(run: RunLayout) -> list[str]:
    models = run.rnn_indices()
    if not models:
        return []
    lines = [
        "## M",
        "",
        "| model | epochs (best) | val NLL/dim | baseline | π entropy (max) | usage |",
        "|---|---|---|---|---|---|",
    ]
    for i in models:
        m = read_rnn_meta(run.rnn_meta(i))
        x = m.metrics
        lines.append(
            f"| {run.rnn_model_dir(i).name} | {m.epochs_run} ({m.best_epoch}) | "
            f"{x.val_nll_per_dim:.3f} | {x.val_baseline_nll_per_dim:.3f} | "
            f"{x.pi_entropy:.3f} ({x.pi_entropy_max:.3f}) | {x.usage_text} |"
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


def results_markdown(run_dir: Path, out: Path, discussion: str = "") -> str:
    """RESULTS.md from the files collected in ``out`` and the run's logs."""
    run = RunLayout(run_dir)
    lines = [f"# Results: `{run.root.name}`", ""]
    lines += _data_lines(run) + _vae_lines(run) + _rnn_lines(run)
    b, c = Path(out) / "tables" / "worlds_events.json", Path(out) / "tables" / "committed.json"
    if b.exists():
        lines += _worlds_events_lines(b)
    if c.exists():
        lines += _committed_lines(c)
    lines += _cost_lines(run)
    lines += ["Checksums of the data and the models: `checksums.json`.", ""]
    if discussion:
        lines += [discussion.strip(), ""]
    return "\n".join(lines)


def collect_results(
    run_dir: Path, out: Path, discussion: Path | None = None, log: Callable[[str], None] = print
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
    atomic_write_json(out / "stages.json", stage_totals(run.root))
    atomic_write_json(out / "checksums.json", checksums(run.root))
    text = results_markdown(run.root, out, discussion.read_text() if discussion else "")
    path = out / "RESULTS.md"
    with atomic_open(path, "w") as f:
        f.write(text)
    log(f"collect-results: {path}")
    return path
