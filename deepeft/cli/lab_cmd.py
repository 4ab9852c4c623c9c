"""``deepeft lab list | run NAME [--quick] [--out DIR] [--json]``: the lab's exactly solvable problems."""
from __future__ import annotations

import json


def register(subparsers) -> None:
    p = subparsers.add_parser("lab", help="exactly solvable learning problems: exact vs asymptotic vs measured",
                              description="The lab (docs/lab.md): each problem writes figures, NAME.json, NAME.html "
                                          "and its results store into an output folder; a rerun skips finished parts.")
    sub = p.add_subparsers(dest="lab_command", metavar="SUBCOMMAND")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    ls = sub.add_parser("list", help="list the problems")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.set_defaults(func=_list)

    r = sub.add_parser("run", help="run one problem (resumable)")
    r.add_argument("name", metavar="NAME", help="problem name (see 'deepeft lab list')")
    r.add_argument("--quick", action="store_true", help="the small version (seconds; used by the tests)")
    r.add_argument("--out", metavar="DIR", help="output folder (default lab-results/NAME or NAME-quick)")
    r.add_argument("--json", action="store_true", help="print the result summary as JSON")
    r.set_defaults(func=_run)


def _list(args) -> int:
    from ..lab import list_problems

    probs = list_problems()
    if args.json:
        print(json.dumps(probs))
    else:
        for pr in probs:
            print(f"{pr['name']:12s} {pr['title']}")
    return 0


def _run(args) -> int:
    from ..lab import run_problem

    res = run_problem(args.name, args.out, quick=args.quick, progress=not args.json)
    if args.json:
        print(json.dumps(res.to_dict()))
    else:
        print(f"{args.name}: computed {len(res.computed)} part(s), reused {len(res.skipped)}; "
              f"compute time {res.compute_s:.1f} s (CPU)")
        for k, v in res.summary.get("headline", {}).items():
            print(f"  {k}: {v}")
        print(f"  page: {res.files['html']}")
    return 0
