"""`baldistill data ...` and `baldistill plan`: import datasets, show statistics and stage quotas."""

from __future__ import annotations

from baldistill_core.errors import DataError

import json

from baldistill_core.selection import policy as policy_mod
from baldistill_core import store
from baldistill_core.data import stats
from baldistill_core.config import DatasetSpec
from baldistill_core.data.loading import import_dataset
from baldistill_core.workspace import open_workspace


def register(sub, common) -> None:
    p = sub.add_parser("data", help="import and inspect datasets")
    dsub = p.add_subparsers(dest="data_command", required=True)

    imp = dsub.add_parser("import", parents=[common], help="import a dataset file into the workspace")
    imp.add_argument("name")
    imp.add_argument("train_path")
    imp.add_argument("--test-path")
    for fld in ("input", "answer", "domain", "id", "reference"):
        default = DatasetSpec.model_fields[f"{fld}_field"].default
        imp.add_argument(f"--{fld}-field", default=default,
                         help=DatasetSpec.model_fields[f"{fld}_field"].description + f" (default: {default})")
    imp.add_argument("--task-type", default=DatasetSpec.model_fields["task_type"].default,
                     choices=["classification", "math", "multiple_choice", "qa"])
    imp.add_argument("--instruction")
    imp.add_argument("--append", action="store_true",
                     help="add this file as a further part of an existing dataset (same field mapping); ids must "
                          "stay unique across all parts. Files on disk have no size limit: rows are streamed and "
                          "written in chunks in one transaction.")
    imp.add_argument("--replace", action="store_true",
                     help="replace the dataset of that name if it exists (bundled demos included)")
    imp.set_defaults(func=_import)

    rm = dsub.add_parser("delete", parents=[common], help="delete a dataset (refused while runs use it)")
    rm.add_argument("name")
    rm.add_argument("--yes", action="store_true", help="confirm the deletion")
    rm.set_defaults(func=_delete)

    mv = dsub.add_parser("rename", parents=[common], help="rename a dataset (its runs follow)")
    mv.add_argument("name")
    mv.add_argument("new_name")
    mv.set_defaults(func=_rename)

    ls = dsub.add_parser("list", parents=[common], help="list the workspace's datasets")
    ls.set_defaults(func=_list)

    st = dsub.add_parser("stats", parents=[common], help="domain statistics of a dataset")
    st.add_argument("name")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=_stats)

    pl = sub.add_parser("plan", parents=[common], help="per-stage quota of each domain (head/tail)")
    pl.add_argument("dataset")
    pl.add_argument("--budget", "-B", type=int, required=True)
    pl.add_argument("--stages", "-K", type=int, default=5)
    pl.add_argument("--policy", default="adaptive", choices=sorted(policy_mod.POLICIES))
    pl.add_argument("--json", action="store_true")
    pl.set_defaults(func=_plan)


def _empty_to_none(v):
    return v if v not in ("", None) else None


def _import(args) -> int:
    spec = DatasetSpec(
        name=args.name, train_path=args.train_path, test_path=args.test_path,
        input_field=args.input_field, answer_field=args.answer_field,
        domain_field=_empty_to_none(args.domain_field), id_field=_empty_to_none(args.id_field),
        reference_field=_empty_to_none(args.reference_field), task_type=args.task_type,
        instruction=args.instruction,
    )
    _, conn = open_workspace(args.workspace)
    if args.append and args.replace:
        raise DataError("--append adds a part and --replace replaces the dataset: pass one of them")
    loaded = import_dataset(conn, spec, append=args.append, replace=args.replace)
    added = f" (+{loaded.added_train} train, +{loaded.added_test} test)" if args.append else ""
    print(f"imported {spec.name}: {loaded.n_train} train, {loaded.n_test} test, {len(loaded.domains)} domains{added}")
    for w in loaded.warnings:
        print(f"warning: {w}")
    return 0


def _delete(args) -> int:
    from baldistill_core.data import manage

    _, conn = open_workspace(args.workspace, bundled=False)
    if not args.yes:
        d = store.get_dataset(conn, args.name)
        size = f" ({d['n_train']:,} train / {d['n_test']:,} test examples)" if d else ""
        raise ValueError(f"deleting {args.name!r}{size} cannot be undone; add --yes to confirm")
    manage.delete_dataset(conn, args.name)
    print(f"deleted {args.name}")
    return 0


def _rename(args) -> int:
    from baldistill_core.data import manage

    _, conn = open_workspace(args.workspace)
    manage.rename_dataset(conn, args.name, args.new_name)
    print(f"renamed {args.name} to {args.new_name}")
    return 0


def _list(args) -> int:
    _, conn = open_workspace(args.workspace)
    for d in store.list_datasets(conn):
        print(f"{d['name']:<24} train={d['n_train']:<7} test={d['n_test']:<7} {'(bundled)' if d['bundled'] else ''}")
    return 0


def _counts(args, name: str) -> dict[str, int]:
    _, conn = open_workspace(args.workspace)
    counts = store.domain_counts(conn, name)
    if not counts:
        raise DataError(f"dataset {name!r} has no training examples in this workspace; see `baldistill data list`")
    return counts


def _stats(args) -> int:
    s = stats.domain_stats(_counts(args, args.name))
    if args.json:
        print(json.dumps(dict(total=s.total, domains=s.n_domains, imbalance_ratio=s.imbalance_ratio,
                              gini=s.gini, zipf_exponent=s.zipf_exponent, counts=s.counts)))
        return 0
    print(f"{s.total} examples in {s.n_domains} domains; imbalance {s.imbalance_ratio:.1f}x, "
          f"Gini {s.gini:.3f}, Zipf exponent {s.zipf_exponent if s.zipf_exponent is None else round(s.zipf_exponent, 3)}")
    for row in s.table():
        print(f"{row['rank']:>4}  {row['domain']:<28} {row['count']:>7}  {row['share']:7.2%}")
    return 0


def _plan(args) -> int:
    counts = _counts(args, args.dataset)
    plans = policy_mod.plan(args.policy, counts, args.budget, args.stages)
    if args.json:
        print(json.dumps([r for p in plans for r in p.as_rows()]))
        return 0
    header = f"{'domain':<28}" + "".join(f"  stage {p.stage:<3}" for p in plans)
    print(header)
    for d in counts:
        cells = "".join(f"  {p.quota[d]:>5}{'*' if d in p.tail else ' '}   " for p in plans)
        print(f"{d:<28}{cells}")
    print(f"{'total':<28}" + "".join(f"  {p.budget:>5}    " for p in plans))
    print("* tail at that stage: the pool is short of the quota; the gap is filled by "
          f"{policy_mod.POLICIES[args.policy].fill}")
    return 0
