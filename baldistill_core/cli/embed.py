"""`baldistill embed <dataset>`: compute and cache the Map (embeddings, UMAP, clusters).

With ``--bundle`` the result is also written to ``assets/datasets/<name>/embeddings/<embedder>/``,
which is how the bundled demos ship their map precomputed. ``--pseudo-domains`` turns the clusters
into domains for a dataset imported without a domain field (the Map page's "Use clusters as domains").
"""

from __future__ import annotations

import sys
import time

from baldistill_core.map import clusters

from baldistill_core.map import pseudo_domains as pseudo
from baldistill_core.map import embed
from baldistill_core.config import MapConfig
from baldistill_core.workspace import open_workspace


def register(sub, common) -> None:
    p = sub.add_parser("embed", parents=[common], help="compute and cache the embedding map of a dataset")
    p.add_argument("dataset")
    p.add_argument("--embedder", default=MapConfig.model_fields["embedder"].default, choices=sorted(embed.EMBEDDERS),
                   help=MapConfig.model_fields["embedder"].description)
    p.add_argument("--bundle", action="store_true",
                   help="also write the result into assets/datasets/<dataset>/embeddings/ (ships with the demo)")
    p.add_argument("--force", action="store_true", help="recompute even if a cached map exists")
    p.add_argument("--pseudo-domains", action="store_true",
                   help="use the clusters as domains (only for a dataset imported without a domain field)")
    p.set_defaults(func=_embed)


def _bar(done: int, total: int, started: float) -> None:
    width = 30
    filled = int(width * done / max(total, 1))
    rate = done / max(time.perf_counter() - started, 1e-9)
    end = "\n" if done >= total else ""
    print(f"\r  [{'#' * filled}{'.' * (width - filled)}] {done}/{total} texts ({rate:.1f}/s)", end=end,
          file=sys.stderr, flush=True)


def _embed(args) -> int:
    ws, conn = open_workspace(args.workspace)
    t0 = time.perf_counter()
    computed = False
    if args.force or not embed.has_map(conn, ws, args.dataset, args.embedder):
        bundle = embed.compute_bundle(
            conn, args.dataset, args.embedder,
            progress=lambda d, t: _bar(d, t, t0),
            status=lambda msg: print(f"{time.perf_counter() - t0:7.1f}s  {msg}", file=sys.stderr, flush=True),
        )
        bundle.save(embed.cache_folder(ws, bundle.content_hash, args.embedder))
        computed = True
    md = embed.map_data(conn, ws, args.dataset, args.embedder, compute=False)
    n_clusters = len(md.cluster_names)
    noise = int((md.cluster == clusters.NOISE).sum())
    print(f"{args.dataset}: {len(md)} points, {n_clusters} clusters, {noise} noise points "
          f"({'computed' if computed else 'from the ' + md.source}, {time.perf_counter() - t0:.1f}s)")
    for c, name in sorted(md.cluster_names.items(), key=lambda kv: -int((md.cluster == kv[0]).sum()))[:15]:
        print(f"  {int((md.cluster == c).sum()):>6}  {name}")
    if args.bundle:
        if md.source == "bundle" and not computed:
            print(f"bundle already up to date: {embed.bundle_folder(args.dataset, args.embedder)}")
        else:
            print(f"wrote {embed.write_shipped_bundle(conn, ws, args.dataset, args.embedder)}")
    if args.pseudo_domains:
        counts = pseudo.apply_pseudo_domains(conn, ws, args.dataset, args.embedder)
        print(f"{args.dataset}: {len(counts)} pseudo-domains from clusters")
    return 0
