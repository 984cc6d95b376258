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
from mdnworld.logs import read_log
from mdnworld.stage_log import stage_totals

COPY = (  # (from RUN_DIR, to OUT)
    ("analysis/summary.md", "analysis/summary.md"),
    ("analysis/worlds_events/worlds_events.png", "figures/worlds_events.png"),
    ("analysis/worlds_events/table.csv", "tables/worlds_events.csv"),
    ("analysis/worlds_events/results.json", "tables/worlds_events.json"),
    ("analysis/committed/committed.png", "figures/committed.png"),
    ("analysis/committed/table.csv", "tables/committed_medians.csv"),
    ("analysis/committed/counts.csv", "tables/committed_counts.csv"),
    ("analysis/committed/results.json", "tables/committed.json"),
    ("analysis/components_over_time/results.json", "tables/components_over_time.json"),
    ("vae/reconstructions.png", "figures/vae_reconstructions.png"),
    ("episodes/manifest.json", "data/episodes_manifest.json"),
    ("evaluate/scores.json", "tables/real_game_scores.json"),
)
WORLD_MODELS_RANDOM = (210, 108)


def checksums(run_dir: Path) -> dict[str, Any]:
    """sha256 of every episode file (and one over all of them), V and every M (the
    controller has its own record: ``mdnworld controller-results``)."""
    episodes = sorted((run_dir / "episodes").glob("ep_*.npz"))
    per_episode = {p.name: sha256_file(p) for p in episodes}
    overall = hashlib.sha256("".join(per_episode[k] for k in sorted(per_episode)).encode())
    models = sorted(
        [run_dir / "vae" / "model.safetensors"]
        + list((run_dir / "rnn").glob("model_*/model.safetensors"))
    )
    return {
        "episodes": len(episodes),
        "episodes_sha256": overall.hexdigest(),
        "episode_files": per_episode,
        "models": {str(p.relative_to(run_dir)): sha256_file(p) for p in models if p.exists()},
    }


def _fmt(x: Any, spec: str = ".2f") -> str:
    return "—" if x is None else format(x, spec)


def results_markdown(run_dir: Path, out: Path, discussion: str = "") -> str:
    """RESULTS.md from the files collected in ``out`` and the run's logs."""
    lines = [f"# Results: `{run_dir.name}`", ""]
    man = (
        read_json(run_dir / "episodes" / "manifest.json") if (run_dir / "episodes").exists() else {}
    )
    lengths = [e["length"] for e in man.get("episodes", [])]
    if lengths:
        import numpy as np

        lines += [
            "## Data",
            "",
            f"{len(lengths)} random-policy episodes, {sum(lengths):,} frames; survival "
            f"{np.mean(lengths):.1f} ± {np.std(lengths):.1f} steps (World Models' random policy: "
            f"{WORLD_MODELS_RANDOM[0]} ± {WORLD_MODELS_RANDOM[1]}).",
            "",
        ]
    vae_meta = run_dir / "vae" / "model.json"
    if vae_meta.exists():
        val = [r for r in read_log(run_dir / "vae" / "log.jsonl") if "val/recon" in r]
        if val:
            lines += ["## V", "", "| epoch | val reconstruction | val KL |", "|---|---|---|"]
            lines += [f"| {r['epoch']:g} | {r['val/recon']:.1f} | {r['val/kl']:.2f} |" for r in val]
            lines += ["", "![V's reconstructions](figures/vae_reconstructions.png)", ""]
    metas = sorted((run_dir / "rnn").glob("model_*/model.json"))
    if metas:
        lines += [
            "## M",
            "",
            "| model | epochs (best) | val NLL/dim | baseline | π entropy (max) | usage |",
            "|---|---|---|---|---|---|",
        ]
        for p in metas:
            m = read_json(p)
            x = m["metrics"]
            usage = " ".join(f"{u:.2f}" for u in x["component_usage"])
            lines.append(
                f"| {p.parent.name} | {m['epochs_run']} ({m['best_epoch']}) | "
                f"{x['val_nll_per_dim']:.3f} | {x['val_baseline_nll_per_dim']:.3f} | "
                f"{x['pi_entropy']:.3f} ({x['pi_entropy_max']:.3f}) | {usage} |"
            )
        lines += ["", "![M's training curves](figures/rnn_nll.png)", ""]
    b = out / "tables" / "worlds_events.json"
    if b.exists():
        r = read_json(b)
        lines += [
            "## B. Worlds and events vs. the main component, against the paper",
            "",
            f"{r['dreams']} dreams × {r['steps']} steps from {len(r['models'])} Ms. Current / Any "
            "are medians over dreams; sig.: the paper's Mann–Whitney U; null: median Current "
            "under circular shifts of the dominant components, and its empirical p.",
            "",
            "| class | paper Current / Any (sig.) | ours Current / Any (sig., p) "
            "| null Current (p) | dreams |",
            "|---|---|---|---|---|",
        ]
        for row in r["rows"]:
            paper = (
                f"{_fmt(row['paper_current'])} / {_fmt(row['paper_any'])} ({row['paper_stars']})"
                if row["paper_stars"]
                else "—"
            )
            ours = (
                f"{_fmt(row['median_current'])} / {_fmt(row['median_any'])} "
                f"({row['stars']}, {_fmt(row['p'], '.2g')})"
                if row["n_dreams"]
                else "class never seen"
            )
            null = f"{_fmt(row['null_mean'])} ({_fmt(row['null_p'], '.3f')})"
            lines.append(f"| {row['class']} | {paper} | {ours} | {null} | {row['n_dreams']} |")
        lines += ["", "![B](figures/worlds_events.png)", ""]
    c = out / "tables" / "committed.json"
    if c.exists():
        r = read_json(c)
        lines += [
            "## C. Committed dreaming, against the paper",
            "",
            f"Paper: {r['paper']}. Ours (model_{r['model']}, median frames of {r['steps']} over "
            f"{r['tests']} dreams per component):",
            "",
            *committed_table(r),
        ]
        lines += ["", "![C](figures/committed.png)", ""]
    totals = stage_totals(run_dir)
    if totals:
        lines += [
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
        lines.append("")
    lines += ["Checksums of the data and the models: `checksums.json`.", ""]
    if discussion:
        lines += [discussion.strip(), ""]
    return "\n".join(lines)


def collect_results(
    run_dir: Path, out: Path, discussion: Path | None = None, log: Callable[[str], None] = print
) -> Path:
    from mdnworld.report import figures

    run_dir, out = Path(run_dir), Path(out)
    for src, dst in COPY:
        if (run_dir / src).exists():
            (out / dst).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(run_dir / src, out / dst)
    for p in sorted((run_dir / "analysis" / "components_over_time").glob("model_*.png")):
        (out / "figures").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(p, out / "figures" / f"components_over_time_{p.stem}.png")
    vae_log = run_dir / "vae" / "log.jsonl"
    if vae_log.exists():
        rows = read_log(vae_log)
        train = [r for r in rows if "train/recon" in r]
        figures.vae_curves(
            train, [r for r in rows if "val/recon" in r], out / "figures" / "vae_curves.png"
        )
    rnn_logs = {int(p.parent.name.split("_")[1]): [r for r in read_log(p) if "epoch" in r]
                for p in sorted((run_dir / "rnn").glob("model_*/log.jsonl"))}  # fmt: skip
    if rnn_logs:
        figures.rnn_nll(rnn_logs, out / "figures" / "rnn_nll.png")
    atomic_write_json(out / "stages.json", stage_totals(run_dir))
    atomic_write_json(out / "checksums.json", checksums(run_dir))
    text = results_markdown(run_dir, out, discussion.read_text() if discussion else "")
    path = out / "RESULTS.md"
    with atomic_open(path, "w") as f:
        f.write(text)
    log(f"collect-results: {path}")
    return path
