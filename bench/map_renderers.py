"""Four ways to draw the Map, side by side on the same points, each through a real served Streamlit page in
headless Chromium: the studio's canvas component (``studio_ui/map_canvas.py``, what the Map page uses), the
plotly WebGL figure it replaced, a datashader raster, and Apple's Embedding Atlas Streamlit component
(which ships the table to the browser and draws it with WebGPU / WebGL 2).

For each renderer and size it reports time to first draw (``page.goto`` to a drawn canvas or image, script
idle), the bytes the browser received (websocket frames + HTTP bodies: a component's JavaScript counts),
the server process's resident memory, and for canvas and plotly the lasso round trip (the other two have no lasso the
page can read back: the raster has none, and Embedding Atlas selects in the browser's DuckDB and returns a
SQL predicate, not timed here).

Measured here (2026-12-07): Embedding Atlas 0.26.0's Streamlit component draws nothing offline. Its
page loads DuckDB-WASM from cdn.jsdelivr.net at run time ("Failed to execute 'importScripts' ... The script
at 'https://cdn.jsdelivr.net/npm/@duckdb/duckdb-wasm@..."), and this studio runs with no network but the
package registries (and must run air-gapped), so it is reported as FAILED with that browser error.

datashader and embedding-atlas are not studio dependencies. Install them beside the studio without touching
``.venv`` (embedding-atlas pulls litellm, fastapi, duckdb, …), then run this script with that interpreter:

    python3 -m venv /tmp/rvenv
    echo "$PWD/.venv/lib/python3.11/site-packages" > /tmp/rvenv/lib/python3.11/site-packages/studio.pth
    /tmp/rvenv/bin/pip install datashader==0.19.1 embedding-atlas==0.26.0
    /tmp/rvenv/bin/python bench/map_renderers.py [--rows 100000,1000000]

A renderer whose package is missing prints a SKIP line. Points are seeded Gaussian blobs, one per domain
(50 Zipf-sized domains, as ``bench/scale.py``); Chromium has no GPU here (software WebGL).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "bench")]
# the served pages import this checkout (studio_ui, baldistill_core)
os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)

PAGES = {
    "canvas": """
        import numpy as np, streamlit as st
        from baldistill_core.config import MapConfig
        from baldistill_core.map.embed import MapData
        from studio_ui import map_canvas, map_view
        @st.cache_resource   # as the Map page caches its map and chart data: a rerun costs the renderer alone
        def data():
            d = np.load(DATA)
            names = [f"dom{i:02d}" for i in range(int(d["g"].max()) + 1)]
            md = MapData("bench", "tfidf", "h", "cache", [str(i) for i in range(len(d["x"]))],
                         [names[i] for i in d["g"]], d["x"], d["y"], d["g"], {i: n for i, n in enumerate(names)}, 0.0)
            shown = md.display_sample(MapConfig().max_points)
            labels = np.asarray(md.domains, dtype=object)[shown]
            return md, map_canvas.scatter(md.x, md.y, labels, shown, map_view.group_colours("domain", labels)[0])
        md, sc = data()
        picked = map_canvas.show(sc, key="map")
        if picked:
            st.subheader(f"{len(picked):,} selected")
            st.dataframe({"id": [md.ids[i] for i in picked[:50]]})
            st.caption(f"Rows 1–{min(50, len(picked))} of {len(picked):,}")
    """,
    "plotly": """
        import numpy as np, streamlit as st
        from baldistill_core.config import MapConfig
        from baldistill_core.map.embed import MapData
        from studio_ui import map_view
        @st.cache_resource   # as the Map page caches its map and figure: a rerun costs the renderer alone
        def data():
            d = np.load(DATA)
            names = [f"dom{i:02d}" for i in range(int(d["g"].max()) + 1)]
            md = MapData("bench", "tfidf", "h", "cache", [str(i) for i in range(len(d["x"]))],
                         [names[i] for i in d["g"]], d["x"], d["y"], d["g"], {i: n for i, n in enumerate(names)}, 0.0)
            return md, map_view.build_figure(md, "domain", shown=md.display_sample(MapConfig().max_points))
        md, fig = data()
        ev = st.plotly_chart(fig, on_select="rerun", selection_mode=("lasso", "box"), key="map")
        picked = map_view.selected_indices(ev)
        if picked:
            st.subheader(f"{len(picked):,} selected")
            st.dataframe({"id": [md.ids[i] for i in picked[:50]]})
            st.caption(f"Rows 1–{min(50, len(picked))} of {len(picked):,}")
    """,
    "datashader": """
        import numpy as np, pandas as pd, streamlit as st
        import datashader as ds, datashader.transfer_functions as tf
        d = np.load(DATA)
        names = [f"dom{i:02d}" for i in range(int(d["g"].max()) + 1)]
        df = pd.DataFrame({"x": d["x"], "y": d["y"], "domain": pd.Categorical.from_codes(d["g"], names)})
        agg = ds.Canvas(plot_width=1200, plot_height=640).points(df, "x", "y", ds.count_cat("domain"))
        import colorcet
        key = dict(zip(names, (colorcet.glasbey * 2)[:len(names)]))
        st.image(tf.shade(agg, color_key=key, how="eq_hist").to_pil())
    """,
    "embedding_atlas": """
        import numpy as np, pandas as pd, streamlit as st
        from embedding_atlas.streamlit import embedding_atlas
        d = np.load(DATA)
        names = [f"dom{i:02d}" for i in range(int(d["g"].max()) + 1)]
        df = pd.DataFrame({"id": np.arange(len(d["x"])), "x": d["x"], "y": d["y"],
                           "domain": pd.Categorical.from_codes(d["g"], names).astype(str)})
        value = embedding_atlas(df, x="x", y="y", row_id="id")
    """,
}
NEEDS = {"canvas": "streamlit", "plotly": "plotly", "datashader": "datashader", "embedding_atlas": "embedding_atlas"}
DRAWN = {"canvas": ".bd-wrap[data-ready='1']", "plotly": '[data-testid="stPlotlyChart"] canvas', "datashader": '[data-testid="stImage"] img'}


def points(n: int, seed: int, path: Path) -> None:
    import numpy as np

    rng = np.random.default_rng(seed)
    w = 1 / np.arange(1, 51)
    sizes = np.maximum(5, (n * w / w.sum()).astype(int))
    sizes[0] += n - sizes.sum()
    g = np.repeat(np.arange(50, dtype=np.int32), sizes)
    centre = rng.uniform(-50, 50, size=(50, 2))
    xy = (centre[g] + rng.normal(0, 1.0, size=(n, 2))).astype(np.float32)
    np.savez(path, x=xy[:, 0], y=xy[:, 1], g=g)


def measure(renderer: str, data: Path, tmp: Path, timeout_s: float = 120) -> dict:
    from playwright.sync_api import sync_playwright

    from conftest import CHROMIUM, CHROMIUM_FLAGS, ServedApp, wait_for_app
    from map_browser import _lasso, _rss_mb, open_page

    script = tmp / f"{renderer}_page.py"
    script.write_text(f"DATA = {str(data)!r}\n" + textwrap.dedent(PAGES[renderer]))
    # no workspace is read: the page reads the points file
    app = ServedApp(tmp, tmp / f"{renderer}.log", script=script, extra_args=["--server.maxMessageSize", "1000"])
    out: dict = {}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_FLAGS, "--enable-unsafe-swiftshader"],
                                        headless=True)
            page, ws_in, ws_out = open_page(browser, timeout_s)
            http: list[int] = []
            page.on("requestfinished", lambda r: http.append(max(0, r.sizes().get("responseBodySize", 0))))
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            t0 = time.perf_counter()
            page.goto(app.url)
            wait_for_app(page)
            if page.locator('[data-testid="stException"]').count():
                raise RuntimeError(page.locator('[data-testid="stException"]').first.inner_text()[:1000])
            if renderer in DRAWN:
                page.locator(DRAWN[renderer]).first.wait_for(timeout=timeout_s * 1000)
            else:  # a custom component draws inside its iframe
                try:
                    page.frame_locator("iframe").first.locator("canvas").first.wait_for(timeout=timeout_s * 1000)
                except Exception:
                    raise RuntimeError(f"nothing drawn in {timeout_s:.0f} s; browser errors: "
                                       + " | ".join(e[:240] for e in errors if "ErrorEvent" not in e)[:900]) from None
            wait_for_app(page)
            out["first_draw_s"] = time.perf_counter() - t0
            if page.locator('[data-testid="stException"]').count():
                raise RuntimeError(page.locator('[data-testid="stException"]').first.inner_text()[:1000])
            out["received_mb"] = (sum(ws_in) + sum(http)) / 1e6
            out["websocket_mb"] = sum(ws_in) / 1e6
            out["server_rss_mb"] = _rss_mb(app.proc.pid)
            if renderer in ("plotly", "canvas"):
                out.update(_lasso(page, page.locator(DRAWN[renderer]).first, ws_in, ws_out, timeout_s))
            page.screenshot(path=str(tmp / f"{renderer}.png"))
            browser.close()
    finally:
        app.stop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", default="100000,1000000")
    ap.add_argument("--renderers", default=",".join(PAGES))
    ap.add_argument("--out", type=Path, help="keep the screenshots and logs here")
    a = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}", flush=True)
    tmp = Path(a.out or tempfile.mkdtemp(prefix="bench-renderers-"))
    tmp.mkdir(parents=True, exist_ok=True)
    results: dict = {}
    for n in (int(x) for x in a.rows.split(",")):
        data = tmp / f"points_{n}.npz"
        points(n, 0, data)
        k = f"{n // 1000}k" if n < 1_000_000 else f"{n // 1_000_000}m"
        for r in a.renderers.split(","):
            if importlib.util.find_spec(NEEDS[r]) is None:
                print(f"SKIP {r}: package {NEEDS[r]} not installed (see this script's docstring)")
                continue
            try:
                m = measure(r, data, tmp)
            except Exception as e:  # a renderer that cannot draw this size is a result too
                print(f"{r} {k}: FAILED {type(e).__name__}: {str(e)[:300]}", flush=True)
                continue
            results[(r, k)] = m
            print(f"{r} {k}: " + ", ".join(f"{x} {v:.2f}" for x, v in m.items()) + f"  (load {os.getloadavg()[0]:.2f})",
                  flush=True)
    for (r, k), m in results.items():
        print(f"RESULT map_{r}_{k}_first_draw_s {m['first_draw_s']:.2f} (received {m['received_mb']:.1f} MB, "
              f"server RSS {m['server_rss_mb']:.0f} MB)")
        if "lasso_ms" in m:
            print(f"RESULT map_{r}_{k}_lasso_ms {m['lasso_ms']:.0f} ({m['lasso_selected']} points; browser's clock, "
                  f"{m['lasso_driver_ms']:.0f} ms on Playwright's)")
    print(f"screenshots and logs in {tmp}")


if __name__ == "__main__":
    main()
