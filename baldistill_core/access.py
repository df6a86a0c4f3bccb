"""Who may do what: roles, users, and the rule for when a login is required.

Roles are ordered: viewer (look only) < reviewer (approve / edit synthetic data) < operator (launch runs,
spend budget). A request from this machine (localhost) needs no login and acts as an operator named by
``$BALDISTILL_USER`` (default: the OS user). A request from another address needs a login: Streamlit's
OIDC (``st.login``, configured in ``.streamlit/secrets.toml``) when configured, else the password users of
``$BALDISTILL_USERS``. ``BALDISTILL_AUTH=required`` forces a login for local requests too.

``BALDISTILL_USERS`` holds ``name:role:secret`` entries separated by ``;`` where secret is either
``sha256:<hex of sha256(password)>`` (recommended) or a plain password. OIDC users get the role given to their
e-mail in ``BALDISTILL_ROLES`` (``email:role;…``), else ``BALDISTILL_DEFAULT_ROLE`` (default viewer).
Nothing here is stored in the database.
"""

from __future__ import annotations

from baldistill_core.errors import BalDistillError, ConfigError

import getpass
import hashlib
import hmac
import os
from dataclasses import dataclass

ROLES = ("viewer", "reviewer", "operator")


class AccessError(BalDistillError, PermissionError):
    pass


@dataclass(frozen=True)
class User:
    name: str
    role: str
    via: str  # local | password | oidc

    def can(self, role: str) -> bool:
        """
        >>> User("ann", "reviewer", "password").can("viewer"), User("ann", "reviewer", "password").can("operator")
        (True, False)
        """
        return ROLES.index(self.role) >= ROLES.index(role)


def require(user: User | None, role: str, action: str) -> User:
    if user is None:
        raise AccessError(f"log in to {action}")
    if not user.can(role):
        raise AccessError(f"{user.name} is a {user.role}; {action} needs the {role} role — ask an operator")
    return user


def _role(value: str, where: str) -> str:
    if value not in ROLES:
        raise ConfigError(f"{where}: unknown role {value!r}; roles are {', '.join(ROLES)}")
    return value


def parse_users(spec: str | None) -> dict[str, tuple[str, str]]:
    """``name:role:secret;…`` → {name: (role, secret)}.

    >>> parse_users("ann:reviewer:sha256:ab12; bob:operator:pw")
    {'ann': ('reviewer', 'sha256:ab12'), 'bob': ('operator', 'pw')}
    """
    out: dict[str, tuple[str, str]] = {}
    for i, entry in enumerate(x.strip() for x in (spec or "").split(";")):
        if not entry:
            continue
        parts = entry.split(":", 2)
        if len(parts) != 3 or not parts[0] or not parts[2]:
            raise ConfigError(f"BALDISTILL_USERS entry {i + 1} is not name:role:secret (the secret is not shown); "
                              f"fix that entry")
        out[parts[0]] = (_role(parts[1], f"BALDISTILL_USERS entry {i + 1}"), parts[2])
    return out


def check_password(name: str, password: str, users: dict[str, tuple[str, str]]) -> User | None:
    """Constant-time check of a password against the configured users."""
    role, secret = users.get(name, ("viewer", "sha256:" + "0" * 64))
    if secret.startswith("sha256:"):
        given = hashlib.sha256(password.encode()).hexdigest()
        ok = hmac.compare_digest(given, secret[7:].lower())
    else:
        ok = hmac.compare_digest(password.encode(), secret.encode())
    return User(name, role, "password") if ok and name in users else None


def oidc_role(email: str | None, env: dict | None = None) -> str:
    env = os.environ if env is None else env
    roles = {}
    for entry in (env.get("BALDISTILL_ROLES") or "").split(";"):
        if ":" in entry:
            who, role = entry.strip().rsplit(":", 1)
            roles[who.lower()] = _role(role, "BALDISTILL_ROLES")
    return roles.get((email or "").lower(), _role(env.get("BALDISTILL_DEFAULT_ROLE", "viewer"), "BALDISTILL_DEFAULT_ROLE"))


def login_required(client_ip: str | None, env: dict | None = None) -> bool:
    """Local requests (client_ip None: Streamlit reports loopback clients as None) need no login.

    >>> login_required(None, {}), login_required("10.1.2.3", {}), login_required(None, {"BALDISTILL_AUTH": "required"})
    (False, True, True)
    """
    env = os.environ if env is None else env
    return client_ip is not None or env.get("BALDISTILL_AUTH", "").lower() == "required"


def local_user(env: dict | None = None) -> User:
    env = os.environ if env is None else env
    try:
        name = env.get("BALDISTILL_USER") or getpass.getuser()
    except Exception:  # no passwd entry in some containers
        name = "local"
    return User(name, "operator", "local")
