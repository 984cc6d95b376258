"""``mdnworld controller-results RUN [RUN ...] OUT``: the committed record of controllers trained
in the dream (e.g. results/controller/).

The first run is the main one: its real-game scores are set beside the published ones and its
controller weights are copied to ``OUT/controller/``. Every run (one per dream temperature τ,
e.g. run directories that share V and M and differ in ``controller.tau``) adds a row to the τ
table, beside World Models' own sweep. Reads only files the stages wrote:
``controller/controller.json``, ``controller/log.jsonl``, ``evaluate/scores.json`` and
``stages.jsonl``; and, with ``baselines``, ``benchmarks/real_baselines.py``'s JSON: untrained
policies on the same game seeds, each compared with the controller (Mann–Whitney U).
"""

from __future__ import annotations

import shutil
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mdnworld.errors import DataError, MissingError
from mdnworld.io import atomic_open, atomic_write_json, read_json, sha256_file
from mdnworld.layout import RunLayout
from mdnworld.records import read_controller_meta, read_log_rows, read_scores
from mdnworld.reference import PUBLISHED, SOLVED, WORLD_MODELS_TAU
from mdnworld.stage_log import machine_cpus, machine_has_gpu, stage_totals


def _cost_by_machine(run_dir: Path, gens: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Training time per machine, from the log, which keeps every generation even of runs
    killed without a trace in stages.jsonl: dream generations + real-game checks (timed since
    the field was added). Each row names its machine (rows older than the field: the run's one
    machine in stages.jsonl, else "?"). CPU hours = time × cores on a machine without a GPU;
    GPU hours = time on one with one (its CPUs count as the GPU's host)."""
    recorded = stage_totals(run_dir).get("train-controller", {}).get("by_machine", {})
    fallback = next(iter(recorded)) if len(recorded) == 1 else "?"
    by_machine: dict[str, list[dict[str, Any]]] = {}
    for r in gens:
        by_machine.setdefault(r.get("machine", fallback), []).append(r)
    cost = []
    for name, rows in by_machine.items():
        seconds = [r["seconds"] for r in rows if "seconds" in r]
        hours = (sum(seconds) + sum(r.get("real/seconds", 0.0) for r in rows)) / 3600
        cpus, gpu = machine_cpus(name), machine_has_gpu(name)
        cost.append({
            "machine": name,
            "generations": len(rows),
            "seconds_per_generation": statistics.median(seconds) if seconds else None,
            "hours": hours,
            "cpu_hours": None if gpu or cpus is None else hours * cpus,
            "gpu_hours": hours if gpu else 0.0,
        })  # fmt: skip
    return cost


def summarise_run(run_dir: Path) -> dict[str, Any]:
    """What one controller run gives: τ, generations, dream fitness, real-game scores, cost."""
    run = RunLayout(run_dir)
    meta = read_controller_meta(run.controller_meta)
    rows = read_log_rows(run.controller_log)
    gens = [r for r in rows if "fitness/mean" in r]
    if not gens:
        raise DataError(f"{run.controller_log}: no finished generation")
    scores = read_scores(run.evaluate_scores) if run.evaluate_scores.exists() else None
    cost = _cost_by_machine(run.root, gens)
    cpu_hours = [c["cpu_hours"] for c in cost if not c["gpu_hours"]]
    return {
        "run": run.root.name,
        "tau": meta.tau,
        "popsize": meta.popsize,
        "rollouts": meta.rollouts,
        "generations": len(gens),
        "planned_generations": meta.generations,
        "dream_last": {k: gens[-1][f"fitness/{k}"] for k in ("mean", "best", "worst")},
        "cost": cost,
        "train_hours": sum(c["hours"] for c in cost),
        # CPU hours of the generations on CPUs alone, GPU hours of those on a GPU
        "train_cpu_hours": None if None in cpu_hours else sum(cpu_hours),
        "train_gpu_hours": sum(c["gpu_hours"] for c in cost),
        "real_checks": [
            {
                "generation": r["step"],
                "dream": r.get("fitness/best"),
                "mean": r["real/mean"],
                "std": r.get("real/std"),
            }
            for r in rows
            if "real/mean" in r
        ],  # fmt: skip
        "real": None
        if scores is None
        else {
            "mean": scores.mean,
            "std": scores.std,
            "episodes": scores.episodes,
            "generation": scores.generation,
            "controller": scores.controller,
            "seeds": [e.seed for e in scores.per_episode],
            "scores": [e.score for e in scores.per_episode],
        },
    }


def compare_baselines(real: dict[str, Any], path: Path) -> list[dict[str, Any]]:
    """Each untrained policy of ``path`` (benchmarks/real_baselines.py) with the two-sided
    Mann–Whitney p of the controller's real scores against its scores. The episodes must be
    the same game seeds as the controller's evaluation."""
    from scipy.stats import mannwhitneyu

    data = read_json(path)
    seeds = list(range(data["seeds"][0], data["seeds"][1] + 1))
    if seeds != real["seeds"]:
        raise DataError(
            f"{path}: seeds {seeds[0]}..{seeds[-1]} are not the controller's evaluation "
            f"seeds {real['seeds'][0]}..{real['seeds'][-1]}; rerun it with --episodes "
            f"{len(real['seeds'])}"
        )
    rows = []
    for r in data["rows"]:
        if len(r["scores"]) != len(seeds):
            raise DataError(
                f"{path}: {r['policy']!r} has {len(r['scores'])} scores, not {len(seeds)}"
            )
        p = float(mannwhitneyu(real["scores"], r["scores"]).pvalue)
        rows.append({**{k: r[k] for k in ("policy", "mean", "std", "episodes")}, "p": p})
    return rows


def _pm(x: dict | tuple | None) -> str:
    if x is None:
        return "—"
    mean, std = (x["mean"], x.get("std")) if isinstance(x, dict) else x
    return f"{mean:.0f}" if std is None else f"{mean:.0f} ± {std:.0f}"


def _checks_table(run: dict[str, Any]) -> list[str]:
    """The dream-to-reality gap during training: each checked generation's best candidate."""
    if not run["real_checks"]:
        return []
    lines = [
        "## Dream and reality during training",
        "",
        "Every few generations the generation's best candidate played real games.",
        "",
        "| generation | its dream survival | its real-game score |",
        "|---|---|---|",
    ]
    for c in run["real_checks"]:
        dream = "—" if c["dream"] is None else f"{c['dream']:.0f}"
        lines.append(f"| {c['generation']} | {dream} | {_pm(c)} |")
    return [*lines, ""]


def controller_markdown(
    runs: list[dict[str, Any]], discussion: str = "", baselines: list[dict[str, Any]] = ()
) -> str:
    main = runs[0]
    real = main["real"]
    lines = [
        "# Controller: trained in the dream, scored in the real game",
        "",
        f"A linear policy a = tanh(W [z, h] + b) trained by CMA-ES entirely inside M's dream "
        f"(population {main['popsize']} × {main['rollouts']} dream rollouts, τ {main['tau']}, "
        f"{main['generations']} of {main['planned_generations']} generations), then played in "
        "the real game.",
        "",
        "| controller | real-game score (mean ± std) | episodes | ours vs it (Mann–Whitney p) |",
        "|---|---|---|---|",
        f"| **ours** ({main['run']}, τ {main['tau']}) | **{_pm(real)}** | "
        f"{real['episodes'] if real else '—'} | |",
        *[
            f"| {b['policy']}: our game, same seeds | {_pm(b)} | {b['episodes']} | {b['p']:.2g} |"
            for b in baselines
        ],  # fmt: skip
        *[f"| {p.who} | {p.mean} ± {p.std} | 100 | |" for p in PUBLISHED],
        f'| "solved" | ≥ {SOLVED} | 100 | |',
        "",
        "![fitness](figures/controller_fitness.png)",
        "",
        *_checks_table(main),
        "## Dream temperature τ",
        "",
        "Dream: the population's mean survival in the last generation. World Models' dream "
        "score is its final controller's, so compare the real-game columns.",
        "",
        "| τ | run | generations | ours: dream | ours: real game | World Models: dream | "
        "World Models: real game |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in sorted(runs, key=lambda r: r["tau"]):
        wm = WORLD_MODELS_TAU.get(round(r["tau"], 2))
        lines.append(
            f"| {r['tau']} | {r['run']} | {r['generations']} | {r['dream_last']['mean']:.0f} | "
            f"{_pm(r['real'])} | {_pm(wm[0]) if wm else '—'} | {_pm(wm[1]) if wm else '—'} |"
        )
    lines += [
        "",
        "## Cost",
        "",
        "Training time is the sum of the generations' times in `controller/log.jsonl` (dream "
        "rollouts and CMA-ES, plus the real-game checks where the log times them), per machine "
        "(a run can move: resume restarts CMA-ES at its saved mean there); CPU hours = that × "
        "the machine's cores on a machine without a GPU. World Models: about 84 s per "
        "generation on 64 CPU cores.",
        "",
        "| run | τ | machine | generations | seconds per generation (median) | training time "
        "| CPU hours |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        for c in r["cost"]:
            spg, cpu_h = c["seconds_per_generation"], c["cpu_hours"]
            lines.append(
                f"| {r['run']} | {r['tau']} | {c['machine']} | {c['generations']} | "
                f"{'—' if spg is None else f'{spg:.1f}'} | {c['hours']:.2f} h | "
                f"{'— (GPU)' if c['gpu_hours'] else '—' if cpu_h is None else f'{cpu_h:.1f}'} |"
            )
    lines += ["", "Weights: `controller/` (safetensors + JSON, checksums in `checksums.json`).", ""]
    if discussion:
        lines += [discussion.strip(), ""]
    return "\n".join(lines)


def collect_controller_results(
    runs: list[Path],
    out: Path,
    discussion: Path | None = None,
    baselines: Path | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    from mdnworld.report import figures

    runs, out = [Path(r) for r in runs], Path(out)
    summaries = [summarise_run(r) for r in runs]
    if baselines is not None and summaries[0]["real"] is None:
        scores = RunLayout(runs[0]).evaluate_scores
        raise MissingError(f"{scores}: not found, so no scores to compare the baselines with")
    compared = compare_baselines(summaries[0]["real"], baselines) if baselines else []
    (out / "controller").mkdir(parents=True, exist_ok=True)
    main = RunLayout(runs[0])
    sums = {}
    for src in (main.controller_weights("mean"), main.controller_meta):
        dst = out / "controller" / src.name
        shutil.copyfile(src, dst)
        sums[f"controller/{src.name}"] = sha256_file(dst)
    atomic_write_json(out / "checksums.json", sums)
    figures.controller_fitness(
        read_log_rows(main.controller_log),
        out / "figures" / "controller_fitness.png",
        {**{b["policy"]: b["mean"] for b in compared}, '"solved"': SOLVED},
        summaries[0]["real"],
    )
    atomic_write_json(out / "runs.json", {"runs": summaries, "baselines": compared})
    path = out / "RESULTS.md"
    with atomic_open(path, "w") as f:
        f.write(
            controller_markdown(summaries, discussion.read_text() if discussion else "", compared)
        )
    log(f"controller-results: {path}")
    return path
