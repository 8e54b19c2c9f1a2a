"""The ``negbench`` / ``python -m bench`` command line: run, status, list, describe, report, export."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from tabulate import tabulate

from backbones import BACKBONES
from bench.grid import Grid, GridError, load_grid, names_grid
from bench.metrics import METRICS
from bench.registry import ParameterError, UnknownNameError, parameter_fields
from bench.store import Store, export_records
from samplers import SAMPLERS
from scenarios import SCENARIOS
from scenarios.catalogue import ChecksumError, DataDirError, list_datasets, resolve_data_dir
from scenarios.loaders import DataFormatError

GRIDS_DIR = Path(__file__).resolve().parent.parent / "grids"
DEFAULT_GRID = "quick"
USER_ERRORS = (GridError, UnknownNameError, ParameterError, DataDirError, DataFormatError, ChecksumError, FileNotFoundError)


def _grid_path(text: str) -> Path:
    """A grid file path, or the name of a grid shipped in ``grids/``."""
    path = Path(text)
    if path.suffix != ".toml" and not path.exists() and (GRIDS_DIR / f"{text}.toml").exists():
        return GRIDS_DIR / f"{text}.toml"
    return path


def _grid_from_args(args: argparse.Namespace) -> Grid:
    if args.samplers or args.backbones or args.scenarios:
        if args.grid:
            raise GridError("give either a grid file or --samplers/--backbones/--scenarios, not both")
        return names_grid(
            args.samplers or ["uniform"],
            args.backbones or ["mf"],
            args.scenarios or ["popularity[dataset=synthetic]"],
            args.seeds or 1,
            {},
        )
    return load_grid(_grid_path(args.grid or DEFAULT_GRID))


def _needs_data(grid: Grid) -> bool:
    return any(cell.dataset != "synthetic" for cell in grid.cells)


def cmd_run(args: argparse.Namespace) -> int:
    from bench.runner import run_grid

    grid = _grid_from_args(args)
    data_dir = resolve_data_dir(args.data_dir) if _needs_data(grid) else None
    for cell, reason in grid.skipped:
        print(f"skipped {cell.sampler.label} x {cell.backbone.label}: {reason}", file=sys.stderr)
    print(f"grid {grid.name}: {len(grid.cells)} cells, results in {args.results}", file=sys.stderr)
    summary = run_grid(
        grid, args.results, data_dir, n_jobs=args.jobs, backend=args.backend, scheduler=args.scheduler,
        force=args.force, progress=not args.quiet, threads_per_cell=args.threads,
    )
    print(
        f"done {len(summary.done)}, cached {len(summary.cached)}, failed {len(summary.failed)}, "
        f"busy elsewhere {len(summary.busy)} in {summary.wall_s:.1f} s",
        file=sys.stderr,
    )
    store = Store(args.results)
    for key in summary.failed:
        print(f"failed {key}: {summary.errors.get(key)}", file=sys.stderr)
    if not args.quiet:
        from bench.report import format_markdown_leaderboard

        table = store.table()  # a cell other grids share appears once per grid: keep one row of each
        table = table[table["key"].isin({c.key for c in grid.cells})].drop_duplicates(["key", "test_set", "metric"])
        table = table.assign(grid=grid.name, grid_cells=len(grid.cells))
        if len(table):
            print(format_markdown_leaderboard(table))
    return 1 if summary.failed else 0


def cmd_status(args: argparse.Namespace) -> int:
    grid = _grid_from_args(args)
    store = Store(args.results)
    rows, counts = [], {"done": 0, "failed": 0, "missing": 0}
    for cell in grid.cells:
        state = store.status(cell.key) or "missing"
        counts[state] = counts.get(state, 0) + 1
        if args.all or state != "done":
            error = store.load(cell.key).get("error", "") if state == "failed" else ""
            rows.append([state, cell.key, cell.sampler.label, cell.backbone.label, cell.scenario.label, cell.seed, error[:80]])
    if rows:
        print(tabulate(rows, headers=["state", "key", "sampler", "backbone", "scenario", "seed", "error"]))
    complete = counts["done"] == len(grid.cells)
    print(f"grid {grid.name}: {'complete' if complete else 'INCOMPLETE'}: "
          + ", ".join(f"{k} {v}" for k, v in counts.items()) + f" of {len(grid.cells)}")
    return 0 if complete else 1


def _summary(cls: type) -> str:
    """First line of the plug-in's module docstring (dataclasses replace a missing class one)."""
    return (sys.modules[cls.__module__].__doc__ or "").strip().splitlines()[0]


def _params_text(cls: type) -> str:
    return ", ".join(f"{f.name}={getattr(cls(), f.name)!r}" for f in parameter_fields(cls))


def cmd_list(args: argparse.Namespace) -> int:
    if args.kind == "samplers":
        rows = [[n, _params_text(SAMPLERS.get(n)), _summary(SAMPLERS.get(n))] for n in SAMPLERS]
        headers = ["sampler", "parameters", "what"]
    elif args.kind == "backbones":
        rows = [[n, _params_text(BACKBONES.get(n))] for n in BACKBONES]
        headers = ["backbone", "parameters"]
    elif args.kind == "scenarios":
        rows = [[n, SCENARIOS.get(n).preset, ", ".join((*SCENARIOS.get(n).supported, "synthetic")), SCENARIOS.get(n).description] for n in SCENARIOS]
        headers = ["scenario", "preset", "datasets", "what"]
    elif args.kind == "datasets":
        rows = [list(row) for row in list_datasets()]
        headers = ["dataset", "description", "formats"]
    else:
        rows = [[m.name, "higher" if m.higher_is_better else "lower", "per user" if m.per_user else "list", m.description] for m in METRICS.values()]
        headers = ["metric", "better", "kind", "what"]
    print(tabulate(rows, headers=headers))
    return 0


def cmd_describe(args: argparse.Namespace) -> int:
    from bench.references import reference_metrics
    from scenarios.describe import build, format_description, summarize

    data_dir = None if args.dataset == "synthetic" else resolve_data_dir(args.data_dir)
    split = build(args.scenario, dataset=args.dataset, data_dir=data_dir, seed=args.seed)
    result = summarize(split, args.seed)
    if args.references:
        result["references"] = reference_metrics(split)
    print(json.dumps(result, indent=2, default=str) if args.json else format_description(result))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from bench.report import write_report

    try:
        paths = write_report(args.results, args.out, metrics=tuple(args.metric), test_set=args.test)
    except ValueError as error:  # nothing to report, an unknown metric or test set, an unreadable archive
        print(f"negbench: error: {error}", file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    grid = _grid_from_args(args)
    n = export_records(Store(args.results), grid.name, grid.labels(), args.out, per_user=not args.without_per_user)
    print(f"exported {n} of {len(grid.cells)} cells of grid {grid.name} to {args.out}")
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="negbench", description="Negative sampling under distribution shift: a benchmark suite.")
    sub = parser.add_subparsers(dest="command", required=True)

    def grid_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("grid", nargs="?", help=f"grid file or name in grids/ (default: {DEFAULT_GRID})")
        p.add_argument("--samplers", nargs="+", help="sampler names instead of a grid file, e.g. dns[n_candidates=8,32]")
        p.add_argument("--backbones", nargs="+")
        p.add_argument("--scenarios", nargs="+", help="e.g. popularity exposure[dataset=coat]")
        p.add_argument("--seeds", type=int, help="number of seeds with --samplers (default 1)")
        p.add_argument("--results", default="results", help="results directory (records go to RESULTS/runs)")

    run = sub.add_parser("run", help="run a grid; stored cells are skipped")
    grid_args(run)
    run.add_argument("-j", "--jobs", type=int, default=1, help="parallel cells")
    run.add_argument("--threads", type=_positive_int, help="torch threads per cell (default: cores / jobs; "
                     "1 on a shared machine or with several runners, which otherwise oversubscribe the cores)")
    run.add_argument("--backend", choices=["loky", "dask"], default="loky")
    run.add_argument("--scheduler", help="Dask scheduler address (with --backend dask); default: a local cluster")
    run.add_argument("--data-dir", help="data directory (default: $NEGBENCH_DATA)")
    run.add_argument("--force", action="append", default=[], metavar="PATTERN", help="re-run cells whose key or label matches")
    run.add_argument("--quiet", action="store_true", help="no progress bar, no leaderboard")
    run.set_defaults(func=cmd_run)

    status = sub.add_parser("status", help="done / missing / failed cells of a grid (exit 1 while incomplete)")
    grid_args(status)
    status.add_argument("--all", action="store_true", help="list done cells too")
    status.set_defaults(func=cmd_status)

    lister = sub.add_parser("list", help="registered plug-ins")
    lister.add_argument("kind", choices=["samplers", "backbones", "scenarios", "datasets", "metrics"])
    lister.set_defaults(func=cmd_list)

    desc = sub.add_parser("describe", help="sizes and shift diagnostics of a scenario's split")
    desc.add_argument("scenario", choices=SCENARIOS.names())
    desc.add_argument("--dataset", help="dataset name (default: the scenario's preset)")
    desc.add_argument("--seed", type=int, default=0)
    desc.add_argument("--data-dir")
    desc.add_argument("--json", action="store_true")
    desc.add_argument("--references", action="store_true", help="also score random and most-popular rankings")
    desc.set_defaults(func=cmd_describe)

    report = sub.add_parser("report", help="leaderboards, CSV, LaTeX and plots from stored records")
    report.add_argument("--results", default="results", help="results directory, or an archive from export")
    report.add_argument("--out", default="results")
    report.add_argument("--metric", nargs="+", default=["recall@20", "ndcg@20"])
    report.add_argument("--test", choices=["ood", "iid"], default="ood")
    report.set_defaults(func=cmd_report)

    export = sub.add_parser("export", help="a grid's finished records as one .tar.gz that report reads back")
    grid_args(export)
    export.add_argument("--out", required=True, help="archive to write, e.g. results/standard/records.tar.gz")
    export.add_argument("--without-per-user", action="store_true",
                        help="leave out the per-user vectors: a small archive whose report lacks only the per-user tests")
    export.set_defaults(func=cmd_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except USER_ERRORS as error:
        print(f"negbench: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("negbench: interrupted; finished cells are stored, run the same command again to resume", file=sys.stderr)
        return 130
