"""Roles, users, record scopes, hidden fields, sharing and access explanations."""

from __future__ import annotations

import datetime as dt

import pytest

import crm_core
from conftest import Org
from crm_core import Action, F


def test_rep_sees_team_records_admin_sees_all(org: Org) -> None:
    mine = org.rep.create("account", name="Rep's")
    mates = org.mate.create("account", name="Mate's")
    others = org.other.create("account", name="Other's")
    org.admin.create("account", name="Admin's")
    assert org.admin.count("account") == 4
    assert org.rep.count("account") == 2
    assert sorted(r["name"] for r in org.rep.list("account").items) == ["Mate's", "Rep's"]
    assert org.other.count("account") == 1
    assert org.rep.get("account", mates.id).id == mates.id
    # Not visible: NotFound, not PermissionDenied.
    with pytest.raises(crm_core.NotFound):
        org.rep.get("account", others.id)
    # Visible but not writable (write scope is own): PermissionDenied naming the action.
    with pytest.raises(crm_core.PermissionDenied) as e:
        org.rep.update("account", mates.id, mates.version, city="Roma")
    assert e.value.action == "update" and e.value.kind == "permission_denied"
    assert org.rep.update("account", mine.id, mine.version, city="Roma")["city"] == "Roma"
    # Contacts: own scope only.
    c = org.mate.create("contact", last_name="Verdi")
    with pytest.raises(crm_core.NotFound):
        org.rep.get("contact", c.id)
    # No rule at all for opportunities.
    with pytest.raises(crm_core.PermissionDenied) as e2:
        org.rep.create("opportunity", name="x", account_id=mine.id)
    assert e2.value.action == "create" and e2.value.entity == "opportunity"
    with pytest.raises(crm_core.PermissionDenied):
        org.rep.delete("account", mine.id)


def test_hidden_and_read_only_fields(org: Org) -> None:
    a = org.admin.create("account", name="ACME", vat_number="IT123", industry="retail", owner_id=org.rep.user_id)
    assert org.admin.get("account", a.id)["vat_number"] == "IT123"
    seen = org.rep.get("account", a.id)
    assert "vat_number" not in seen and seen.get("vat_number") is None and seen["industry"] == "retail"
    assert "vat_number" not in seen.to_dict()
    with pytest.raises(crm_core.PermissionDenied) as e:
        org.rep.list("account", F("vat_number") == "IT123")
    assert e.value.field == "vat_number"
    with pytest.raises(crm_core.PermissionDenied):
        org.rep.count("account", {"vat_number": "IT123"})
    with pytest.raises(crm_core.PermissionDenied):
        org.rep.update("account", a.id, a.version, industry="bank")
    with pytest.raises(crm_core.PermissionDenied):
        org.rep.export("account", columns=["vat_number"])
    roles = org.admin.roles_reading_field("account", "vat_number")
    assert [name for _, name, _ in roles] == ["Administrator"]
    access = {name: how for _, name, how in org.admin.roles_reading_field("account", "industry")}
    assert access == {"Administrator": "read", "Sales rep": "read_only"}


def test_share_unshare_explain_who_can_read(org: Org) -> None:
    theirs = org.other.create("account", name="Other's")
    d = org.admin.explain(org.rep.user_id, Action.READ, "account", theirs.id)
    assert not d and d.allowed is False and isinstance(d.rule, str) and d.reason
    assert "Decision" in repr(d)
    share = org.admin.share("account", theirs.id, user=org.rep.user_id,
                            until=dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1))
    assert share.kind == "share"
    assert org.rep.get("account", theirs.id).id == theirs.id
    assert org.admin.explain(org.rep.user_id, "read", "account", theirs.id).allowed
    readers = org.admin.who_can_read("account", theirs.id)
    allowed = {r.username for r in readers if r.decision.allowed}
    assert {"rep", "other", "admin"} <= allowed and "mate" not in allowed
    assert readers[0].user_id and "AccessReview" in repr(readers[0])
    org.admin.unshare(share.id)
    with pytest.raises(crm_core.NotFound):
        org.rep.get("account", theirs.id)
    team_share = org.admin.share("account", theirs.id, team=org.team_id, edit=True)
    assert org.mate.update("account", theirs.id, theirs.version, city="Roma")["city"] == "Roma"
    org.admin.unshare(team_share.id)
    with pytest.raises(ValueError):
        org.admin.share("account", theirs.id)
    with pytest.raises(ValueError):
        org.admin.share("account", theirs.id, user=org.rep.user_id, team=org.team_id)
    with pytest.raises(ValueError):
        org.admin.explain(org.rep.user_id, "fly", "account", theirs.id)


def test_unknown_user_and_admin_only_operations(org: Org) -> None:
    with pytest.raises(crm_core.PermissionDenied) as e:
        org.crm.session("acme", "01900000-0000-7000-8000-000000000000")
    assert e.value.rule == "unknown_user"
    with pytest.raises(crm_core.PermissionDenied) as e:
        org.admin.as_user("01900000-0000-7000-8000-000000000000")
    assert e.value.rule == "unknown_user"
    with pytest.raises(crm_core.PermissionDenied):
        org.rep.verify_audit()
    with pytest.raises(crm_core.PermissionDenied):
        org.rep.pending_events()
    with pytest.raises(crm_core.PermissionDenied):
        org.rep.roles_reading_field("account", "name")


def test_a_deactivated_user_is_refused_at_once(org: Org) -> None:
    assert org.rep.count("account") == 0
    user = org.admin.get("user", org.rep.user_id)
    org.admin.update("user", user.id, user.version, active=False)
    # The open session re-checks the user on its next call; a new one is refused when opened.
    with pytest.raises(crm_core.PermissionDenied) as e:
        org.rep.count("account")
    assert e.value.rule == "inactive_user"
    with pytest.raises(crm_core.PermissionDenied) as e:
        org.crm.session("acme", org.rep.user_id)
    assert e.value.rule == "inactive_user"


def test_only_an_administrator_session_acts_as_another_user(org: Org) -> None:
    with pytest.raises(crm_core.PermissionDenied) as e:
        org.rep.as_user(org.admin.user_id)
    assert e.value.rule == "not_an_administrator"
    # The host opens other users' sessions from the Crm; an administrator may switch.
    assert org.admin.as_user(org.rep.user_id).user_id == org.rep.user_id
