"""``mdnworld`` command line: the only place that parses arguments and prints for people.

Every stage command takes the run directory (default: the config's ``run_dir``), ``--config``
(a TOML file), ``--set section.key=value`` overrides, and its own stage's fields as flags.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import typing
from pathlib import Path
from typing import Any

from mdnworld import __version__
from mdnworld.config import RULES, RunConfig, load_config
from mdnworld.errors import MissingError, UserError
from mdnworld.fields import field_docs, literal_choices
from mdnworld.layout import RunLayout
from mdnworld.pipeline import STAGES, run_pipeline, save_run_config
from mdnworld.stage_log import measure_stage

ANALYSIS_HELP = {
    "components-over-time": "A: pi_k against time after a warm-up, above the dreamed frames",
    "worlds-events": "B: main component per world/event class, Mann-Whitney U and shift null",
    "committed": "C: frames per class when every step is forced onto one component",
    "all": "the three analyses in turn",
}
_INLINE_CHOICES = 6
"""A Literal field with more values than this lists them in its help, not in its usage."""


def _flag_help(name: str, doc: str, default: Any, choices: tuple[Any, ...] | None) -> str:
    """A field's docstring, its range, its default and (for a long list) its choices, as
    argparse help."""
    text = " ".join(doc.split())
    if choices is not None and len(choices) > _INLINE_CHOICES:
        text += f" One of: {', '.join(map(str, choices))}."
    if name in RULES:
        text += f" Must be {RULES[name][0]}."
    text += f" (default: {default!r})"
    return text.strip().replace("%", "%%")


def _add_stage_flags(parser: argparse.ArgumentParser, stage: str) -> None:
    """One ``--field-name`` flag per field of the stage's config dataclass (default: unset),
    its help the field's docstring; a ``Literal`` field's flag takes only its values."""
    cls = typing.get_type_hints(RunConfig)[stage]
    hints, docs = typing.get_type_hints(cls), field_docs(cls)
    summary = next(iter((cls.__doc__ or "").strip().splitlines()), None)
    group = parser.add_argument_group(f"[{stage}] settings (override the config file)", summary)
    for f in dataclasses.fields(cls):
        flag, dest, typ = "--" + f.name.replace("_", "-"), f"{stage}.{f.name}", hints[f.name]
        choices = literal_choices(typ)
        text = _flag_help(f.name, docs.get(f.name, ""), f.default, choices)
        if typ is bool:
            group.add_argument(
                flag, dest=dest, action=argparse.BooleanOptionalAction, default=None, help=text
            )
        elif choices is not None:
            metavar = None if len(choices) <= _INLINE_CHOICES else "NAME"
            group.add_argument(
                flag, dest=dest, default=None, choices=choices, metavar=metavar, help=text
            )
        else:
            metavar = typ.__name__.upper() if isinstance(typ, type) else "V"
            group.add_argument(flag, dest=dest, default=None, metavar=metavar, help=text)


def _common(parser: argparse.ArgumentParser, run_dir: bool = True) -> None:
    if run_dir:
        parser.add_argument(
            "run_dir",
            nargs="?",
            default=None,
            type=Path,
            help="run directory (default: run_dir from the config)",
        )
    parser.add_argument("--config", type=Path, default=None, help="TOML config file")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override any config value (repeatable)",
    )


def _add_result_commands(sub: argparse._SubParsersAction) -> None:
    """The commands around the stages: shipping models, collecting results, detectors."""
    text = "write V, the Ms, the split and start latents of a run into OUT to ship them"
    s = sub.add_parser("export-models", help=text, description=text)
    s.add_argument("run_dir", type=Path, help="a run with trained V and M(s)")
    s.add_argument("out", type=Path, help="output folder (e.g. results/paper/models)")
    s.add_argument("--fp32", action="store_true", help="keep float32 (default: float16)")

    text = "make RUN_DIR a run with shipped models: dream and analyze without training"
    s = sub.add_parser("from-shipped", help=text, description=text)
    s.add_argument("run_dir", type=Path, help="a new run directory")
    s.add_argument(
        "--models", type=Path, default=None, help="shipped folder (default: results/paper/models)"
    )

    text = "copy a run's figures, tables, costs and checksums into OUT and write RESULTS.md"
    s = sub.add_parser("collect-results", help=text, description=text)
    s.add_argument("run_dir", type=Path)
    s.add_argument("out", type=Path, help="e.g. results/paper")
    s.add_argument("--discussion", type=Path, default=None, help="markdown appended to RESULTS.md")
    s.add_argument(
        "--beside",
        action="append",
        default=[],
        metavar="NAME=FOLDER",
        help="another run's collected folder, shown side by side (M, B and C with each "
        "detector set it holds); repeatable",
    )

    text = (
        "controllers' real-game scores beside the published ones, a tau table (one run per "
        "tau; the first run is the main one, its weights are copied) -> OUT/RESULTS.md"
    )
    s = sub.add_parser("controller-results", help=text, description=text)
    s.add_argument("runs", type=Path, nargs="+", metavar="RUN_DIR")
    s.add_argument("out", type=Path, help="e.g. results/controller")
    s.add_argument("--discussion", type=Path, default=None, help="markdown appended to RESULTS.md")
    s.add_argument(
        "--baselines",
        type=Path,
        default=None,
        help="benchmarks/results/real_baselines.json: untrained policies on the same seeds",
    )

    text = (
        "score the SPEC detectors against the game's truth (episodes made with generate "
        "--truth), on real held-out frames and V's reconstructions -> analysis/detectors/"
    )
    s = sub.add_parser("detectors", help=text, description=text)
    s.add_argument("run_dir", type=Path)
    s.add_argument(
        "--episodes", type=int, default=0, help="the first N held-out episodes (default: 0 = all)"
    )
    s.add_argument(
        "--device", default="auto", help="device of V (auto, cpu, cuda, ...; default: auto)"
    )
    s.add_argument(
        "--detectors",
        choices=("spec", "validated"),
        default="spec",
        help="detector set: the SPEC's or the one chosen against the truth (default: spec; "
        "validated -> analysis/detectors/validated/, both in analysis/detectors/compare.csv)",
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mdnworld",
        description="World Models on the real ViZDoom Take Cover game, and what each "
        "component of a Mixture Density RNN predicts.",
    )
    p.add_argument("--version", action="version", version=f"mdnworld {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    for stage in STAGES:
        s = sub.add_parser(stage.name, help=stage.help, description=stage.help)
        if stage.name == "analyze":  # one sub-subcommand per analysis, and "all"
            which = s.add_subparsers(dest="analysis", required=True, metavar="ANALYSIS")
            for name, text in ANALYSIS_HELP.items():
                a = which.add_parser(name, help=text, description=text)
                _common(a)
                _add_stage_flags(a, stage.section)
            continue
        _common(s)
        _add_stage_flags(s, stage.section)

    s = sub.add_parser("validate", help="check every episode file of a run")
    _common(s)

    _add_result_commands(sub)

    text = "write RUN_DIR/report/index.html: one page with every stage's results"
    s = sub.add_parser("report", help=text, description=text)
    _common(s)
    s.add_argument(
        "--serve",
        action="store_true",
        help="then serve it on http://127.0.0.1:PORT/ (Ctrl-C stops)",
    )
    s.add_argument("--port", type=int, default=8000, help="port for --serve (default: 8000)")

    text = "steer M's dream in a browser page and watch pi (a local server; Ctrl-C stops)"
    s = sub.add_parser("play", help=text, description=text)
    s.add_argument("run_dir", type=Path, help="a run with V and M (and maybe a controller)")
    s.add_argument("--model", type=int, default=0, help="which M dreams (default: 0)")
    s.add_argument("--port", type=int, default=8001, help="port (default: 8001; 0: any free)")
    s.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine)"
    )

    s = sub.add_parser("pipeline", help="run every stage in order from one config file")
    _common(s, run_dir=False)
    s.add_argument("--run-dir", type=Path, default=None, help="override the config's run_dir")
    s.add_argument("--until", choices=[st.name for st in STAGES], default=None,
                   help="the last stage to run (train-rnn: V and M, no controller)")  # fmt: skip
    return p


def _resolve(args: argparse.Namespace) -> tuple[Path, RunConfig]:
    overrides = list(args.overrides)
    for key, value in vars(args).items():
        if "." in key and value is not None:
            overrides.append(f"{key}={value}")
    cfg = load_config(args.config, overrides)
    run_dir = getattr(args, "run_dir", None)
    if run_dir is not None:
        cfg.run_dir = str(run_dir)
    return Path(cfg.run_dir), cfg


def _cmd_validate(run_dir: Path) -> int:
    from mdnworld.data.episodes import validate_run

    episodes = RunLayout(run_dir).episodes_dir
    if not episodes.is_dir():
        raise MissingError(f"{episodes}: no episode folder; run `mdnworld generate` first")
    good, bad = validate_run(run_dir)
    for err in bad:
        print(f"BAD {err}", file=sys.stderr)
    print(f"{len(good)} valid episode file(s), {len(bad)} bad")
    return 1 if bad or not good else 0


def _named_folder(text: str) -> tuple[str, Path]:
    """ "NAME=FOLDER" (or just FOLDER, named after itself) -> (name, folder), checked."""
    name, sep, folder = text.partition("=")
    path = Path(folder if sep else text)
    if not (path / "tables").is_dir():
        raise UserError(f"--beside {text}: {path}/tables not found (a collect-results folder?)")
    return (name if sep else "") or path.name, path


def _cmd_results(args: argparse.Namespace) -> None:
    """The commands that read finished runs and write elsewhere (no config, no stage log)."""
    if args.command == "collect-results":
        from mdnworld.results import collect_results

        beside = dict(_named_folder(b) for b in args.beside)
        collect_results(args.run_dir, args.out, args.discussion, beside=beside)
    elif args.command == "controller-results":
        from mdnworld.control.results import collect_controller_results

        collect_controller_results(args.runs, args.out, args.discussion, args.baselines)
    elif args.command == "export-models":
        from mdnworld import shipped

        shipped.export_models(args.run_dir, args.out, fp16=not args.fp32)
    else:
        from mdnworld import shipped

        shipped.init_from_shipped(args.run_dir, args.models or shipped.DEFAULT_DIR)


def _run(args: argparse.Namespace) -> int:
    """Carry out a parsed command; its exit status."""
    if args.command == "detectors":  # reads the run, writes analysis/detectors/
        from mdnworld.analysis.truth import evaluate_detectors

        evaluate_detectors(
            args.run_dir, episodes=args.episodes, device=args.device, detectors=args.detectors
        )
        return 0
    if args.command == "play":  # reads the run; writes only play/ recordings on request
        from mdnworld.play.server import serve

        serve(args.run_dir, args.model, args.host, args.port)
        return 0
    if args.command in ("collect-results", "controller-results", "export-models", "from-shipped"):
        _cmd_results(args)
        return 0
    run_dir, cfg = _resolve(args)
    if args.command == "validate":
        return _cmd_validate(run_dir)
    if args.command == "report":  # reads the run; leaves its config.json alone
        from mdnworld.report import serve, write_report

        index = write_report(run_dir)
        if args.serve:
            serve(index.parent, args.port)
        return 0
    if args.command == "pipeline":
        run_pipeline(run_dir, cfg, until=args.until)
        return 0
    stage = {s.name: s for s in STAGES}[args.command]
    run_dir.mkdir(parents=True, exist_ok=True)
    save_run_config(run_dir, cfg)
    with measure_stage(run_dir, stage.name):
        if args.command == "analyze" and args.analysis != "all":
            from mdnworld.analysis.run import run_analyses

            run_analyses(run_dir, cfg.analyze, (args.analysis,))
        else:
            stage.run(run_dir, cfg, print)
    return 0


def main(argv: list[str] | None = None) -> int:
    """The ``mdnworld`` command. A ``UserError`` (or a missing file) is printed as one line,
    exit status 2; Ctrl-C exits 130; any other exception is a bug and keeps its traceback."""
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except (UserError, FileNotFoundError) as e:
        print("error: " + " ".join(str(e).splitlines()), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "interrupted: finished work is kept; run the same command again to resume",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
