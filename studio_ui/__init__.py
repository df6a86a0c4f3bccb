"""The one bridge between Streamlit pages and ``baldistill_core`` (caches, workspace, pickers)."""
