"""The one bridge between Streamlit pages and ``baldistill_core`` (caches, workspace, pickers).

Importing this package also closes a gap in Streamlit's routing: while no script in the server process has
called ``st.navigation`` yet, a ``pages/`` folder makes Streamlit run a deep-linked page file directly
(its v1 multipage mode), skipping ``app.py`` — and with it the login gate, the page config and the
navigation. Every page imports ``studio_ui``, so the first such run switches v1 off and reruns through
``app.py``.
"""


def _route_through_app_shell() -> None:
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # pragma: no cover - other Streamlit layouts
        return
    if PagesManager.uses_pages_directory:
        import streamlit as st

        PagesManager.uses_pages_directory = False
        st.rerun()


_route_through_app_shell()
