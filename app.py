"""BalDistill Studio: Streamlit entry point (`streamlit run app.py`).

Navigation over the files in pages/; the workspace and dataset picker live in the sidebar.
"""

from pathlib import Path

import streamlit as st

from studio_ui import auth, bridge, settings

st.set_page_config(page_title="BalDistill Studio", page_icon="⚖️", layout="wide")

HERE = Path(__file__).resolve().parent
# (file, title, icon, url path) in the order of the demo tour.
PAGES = [
    ("home.py", "Home", ":material/home:", "home"),
    ("data.py", "Data", ":material/bar_chart:", "data"),
    ("map.py", "Map", ":material/scatter_plot:", "map"),
    ("plan.py", "Plan", ":material/checklist:", "plan"),
    ("review.py", "Review", ":material/fact_check:", "review"),
    ("training.py", "Training", ":material/model_training:", "training"),
    ("compare.py", "Compare", ":material/compare_arrows:", "compare"),
]

pages = [
    st.Page(str(HERE / "pages" / f), title=title, icon=icon, url_path=url, default=(i == 0))
    for i, (f, title, icon, url) in enumerate(p for p in PAGES if (HERE / "pages" / p[0]).exists())
]
if auth.current_user() is None:
    # Not signed in: no page list, no page runs; only the login form.
    st.navigation(pages, position="hidden")
    auth.gate()
nav = st.navigation(pages)
auth.gate()
try:
    bridge.dataset_picker()
    settings.adopt_url()
    settings.restore_url()  # method, B, K and seed chosen on one page stay in the URL on the next
    st.sidebar.caption(f"Workspace: `{bridge.workspace().root}`")
    nav.run()
finally:
    bridge.end_of_run()
