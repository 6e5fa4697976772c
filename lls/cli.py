"""Command line: ``python -m lls run|sweep|book|scorecard|params``.

Examples::

    python -m lls run 03_lora_drift --preset cpu -p seed 1
    python -m lls run --all --preset smoke
    python -m lls sweep 02_synthetic --seeds 0-9 -p n_seeds 1   # one Ray task per seed
    python -m lls book                      # every chapter on cpu, then the HTML book
    python -m lls params 03                 # a chapter's parameters and preset defaults
    python -m lls check-book                # the built book in headless Chromium: layout problems
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lls.errors import LLSError
from lls.presets import CHAPTERS, DEFAULT_PRESET, PRESETS, chapter_params


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lls", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="execute chapter notebooks through papermill")
    run.add_argument("notebook", nargs="?", help=f"one of {', '.join(CHAPTERS)} (or its number)")
    run.add_argument("--all", action="store_true", help="run every chapter")
    _common(run)

    sweep = sub.add_parser("sweep", help="run one chapter for many seeds on Ray and write sweep.json "
                                         "(per-claim values, mean, SD and a t-interval over seeds)")
    sweep.add_argument("notebook", help=f"one of {', '.join(CHAPTERS)} (or its number)")
    sweep.add_argument("--seeds", required=True, help="seeds and inclusive ranges: 0-9, 0,2,5 or 0-3,10")
    _common(sweep)
    sweep.add_argument("--address", default=None,
                       help="join a running Ray cluster (auto, HEAD_IP:6379 or ray://HEAD_IP:10001) instead "
                            "of starting a local one")
    sweep.add_argument("--num-cpus", type=int, default=None,
                       help="CPUs of the local Ray instance (default: this machine's cores)")
    sweep.add_argument("--threads", type=int, default=None,
                       help="threads (and Ray CPUs) per seed (default: CPUs / seeds at once, at least 1)")

    book = sub.add_parser("book", help="run every chapter, write the scorecard, build the HTML book")
    _common(book)
    book.add_argument("--build-dir", type=Path, default=None,
                      help="where to stage and build (default: _build/<preset>)")

    card = sub.add_parser("scorecard", help="print the scorecard (Markdown) from the metrics files")
    card.add_argument("--preset", default=DEFAULT_PRESET, choices=list(PRESETS))

    check = sub.add_parser("check-book", help="open the built book in headless Chromium and list layout problems")
    check.add_argument("--preset", default=DEFAULT_PRESET, choices=list(PRESETS))

    params = sub.add_parser("params", help="list a chapter's parameters and their preset defaults")
    params.add_argument("notebook", nargs="?", help="a chapter (default: all)")
    return parser


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default=DEFAULT_PRESET,
                        help="; ".join(f"{k}: {v}" for k, v in PRESETS.items()))
    parser.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="set a chapter parameter (repeatable)")
    parser.add_argument("--force", action="store_true", help="execute even if the last run is fresh")


def _describe(chapter: str) -> str:
    lines = [f"{chapter}:"]
    for name, p in chapter_params(chapter).items():
        extra = f" in {list(p['choices'])}" if p["choices"] else (
            f" in [{p['low']}, {p['high']}]" if p["low"] is not None or p["high"] is not None else "")
        defaults = ", ".join(f"{k}={v}" for k, v in p["defaults"].items())
        lines.append(f"  {name} ({p['kind']}{extra}): {p['doc']}; defaults {defaults}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "params":
            from lls.runner import chapter_name

            chapters = [chapter_name(args.notebook)] if args.notebook else list(CHAPTERS)
            print("\n".join(_describe(ch) for ch in chapters))
        elif args.command == "scorecard":
            from lls.scorecard import scorecard_markdown

            print(scorecard_markdown(args.preset))
        elif args.command == "run":
            from lls.runner import chapter_name, run_all, run_chapter

            overrides = dict(args.param)
            if args.all == bool(args.notebook):
                raise LLSError("Give either one NOTEBOOK or --all (python -m lls run --help).")
            if args.all:
                paths = run_all(args.preset, overrides, force=args.force)
            else:
                paths = [run_chapter(chapter_name(args.notebook), args.preset, overrides, force=args.force)]
            print("\n".join(str(p) for p in paths))
        elif args.command == "check-book":
            from lls.book import ROOT
            from lls.bookcheck import check_book

            html = ROOT / "_build" / args.preset / "_build" / "html"
            if not html.exists():
                raise LLSError(f"No built book at {html}: run `python -m lls book --preset {args.preset}` first.")
            shots = ROOT / "_build" / "screenshots" / args.preset
            problems = check_book(html, shots)
            print("\n".join(problems) or f"No problems found; screenshots in {shots}.")
            return 1 if problems else 0
        elif args.command == "sweep":
            from lls.runner import chapter_name
            from lls.sweep import parse_seeds, sweep, sweep_path

            seeds = parse_seeds(args.seeds)
            try:
                path = sweep(chapter_name(args.notebook), seeds, args.preset, dict(args.param),
                             force=args.force, address=args.address, num_cpus=args.num_cpus,
                             threads=args.threads)
            except KeyboardInterrupt:  # finished seeds are kept in sweep.json
                partial = sweep_path(chapter_name(args.notebook), args.preset, dict(args.param))
                if partial.exists():
                    print(partial)
                return 130
            print(path)
            return 0 if json.loads(path.read_text())["complete"] else 1
        elif args.command == "book":
            from lls.book import build_book

            index = build_book(args.preset, dict(args.param), force=args.force,
                               build_dir=args.build_dir)
            print(f"The book is built: {index}")
    except LLSError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
