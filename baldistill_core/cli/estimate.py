"""`baldistill estimate CONFIG`: teacher calls, tokens, cost and wall time of a run, before launching it."""

from __future__ import annotations

import json

from baldistill_core.workspace import open_workspace


def register(sub, common) -> None:
    p = sub.add_parser("estimate", parents=[common],
                       help="what a run config would cost (teacher calls, tokens, USD) and how long it takes here")
    p.add_argument("config", help="run config YAML (see assets/configs/)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field")
    p.add_argument("--no-probe", action="store_true",
                   help="do not probe the student's throughput when none is stored (defaults are used, and said)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_estimate)


def _estimate(args) -> int:
    from baldistill_core.cli.run import load_config
    from baldistill_core.runs import estimate

    ws, conn = open_workspace(args.workspace)
    cfg = load_config(args.config, args.set)
    est = estimate.estimate_run(conn, cfg, ws_root=ws.root, probe=not args.no_probe)
    if args.json:
        print(json.dumps(est.to_json(), default=str))
        return 0
    print("\n".join(estimate.summary_lines(est)))
    try:
        reasons = estimate.guard(est, cfg, confirmed=True)
    except estimate.CostRefused as e:
        print(f"launch would be refused: {e}")
        return 0
    for r in reasons:
        print(f"launch needs a confirmation: {r}")
    return 0
