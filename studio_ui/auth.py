"""Login gate and role checks for the Streamlit side (rules in ``baldistill_core.access``)."""

from __future__ import annotations

import os

import streamlit as st

from baldistill_core import access
from baldistill_core.access import User


def _oidc_configured() -> bool:
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets file at all
        return False


def current_user() -> User | None:
    user = st.session_state.get("_user")
    if user is not None:
        return user
    ip = st.context.ip_address
    if not isinstance(ip, str):  # no real connection (e.g. streamlit.testing's AppTest)
        ip = None
    if not access.login_required(ip):
        user = access.local_user()
    elif _oidc_configured() and getattr(st.user, "is_logged_in", False):
        email = st.user.get("email") or st.user.get("name") or "oidc-user"
        user = User(str(email), access.oidc_role(str(email)), "oidc")
    if user is not None:
        st.session_state["_user"] = user
    return user


def gate() -> User:
    """Stop the script with a login form unless the request may go on."""
    user = current_user()
    if user is None:
        _login_form()
        st.stop()
    with st.sidebar:
        st.caption(f"Signed in as **{user.name}** ({user.role})" + ("" if user.via != "local" else " · local"))
        if user.via != "local" and st.button("Log out", key="logout"):
            st.session_state.pop("_user", None)
            if user.via == "oidc":
                st.logout()
            st.rerun()
    return user


def _login_form() -> None:
    st.title("BalDistill Studio")
    st.info("This studio is served beyond this machine, so you need to sign in.")
    if _oidc_configured():
        st.button("Sign in with your identity provider", on_click=st.login, type="primary")
    try:
        users = access.parse_users(os.environ.get("BALDISTILL_USERS"))
    except ValueError as e:
        st.error(str(e))
        return
    if not users:
        if not _oidc_configured():
            st.error("No login is configured: set BALDISTILL_USERS (name:role:sha256:<hash>;…) or an [auth] "
                     "section in .streamlit/secrets.toml, or serve on localhost only.")
        return
    with st.form("login"):
        name = st.text_input("Name")
        password = st.text_input("Password", type="password")
        if st.form_submit_button("Sign in", type="primary"):
            user = access.check_password(name, password, users)
            if user is None:
                st.error("Unknown name or wrong password.")
            else:
                st.session_state["_user"] = user
                st.rerun()


def allowed(role: str, action: str) -> bool:
    """For a state-changing control: True if the signed-in user may; otherwise say why, once."""
    user = current_user()
    try:
        access.require(user, role, action)
        return True
    except access.AccessError as e:
        st.caption(f":lock: {e}")
        return False


def can(role: str) -> bool:
    user = current_user()
    return user is not None and user.can(role)


def user_name() -> str:
    user = current_user()
    return user.name if user else "anonymous"
