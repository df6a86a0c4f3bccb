"""Figures of the Training and Compare pages: live curves, loss, grouped bars, spend, PNG/HTML export."""

from __future__ import annotations

import plotly.graph_objects as go

from baldistill_core.selection.methods import label as method_label
from studio_ui.charts import HEAD_COLOR, TAIL_COLOR

HEATMAP_ABOVE = 12  # domains; above this one line per domain is unreadable


def _domain_style(d: str, tail: set[str]) -> dict:
    if d in tail:
        return dict(dash="dot", width=1.5, color=TAIL_COLOR)
    return dict(dash="solid", width=1.5, color=HEAD_COLOR)


def accuracy_figure(live: list[dict], head: list[str], tail: list[str], metric: str) -> go.Figure:
    """Per-domain live score by stage: lines (large domains solid blue, small domains dotted orange, macro
    black) or, above ``HEATMAP_ABOVE`` domains, a domain × stage heatmap. Stage -1 is the base student.
    ``head`` / ``tail`` are the evaluation's size groups (``evaluate.head_tail_groups``)."""
    domains = sorted({r["domain"] for r in live if not r["domain"].startswith("_")})
    stages = sorted({r["stage"] for r in live})
    val = {(r["domain"], r["stage"]): r["value"] for r in live}
    label = {s: ("base" if s < 0 else f"stage {s}") for s in stages}
    fig = go.Figure()
    if len(domains) > HEATMAP_ABOVE:
        tails = set(tail)
        order = sorted(domains, key=lambda d: (d in tails, d))
        fig.add_heatmap(z=[[val.get((d, s)) for s in stages] for d in order], x=[label[s] for s in stages],
                        y=[("◦ " if d in tails else "") + d for d in order], colorscale="Viridis", zmin=0, zmax=1,
                        colorbar=dict(title=metric), hovertemplate="%{y} · %{x}: %{z:.3f}<extra></extra>")
        fig.update_layout(height=max(360, 14 * len(order) + 80), yaxis=dict(autorange="reversed", dtick=1),
                          title=f"Live {metric} per domain (◦ = small domain)")
    else:
        tails = set(tail)
        for d in domains:
            xs = [label[s] for s in stages if (d, s) in val]
            fig.add_scatter(x=xs, y=[val[(d, s)] for s in stages if (d, s) in val], mode="lines+markers", name=d,
                            line=_domain_style(d, tails), legendgroup="small" if d in tails else "large",
                            legendgrouptitle_text="small domains" if d in tails else "large domains")
        if any(("_macro", s) in val for s in stages):
            fig.add_scatter(x=[label[s] for s in stages if ("_macro", s) in val],
                            y=[val[("_macro", s)] for s in stages if ("_macro", s) in val], mode="lines+markers",
                            name="macro", line=dict(color="black", width=3))
        fig.update_layout(height=380, yaxis=dict(range=[0, 1.02], title=metric),
                          title=f"Live {metric} per domain (solid = large domains, dotted = small domains)")
    fig.update_layout(margin=dict(l=10, r=10, t=40, b=10), xaxis=dict(type="category", title=None))
    return fig


def loss_figure(loss: list[dict]) -> go.Figure:
    fig = go.Figure()
    for s in sorted({r["stage"] for r in loss}):
        pts = sorted((r["step"], r["value"]) for r in loss if r["stage"] == s)
        fig.add_scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="lines+markers", name=f"stage {s}")
    fig.update_layout(height=300, margin=dict(l=10, r=10, t=40, b=10), title="Training loss",
                      xaxis_title="step", yaxis_title="loss")
    return fig


def grouped_bars(scores: list[dict], metric: str) -> go.Figure:
    fig = go.Figure()
    domains = sorted({d for s in scores for d in s["per_domain"]})
    for s in scores:
        ys = [s["per_domain"].get(d) for d in domains]
        ci = s.get("domain_ci") or {}
        err = None
        if ci:  # 95% bootstrap interval of each domain's score (reports.significance.add_intervals)
            err = dict(type="data", symmetric=False, color="#495057", thickness=1,
                       array=[ci[d].high - ci[d].value if d in ci else 0 for d in domains],
                       arrayminus=[ci[d].value - ci[d].low if d in ci else 0 for d in domains])
        fig.add_bar(name=f"{s['name']} ({method_label(s['method'])}) · {s['run_id'][-4:]}", x=domains, y=ys,
                    error_y=err,
                    text=[None if y is None else f"{y:.2f}" for y in ys], textposition="outside", cliponaxis=False)
    fig.update_layout(barmode="group", height=420, margin=dict(l=10, r=10, t=40, b=10),
                      yaxis=dict(title=metric, range=[0, 1.08]),
                      title=f"{metric} per domain", xaxis_tickangle=-45 if len(domains) > 12 else 0,
                      legend=dict(orientation="h"))
    return fig


def size_groups_scatter(scores: list[dict], metric: str) -> go.Figure:
    """Each run as a point: its score on the large domains (x) against the small domains (y)."""
    lg, sm = "large domains", "small domains"
    pts = [s for s in scores if s[lg] is not None and s[sm] is not None]
    fig = go.Figure(go.Scatter(
        x=[s[lg] for s in pts], y=[s[sm] for s in pts], mode="markers+text",
        text=[s["name"] for s in pts], textposition="top center", marker=dict(size=14, color=HEAD_COLOR),
        customdata=[[method_label(s["method"]), s["run_id"]] for s in pts],
        hovertemplate="%{text} · %{customdata[0]}<br>large domains %{x:.3f} · small domains %{y:.3f}"
                      "<extra>%{customdata[1]}</extra>"))
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dot", color="#aaa"), showlegend=False,
                    hoverinfo="skip")
    fig.update_layout(height=420, margin=dict(l=10, r=10, t=40, b=10),
                      title=f"Large vs small domains ({metric})",
                      xaxis=dict(title=f"{metric} on the large domains", range=[0, 1]),
                      yaxis=dict(title=f"{metric} on the small domains", range=[0, 1]), showlegend=False)
    return fig


def spend_bars(scores: list[dict]) -> go.Figure:
    names = [s["name"] + " · " + s["run_id"][-4:] for s in scores]
    fig = go.Figure()
    fig.add_bar(name="budget B", x=names, y=[s["budget"] for s in scores], marker_color="#ced4da")
    fig.add_bar(name="examples selected", x=names, y=[s["selected"] for s in scores], marker_color=TAIL_COLOR)
    fig.update_layout(barmode="group", height=320, margin=dict(l=10, r=10, t=40, b=10), title="Budget spent",
                      yaxis_title="examples")
    return fig


PNG_COLORS = ["#3b5bdb", "#f08c00", "#2f9e44", "#c2255c", "#7048e8", "#0c8599", "#e8590c", "#5c940d"]


def png_figure(fig: go.Figure) -> go.Figure:
    """A copy of ``fig`` that renders the same outside the browser. Streamlit's template leaves trace
    colours to its frontend (kaleido drew black legend swatches) and the page's tight margins clipped
    the y ticks and the title: give every trace its colour, a plain white template and room around."""
    out = go.Figure(fig)
    out.update_layout(template="plotly_white", margin=dict(l=80, r=40, t=80, b=60), title_x=0.02,
                      legend=dict(orientation="v", x=1.02, xanchor="left", y=1, yanchor="top"),  # clear of ticks
                      yaxis=dict(automargin=True), xaxis=dict(automargin=True))
    for i, tr in enumerate(out.data):
        if getattr(tr, "marker", None) is not None and tr.marker.color is None:
            tr.marker.color = PNG_COLORS[i % len(PNG_COLORS)]
        if getattr(tr, "line", None) is not None and getattr(tr.line, "color", None) is None and tr.type == "scatter":
            tr.line.color = PNG_COLORS[i % len(PNG_COLORS)]
    return out


def figure_png(fig: go.Figure) -> bytes | None:
    """PNG bytes via kaleido + the system Chromium, or None when that is unavailable (a few seconds:
    call it on demand, never on every render)."""
    import os

    if not os.environ.get("BROWSER_PATH") and os.path.exists("/usr/bin/chromium"):
        os.environ["BROWSER_PATH"] = "/usr/bin/chromium"
    try:
        fig = png_figure(fig)
        return fig.to_image(format="png", width=1200, height=int(fig.layout.height or 500) + 40, scale=1)
    except Exception:  # kaleido missing, no Chrome, or it failed to start
        return None


def figure_html(fig: go.Figure) -> str:
    """Self-contained HTML of a figure (plotly.js inlined, works offline)."""
    return fig.to_html(include_plotlyjs=True, full_html=True)


# ---------------------------------------------------------------- the stage preview (Plan page)
