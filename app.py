"""BalDistill Studio: Streamlit entry point (`streamlit run app.py`).

Navigation over the files in pages/; the workspace and dataset picker live in the sidebar.
"""

from pathlib import Path

import streamlit as st

from baldistill_core.errors import BalDistillError
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
    st.Page(str(HERE / "pages" / f), title=title, icon=icon, url_path=url)
    for f, title, icon, url in PAGES if (HERE / "pages" / f).exists()
]


HOME = pages[0]


def _root() -> None:
    # Streamlit serves its default page at "/" only, so a default Home answered "/home" with "Page not
    # found". The default is this hidden page instead: it sends "/" on to Home at its own URL.
    st.switch_page(HOME, query_params=st.query_params.to_dict())


pages.insert(0, st.Page(_root, title="Start", url_path="start", default=True, visibility="hidden"))
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
except BalDistillError as e:
    # A problem the user can fix (the message names it and the fix): shown on the page, no traceback.
    st.error(str(e))
finally:
    bridge.end_of_run()
