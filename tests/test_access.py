"""Access: roles, users, and a real browser from a non-local address that meets a login form."""

from __future__ import annotations

import hashlib

import pytest

from baldistill_core import access
from baldistill_core.access import AccessError, User


def test_roles_are_ordered_and_errors_say_who_may():
    viewer = User("vic", "viewer", "password")
    assert viewer.can("viewer") and not viewer.can("reviewer")
    with pytest.raises(AccessError, match="vic is a viewer; approve needs the reviewer role"):
        access.require(viewer, "reviewer", "approve")
    with pytest.raises(AccessError, match="log in"):
        access.require(None, "viewer", "look")


def test_password_users_hashed_and_plain():
    h = hashlib.sha256(b"s3cret").hexdigest()
    users = access.parse_users(f"ann:reviewer:sha256:{h};bob:operator:plainpw")
    assert access.check_password("ann", "s3cret", users) == User("ann", "reviewer", "password")
    assert access.check_password("ann", "wrong", users) is None
    assert access.check_password("bob", "plainpw", users).role == "operator"
    assert access.check_password("eve", "s3cret", users) is None


def test_bad_users_spec_does_not_echo_the_secret():
    with pytest.raises(ValueError) as e:
        access.parse_users("ann:boss:hunter2")
    assert "unknown role 'boss'" in str(e.value) and "hunter2" not in str(e.value)
    with pytest.raises(ValueError) as e:
        access.parse_users("justtext-hunter2")
    assert "hunter2" not in str(e.value)


def test_oidc_roles_from_env():
    env = {"BALDISTILL_ROLES": "ann@x.org:operator;bo@x.org:reviewer"}
    assert access.oidc_role("Ann@X.org", env) == "operator"
    assert access.oidc_role("z@x.org", env) == "viewer"
    assert access.oidc_role("z@x.org", {**env, "BALDISTILL_DEFAULT_ROLE": "reviewer"}) == "reviewer"


@pytest.mark.browser
def test_non_local_request_meets_login_and_no_page(tmp_path, browser, browser_output, monkeypatch):
    """Reach the app through a relay whose peer address is 127.0.0.2: Streamlit sees a non-local client."""
    from _tcp_relay import Relay
    from conftest import ServedApp, wait_for_app

    h = hashlib.sha256(b"pw-for-test").hexdigest()
    monkeypatch.setenv("BALDISTILL_USERS", f"rita:reviewer:sha256:{h}")
    app = ServedApp(tmp_path / "ws", browser_output / "streamlit-remote.log")
    relay = Relay(app.port)
    base = f"http://127.0.0.1:{relay.port}"
    try:
        ctx = browser.new_context(viewport={"width": 1200, "height": 900})
        pg = ctx.new_page()
        pg.set_default_timeout(60_000)
        for path in ("/review", "/", "/data", "/training"):  # the first request is a deep link
            pg.goto(base + path)
            wait_for_app(pg)
            pg.wait_for_selector('text="Sign in"')
            assert pg.locator('[data-testid="stSidebarNav"]').count() == 0
            assert pg.locator('text="Budget and policy"').count() == 0
        pg.screenshot(path=str(browser_output / "login.png"))
        pg.get_by_label("Name").fill("rita")
        pg.locator("input[type=password]").fill("wrong")
        pg.get_by_role("button", name="Sign in").click()
        pg.wait_for_selector('text="Unknown name or wrong password."')
        pg.locator("input[type=password]").fill("pw-for-test")
        pg.get_by_role("button", name="Sign in").click()
        pg.wait_for_selector("text=Signed in as")
        pg.wait_for_selector('text="rita"')
        ctx.close()
    finally:
        relay.close()
        app.stop()


def test_viewer_cannot_decide_or_launch_through_the_pages(page_env, monkeypatch):
    """A signed-in viewer sees the Review and Training pages but every state-changing control refuses."""
    from streamlit.testing.v1 import AppTest

    from baldistill_core.synthetic import review
    from baldistill_core.synthetic import synthesis
    from baldistill_core.data.loading import dataset_spec
    from baldistill_core.workspace import open_workspace
    from conftest import REPO

    _, conn = open_workspace(page_env)
    synthesis.import_recorded_synthetic(conn, dataset_spec(conn, "math_lt"), per_domain=2)
    before = review.progress(conn, "math_lt")

    at = AppTest.from_file(str(REPO / "pages" / "review.py"), default_timeout=120)
    at.query_params["dataset"] = "math_lt"
    at.session_state["_user"] = User("vic", "viewer", "password")
    at.run()
    assert not at.exception
    approve = [b for b in at.button if b.label.lower().startswith("approve")]
    assert approve, "the queue shows approve buttons"
    approve[0].click().run()
    assert review.progress(conn, "math_lt") == before  # nothing changed
    assert any("needs the reviewer role" in e.value for e in at.error)

    at = AppTest.from_file(str(REPO / "pages" / "training.py"), default_timeout=120)
    at.query_params["dataset"] = "math_lt"
    at.session_state["_user"] = User("vic", "viewer", "password")
    at.run()
    assert not at.exception
    launch = [b for b in at.button if b.label == "Launch"]
    assert launch and launch[0].disabled


def test_api_key_variable_must_name_an_api_key():
    from baldistill_core.config import TeacherConfig

    assert TeacherConfig(api_key_env="VLLM_API_KEY").api_key_env == "VLLM_API_KEY"
    for bad in ("AWS_SECRET_ACCESS_KEY", "DATABASE_PASSWORD", "PATH", "openai_api_key"):
        with pytest.raises(ValueError, match="not an API-key variable name"):
            TeacherConfig(api_key_env=bad)


def test_remote_operator_cannot_point_the_student_outside_the_workspace(page_env):
    from streamlit.testing.v1 import AppTest

    from conftest import REPO

    at = AppTest.from_file(str(REPO / "pages" / "training.py"), default_timeout=120)
    at.query_params["dataset"] = "math_lt"
    at.session_state["_user"] = User("olga", "operator", "password")
    at.run()
    at.text_input(key="train_smodel").set_value("/etc").run()
    assert any("outside the workspace" in e.value for e in at.error)
    assert [b for b in at.button if b.label == "Launch"][0].disabled


def test_oidc_login_is_offered_when_secrets_configure_it(tmp_path, monkeypatch):
    """With an [auth] section in secrets.toml, a remote visitor gets the identity-provider button."""
    from streamlit.testing.v1 import AppTest

    script = tmp_path / "gate.py"
    script.write_text(
        "import streamlit as st\n"
        "from studio_ui import auth\n"
        "auth._login_form()\n"
    )
    at = AppTest.from_file(str(script), default_timeout=60)
    at.secrets["auth"] = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "x" * 32,
                          "client_id": "id", "client_secret": "s",
                          "server_metadata_url": "https://idp.example/.well-known/openid-configuration"}
    monkeypatch.delenv("BALDISTILL_USERS", raising=False)
    at.run()
    assert not at.exception
    assert [b.label for b in at.button] == ["Sign in with your identity provider"]
    assert not at.error  # OIDC alone is a valid configuration
