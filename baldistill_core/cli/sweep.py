"""`baldistill sweep CONFIG --seeds 0,1,2 [--methods a,b,c]`: one run per seed and method, as a group.

Runs execute one after another in this process (a CPU has no room for two). The same command
again continues the sweep: finished runs are skipped, interrupted ones resume, and teacher answers
come from the teacher cache. ``--summary`` prints the group's mean ± CI without running anything.
"""

from __future__ import annotations

from baldistill_core.workspace import open_workspace


def register(sub, common) -> None:
    p = sub.add_parser("sweep", parents=[common], help="run a config over several seeds (and methods) as a group")
    p.add_argument("config", nargs="?", help="run config YAML (see assets/configs/)")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    p.add_argument("--methods", help="comma-separated methods (default: the config's method)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field")
    p.add_argument("--id", dest="sweep_id", help="continue (or summarise) this sweep instead of a config")
    p.add_argument("--summary", action="store_true", help="print the group's scores with intervals; run nothing")
    p.add_argument("--list", action="store_true", help="list the sweeps of this workspace")
    p.add_argument("--yes", action="store_true",
                   help="confirm a sweep whose estimate (one run's times the runs) is long or above the cost cap")
    p.set_defaults(func=_sweep)


def _sweep(args) -> int:
    from baldistill_core.cli.run import load_config
    from baldistill_core.reports import significance
    from baldistill_core.runs import estimate, sweeps

    ws, conn = open_workspace(args.workspace)
    if args.list:
        for s in sweeps.list_sweeps(conn):
            done = sum(1 for m in sweeps.members(conn, s["id"]))
            print(f"{s['id']:<32} {s['dataset']:<10} methods {','.join(s['methods'])} seeds "
                  f"{','.join(map(str, s['seeds']))} ({done} runs created)")
        return 0
    if args.sweep_id:
        sid = sweeps.get(conn, args.sweep_id)["id"]
    elif args.config:
        cfg = load_config(args.config, args.set)
        seeds, methods = sweeps.parse_list(args.seeds, int), sweeps.parse_list(args.methods) or None
        known = sweeps.sweep_id(cfg, seeds, methods or [cfg.method]) in {s["id"] for s in sweeps.list_sweeps(conn)}
        if not args.summary and not known:  # a new sweep: the launch guard rails, for all its runs together
            est = sweeps.guard(conn, cfg, len(seeds) * len(methods or [cfg.method]), ws_root=ws.root,
                               confirmed=args.yes)
            print(f"estimate for the whole sweep: {estimate.fmt_seconds(est.seconds)}, teacher "
                  f"{estimate.fmt_cost(est.cost_usd)}", flush=True)
        sid = sweeps.create(conn, cfg, seeds, methods)
    else:
        raise ValueError("give a run config YAML (or --id SWEEP to continue one, --list to see them)")
    if not args.summary:
        sw = sweeps.get(conn, sid)
        print(f"sweep {sid}: {len(sw['methods'])} method(s) × {len(sw['seeds'])} seed(s), one run after another",
              flush=True)
        states = sweeps.execute(ws, conn, sid, echo=lambda m: print(m, flush=True))
        print(f"sweep {sid}: " + ", ".join(f"{st} {sum(1 for v in states.values() if v == st)}"
                                          for st in sorted(set(states.values()))))
    print(significance.format_group(significance.group_summary(conn, sid)))
    return 0
