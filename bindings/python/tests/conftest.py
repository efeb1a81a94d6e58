from __future__ import annotations

from dataclasses import dataclass

import pytest

import crm_core
from crm_core import Crm, Session


@pytest.fixture
def crm() -> Crm:
    return Crm.memory()


@pytest.fixture
def admin(crm: Crm) -> Session:
    return crm.bootstrap("acme", "admin", client="pytest", address="127.0.0.1")


REP_POLICY = {
    "objects": {
        "account": {"actions": ["create", "read", "update"], "read": ["team"], "write": ["own"]},
        "contact": {"actions": ["create", "read", "update"], "read": ["own"], "write": ["own"]},
    },
    "fields": {"account.vat_number": "hidden", "account.industry": "read_only"},
    "capabilities": ["approve_quotes"],
}


@dataclass
class Org:
    crm: Crm
    admin: Session
    rep: Session
    mate: Session
    other: Session
    role_id: str
    team_id: str


@pytest.fixture
def org(crm: Crm, admin: Session) -> Org:
    role = admin.create_role("Sales rep", REP_POLICY)
    team = admin.create("team", name="North")
    other_team = admin.create("team", name="South")
    rep = admin.create("user", username="rep", role_id=role.id, team_ids=[team.id], manager_id=admin.user_id)
    mate = admin.create("user", username="mate", role_id=role.id, team_ids=[team.id])
    other = admin.create("user", username="other", role_id=role.id, team_ids=[other_team.id])
    return Org(
        crm=crm,
        admin=admin,
        rep=crm.session("acme", rep.id),
        mate=crm.session("acme", mate.id),
        other=admin.as_user(other.id),
        role_id=role.id,
        team_id=team.id,
    )


__all__ = ["crm_core"]
