"""Benchmark of the Map: cold and warm time to a ready map, and our embedder vs. sentence-transformers.

Run from the repo root: ``.venv/bin/python bench/map.py [--sample 512] [--rounds 2]``.

* warm: load the shipped bundle (assets/datasets/<name>/embeddings/minilm) for the FULL training
  set, read the texts and domains from the workspace, build the WebGL figure and serialize it to
  JSON as st.plotly_chart does. Median of 3.
* cold: a new dataset made of ``--sample`` training texts, computed from nothing through the same
  call the page makes (embed + UMAP + HDBSCAN + keyword names + cache write). It is a subsample to
  keep the bench short; the full-size cold time is extrapolated from the measured embedding rate.
  numba compiles UMAP once per process; that one-off cost is measured and printed separately.
* embed_vs_raw: the same ``--sample`` texts embedded by our MiniLM wrapper and by calling
  ``SentenceTransformer.encode`` directly (same model object, batch size, normalization), in
  alternating rounds; ratio = raw seconds / our seconds (> 1 means ours is faster).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("STREAMLIT_LOGGER_LEVEL", "error")  # map_view's cache decorators warn outside a server
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import plotly.io as pio  # noqa: E402

from baldistill_core import store
from baldistill_core.map import clusters
from baldistill_core.data import loading as data
from baldistill_core.map import embed  # noqa: E402
from baldistill_core.config import DatasetSpec, MapConfig  # noqa: E402
from baldistill_core.workspace import open_workspace  # noqa: E402
from studio_ui import map_view  # noqa: E402


def warm_seconds(conn, ws, name: str) -> tuple[float, int]:
    times = []
    for _ in range(3):
        t = time.perf_counter()
        md = embed.map_data(conn, ws, name, "minilm", compute=False)
        if md is None or md.source != "bundle":
            raise SystemExit(f"no shipped minilm bundle for {name}: run `baldistill embed {name} --bundle` first")
        pio.to_json(map_view.build_figure(md, "domain"), validate=False)
        times.append(time.perf_counter() - t)
    return statistics.median(times), len(md)


def subsample_dataset(conn, tmp: Path, name: str, n: int, seed: int = 0) -> tuple[str, list[str]]:
    rows = store.examples(conn, name, "train")
    rows = random.Random(seed).sample(rows, min(n, len(rows)))
    path = tmp / f"{name}_sub.jsonl"
    path.write_text(data.jsonl_dumps([dict(id=r["id"], input=r["input"], answer=r["answer"],
                                           domain=r["domain"]) for r in rows]), encoding="utf-8")
    sub = f"{name}-bench{len(rows)}"
    data.import_dataset(conn, DatasetSpec(name=sub, train_path=str(path), task_type="qa"), replace=True)
    return sub, [r["input"] for r in rows]


def throughput(texts: list[str], rounds: int) -> tuple[float, float, float]:
    """(our seconds, raw seconds, max |difference|), best of ``rounds`` alternating runs each."""
    ours = embed.get_embedder("minilm")
    model = ours.model
    bs = MapConfig().batch_size
    model.encode(texts[:32], batch_size=bs)  # warm-up: first forward pass allocates
    t_ours, t_raw, diff = [], [], 0.0
    for _ in range(rounds):
        t = time.perf_counter()
        a = model.encode(texts, batch_size=bs, normalize_embeddings=True, convert_to_numpy=True,
                         show_progress_bar=False)
        t_raw.append(time.perf_counter() - t)
        t = time.perf_counter()
        b = ours.encode(texts)
        t_ours.append(time.perf_counter() - t)
        diff = max(diff, float(np.abs(a - b).max()))
    return min(t_ours), min(t_raw), diff


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sample", type=int, default=512, help="texts for the cold map and the throughput test")
    ap.add_argument("--rounds", type=int, default=2, help="alternating raw/ours rounds (best of)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench_map_") as tmp:
        tmp = Path(tmp)
        ws, conn = open_workspace(tmp / "ws")
        names = sorted(data.bundled_specs())
        print(f"torch threads: {__import__('torch').get_num_threads()}, CPU cores: {os.cpu_count()}")

        t = time.perf_counter()
        clusters.umap_layout(np.random.default_rng(0).normal(size=(60, 16)).astype(np.float32))
        print(f"UMAP first call (numba compile, once per process): {time.perf_counter() - t:.1f}s")

        warm_all, ours_all, raw_all = [], 0.0, 0.0
        for name in names:
            n_full = store.get_dataset(conn, name)["n_train"]
            w, n = warm_seconds(conn, ws, name)
            warm_all.append((w, n))
            print(f"\n[{name}] warm map (bundle load + texts/domains + figure + JSON), {n} points: {w:.2f}s")

            sub, texts = subsample_dataset(conn, tmp, name, args.sample)
            t = time.perf_counter()
            md = embed.map_data(conn, ws, sub, "minilm")
            cold = time.perf_counter() - t
            print(f"[{name}] cold map on a {len(texts)}-text SUBSAMPLE (embed + UMAP + HDBSCAN + names): "
                  f"{cold:.1f}s, {len(md.cluster_names)} clusters")

            t_ours, t_raw, diff = throughput(texts, args.rounds)
            ours_all += t_ours
            raw_all += t_raw
            rate = len(texts) / t_ours
            print(f"[{name}] embedding {len(texts)} texts: ours {t_ours:.1f}s ({rate:.1f}/s), "
                  f"SentenceTransformer.encode {t_raw:.1f}s ({len(texts) / t_raw:.1f}/s), "
                  f"ratio {t_raw / t_ours:.2f}, max |diff| {diff:.1e}")
            print(f"[{name}] full cold estimate for {n_full} texts: ~{n_full / rate + cold - len(texts) / rate:.0f}s "
                  f"(embedding at the measured rate; UMAP on the full set adds tens of seconds)")
        conn.close()

    warm_max = max(w for w, _ in warm_all)
    biggest = max(warm_all, key=lambda x: x[1])
    print(f"\nwarm map of the largest dataset ({biggest[1]} points): {biggest[0]:.2f}s; slowest warm: {warm_max:.2f}s")
    print(f"RESULT map_warm_s {warm_max:.2f} (target < 3)")
    print(f"RESULT embed_vs_raw {raw_all / ours_all:.2f} (target >= 0.9)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
