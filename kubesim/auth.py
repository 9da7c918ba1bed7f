"""Who is asking: kubesim's authenticator, bearer tokens mapped to users as the real API server's
static token file (``--token-auth-file``) does.

Every server has one admin identity (``kubesim-admin``, group ``system:masters``, the token in
the default kubeconfig context). More identities come from ``kubesim.start(users=[User(...)])``
or ``python -m kubesim --token-auth-file FILE`` (the apiserver's CSV: ``token,user,uid,"g1,g2"``);
each gets its own kubeconfig context named after the user. As upstream's authenticated-group
adder, every authenticated user is also in ``system:authenticated``. The user reaches admission
webhooks as ``request.userInfo`` (``username``, ``uid`` and ``groups``; empty ``uid`` and
``extra`` omitted, as authentication/v1 UserInfo serializes them). kubesim has no RBAC: every
authenticated user may do everything.
"""

from __future__ import annotations

import csv
import hmac
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ADMIN_NAME = "kubesim-admin"
AUTHENTICATED_GROUP = "system:authenticated"
ADMIN_GROUPS = ("system:masters",)


class UsersError(ValueError):
    """A user definition kubesim cannot accept (the message says what and where)."""


@dataclass(frozen=True)
class User:
    """One identity: ``token`` empty means kubesim generates one (see ``Handle.users``)."""

    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    token: str = ""
    extra: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def user_info(self) -> dict[str, Any]:
        """authentication.k8s.io/v1 UserInfo as the API server puts it in an AdmissionReview."""
        groups = list(self.groups)
        if AUTHENTICATED_GROUP not in groups:
            groups.append(AUTHENTICATED_GROUP)
        info: dict[str, Any] = {"username": self.name}
        if self.uid:
            info["uid"] = self.uid
        info["groups"] = groups
        if self.extra:
            info["extra"] = {k: list(v) for k, v in self.extra.items()}
        return info


class Authenticator:
    """Bearer token -> User (constant-time comparison per token)."""

    def __init__(self, users: Iterable[User]) -> None:
        self._users = [u for u in users if u.token]

    def authenticate(self, authorization: str) -> User | None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        found = None
        for user in self._users:
            if hmac.compare_digest(user.token.encode(), token.strip().encode()):
                found = user
        return found


def check_users(users: Iterable[User], *, reserved: Iterable[str] = ()) -> list[User]:
    """The users as given, refusing empty or duplicate names and tokens."""
    taken = set(reserved)
    tokens: set[str] = set()
    out = []
    for i, user in enumerate(users):
        if not isinstance(user, User):
            raise UsersError(f"users[{i}]: expected a kubesim.User, got {type(user).__name__}")
        if not user.name.strip():
            raise UsersError(f"users[{i}]: the user name is empty; give each user a name")
        if user.name in taken:
            raise UsersError(
                f"users[{i}]: the user name {user.name!r} is already used (names must be unique,"
                f" and {ADMIN_NAME!r} and 'kubesim' are kubesim's own)"
            )
        if user.token and user.token in tokens:
            raise UsersError(f"users[{i}] ({user.name}): its token is already another user's")
        taken.add(user.name)
        tokens.add(user.token)
        out.append(user)
    return out


def read_token_file(path: str | Path) -> list[User]:
    """Users from a static token file in the API server's format: one CSV line per user,
    ``token,user,uid`` and an optional quoted comma-separated group list; ``#`` lines and blank
    lines are skipped."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise UsersError(f"cannot read token file {path}: {exc.strerror or exc}") from exc
    users = []
    for lineno, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        if len(row) < 3:
            raise UsersError(
                f'{path}:{lineno}: expected token,user,uid[,"group1,group2"], got'
                f" {len(row)} field(s)"
            )
        token, name, uid = (c.strip() for c in row[:3])
        if not token or not name:
            raise UsersError(f"{path}:{lineno}: the token and the user name must not be empty")
        groups = tuple(g.strip() for g in row[3].split(",") if g.strip()) if len(row) > 3 else ()
        users.append(User(name=name, uid=uid, groups=groups, token=token))
    return users
