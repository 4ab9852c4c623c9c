"""``deepeft study run|report|show``: run a study file, write its HTML report, summarise a store."""
from __future__ import annotations

import json
import sys
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("study", help="run a sweep (study file), report it, show a store",
                              description="Studies: sweeps over architectures run into a resumable store.")
    sub = p.add_subparsers(dest="study_command", metavar="SUBCOMMAND")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    r = sub.add_parser("run", help="compute every unfinished point of a study file")
    r.add_argument("study", metavar="STUDY", help="study file (.toml, or .yaml with PyYAML)")
    r.add_argument("--out", metavar="DIR", help="output folder (default: [study] output, else NAME-results)")
    g = r.add_mutually_exclusive_group()
    g.add_argument("--workers", type=int, metavar="N", help="start a Dask LocalCluster with N worker processes")
    g.add_argument("--scheduler", metavar="ADDR", help="use an existing Dask cluster, e.g. tcp://host:8786")
    r.add_argument("--threads", type=int, default=1, metavar="T",
                   help="worker threads for the default in-process run (default 1)")
    r.add_argument("--retries", type=int, default=None, metavar="K",
                   help="resubmit a point whose worker died (killed, crashed, out of memory) K times before "
                        "storing it as failed (default 2)")
    r.add_argument("--recompute-damaged", action="store_true",
                   help="recompute stored points whose arrays fail their checksum (keeps every intact record)")
    r.add_argument("--report", action="store_true", help="write the HTML report when done")
    r.add_argument("--check", action="store_true", help="validate the study file and list the points; run nothing")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.add_argument("--json", action="store_true", help="print the run summary as JSON")
    r.set_defaults(func=_run)

    rep = sub.add_parser("report", help="write the self-contained HTML report of a study")
    rep.add_argument("path", metavar="PATH", help="output folder, its study.sqlite, or the study file")
    rep.add_argument("--html", metavar="FILE", help="where to write the page (default: PATH/report/index.html)")
    rep.add_argument("--json", action="store_true", help="print {'report': path} as JSON")
    rep.set_defaults(func=_report)

    s = sub.add_parser("show", help="summarise a study's store (points, status, timings)")
    s.add_argument("path", metavar="PATH", help="output folder, its study.sqlite, or the study file")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=_show)

    rp = sub.add_parser("repair", help="recompute damaged points (checksum failures; a damaged store file is "
                                       "salvaged first), keeping every intact record")
    rp.add_argument("path", metavar="PATH", help="output folder or its study.sqlite")
    rp.add_argument("--study", metavar="FILE", help="the study file (default: its text stored with the results)")
    rp.add_argument("--workers", type=int, metavar="N", help="recompute on a Dask LocalCluster with N workers")
    rp.add_argument("--no-progress", action="store_true", help="no progress bar")
    rp.add_argument("--json", action="store_true", help="machine-readable output")
    rp.set_defaults(func=_repair)

    pr = sub.add_parser("prune", help="delete stored records of points no longer in the study (removed points, "
                                      "older code versions)")
    pr.add_argument("path", metavar="PATH", help="output folder or its study.sqlite")
    pr.add_argument("--json", action="store_true", help="machine-readable output")
    pr.set_defaults(func=_prune)


def _run(args) -> int:
    from ..studies import load_study_file, plan, run_study

    study = load_study_file(args.study)
    points = plan(study)  # validates every point before anything runs
    if args.check:
        out = {"study": study.name, "points": len(points), "output": str(study.output_dir(args.out))}
        if args.json:
            print(json.dumps(out))
        else:
            print(f"{study.source}: valid; {len(points)} points → {out['output']}")
        return 0
    extra = {} if args.retries is None else {"retries": args.retries}
    summary = run_study(study, args.out, workers=args.workers, scheduler=args.scheduler, threads=args.threads,
                        progress=False if args.no_progress else "auto", recompute_damaged=args.recompute_damaged,
                        **extra)
    result = summary.to_dict()
    if args.report:
        from ..report.study_report import write_report
        result["report"] = str(write_report(Path(summary.store).parent))
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{study.name}: {summary.total} points, {summary.skipped} already stored, {summary.computed} computed"
              f" ({summary.failed} failed) in {summary.wall_s:.1f} s [{summary.mode}]"
              + (f"; {summary.repaired} damaged point(s) recomputed" if summary.repaired else ""))
        for f in summary.failures[:10]:
            print(f"  failed {f}", file=sys.stderr)
        print(f"store: {summary.store}")
        if "report" in result:
            print(f"report: {result['report']}")
        else:
            print(f"next: deepeft study report {Path(summary.store).parent}")
    return 1 if summary.failed else 0


def _report(args) -> int:
    from ..report.study_report import write_report

    path = write_report(args.path, html_path=args.html)
    if args.json:
        print(json.dumps({"report": str(path)}))
    else:
        print(f"report: {path}")
    return 0


def _repair(args) -> int:
    from ..studies.runner import repair_study

    rep = repair_study(args.path, args.study, workers=args.workers, progress=False if args.no_progress else "auto")
    s = rep["summary"]
    if args.json:
        print(json.dumps(rep))
    else:
        if rep["salvaged_from"]:
            print(f"damaged store file moved to {rep['salvaged_from']}; {rep['kept']} intact point(s) kept")
        print(f"{s['repaired']} damaged point(s) removed; {s['computed']} point(s) computed ({s['failed']} failed), "
              f"{s['skipped']} intact point(s) kept as they were")
        print(f"store: {s['store']}")
    return 1 if s["failed"] else 0


def _prune(args) -> int:
    from ..studies.runner import prune_study

    n = prune_study(args.path)
    if args.json:
        print(json.dumps({"removed": n}))
    else:
        print(f"removed {n} stale record(s) (points no longer in the study, or older code versions)")
    return 0


def _show(args) -> int:
    from ..studies import load_study
    from ..studies.store import Store

    with Store(args.path, create=False, readonly=True) as store:
        meta = store.meta()
        path = str(store.path)
        n_records = sum(store.status_counts().values())
    df = load_study(args.path, arrays=False)
    planned = json.loads(meta.get("planned_keys", "[]"))
    stored = set(df["key"]) if len(df) else set()
    counts = df["status"].value_counts().to_dict() if len(df) else {}
    pending = len([k for k in planned if k not in stored])
    info = {"store": path, "study": meta.get("study_name"), "points": int(len(df)),
            "ok": int(counts.get("ok", 0)), "failed": int(counts.get("failed", 0)), "pending": pending,
            "compute_s": float(df["compute_s"].sum()) if len(df) else 0.0, "stale": int(n_records - len(df))}
    cols = ["idx", "status", "activation", "width", "depth", "init", "C_b", "C_W", "parameterization",
            "residual", "ensemble", "seed", "compute_s"]
    if args.json:
        info["table"] = json.loads(df[cols].to_json(orient="records")) if len(df) else []
        print(json.dumps(info))
        return 0
    print(f"study {info['study']}  ({path})")
    print(f"  {info['ok']} ok, {info['failed']} failed, {pending} pending (of the last run's plan); "
          f"compute {info['compute_s']:.1f} s")
    if info["stale"]:
        print(f"  {info['stale']} stale record(s) of points no longer in the study are kept in the store and not "
              f"shown (deepeft study prune {args.path} deletes them)")
    if len(df):
        with __import__("pandas").option_context("display.width", 160, "display.max_rows", 200):
            print(df[cols].sort_values("idx").to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    for _, row in df[df["status"] == "failed"].iterrows() if len(df) else []:
        print(f"  point {row['idx']} failed: {str(row['error']).splitlines()[0]}")
    return 0
