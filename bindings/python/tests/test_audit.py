"""History, time travel, audit verification, user activity and the outbox."""

from __future__ import annotations

import datetime as dt
import time

import pytest

import crm_core
from conftest import Org
from crm_core import Session


def test_history_as_of_version_diff(admin: Session) -> None:
    a = admin.create("account", name="ACME", city="Milano")
    time.sleep(0.01)
    between = dt.datetime.now(dt.timezone.utc)
    time.sleep(0.01)
    a2 = admin.update("account", a.id, 1, city="Roma")
    a3 = admin.update("account", a.id, 2, name="ACME S.p.A.")
    h = admin.history("account", a.id)
    assert [e.version for e in h.entries] == [3, 2, 1] and h.next is None and len(h) == 3
    e = h.entries[1]
    assert e.operation == "update" and e.kind == "account" and e.record_id == a.id
    assert e.user_id == admin.user_id and e.client == "pytest" and e.address == "127.0.0.1"
    assert e.location is None and e.comment is None and e.seq > 0 and e.at.tzinfo is not None
    ch = {c.field: (c.old, c.new) for c in e.changes}
    assert ch == {"city": ("Milano", "Roma")}
    assert "HistoryEntry" in repr(e) and "FieldChange" in repr(e.changes[0])
    page = admin.history("account", a.id, limit=2)
    assert len(page.entries) == 2 and page.next is not None
    rest = admin.history("account", a.id, before=page.next, limit=2)
    assert [x.version for x in rest.entries] == [1]
    old = admin.as_of("account", a.id, between)
    assert old is not None and old["city"] == "Milano" and old.version == 1
    assert admin.as_of("account", a.id, dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)) is None
    with pytest.raises(ValueError):
        admin.as_of("account", a.id, dt.datetime(2020, 1, 1))
    v2 = admin.version("account", a.id, 2)
    assert v2 is not None and v2["city"] == "Roma" and v2["name"] == "ACME"
    assert admin.version("account", a.id, 9) is None
    diff = {c.field: (c.old, c.new) for c in admin.diff_versions("account", a.id, 1, 3)}
    assert diff == {"city": ("Milano", "Roma"), "name": ("ACME", "ACME S.p.A.")}
    assert a2.version == 2 and a3.version == 3


def test_verify_audit_and_user_activity(org: Org) -> None:
    start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)
    org.rep.create("account", name="One")
    org.rep.create("account", name="Two")
    end = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=1)
    v = org.admin.verify_audit()
    assert v.ok and bool(v) and v.checked > 5 and v.first_bad_seq is None and v.problem is None
    assert "AuditVerification" in repr(v)
    acts = org.admin.user_activity(org.rep.user_id, start, end)
    assert [e.operation for e in acts] == ["create", "create"]
    assert len(org.admin.user_activity(org.rep.user_id, start, end, limit=1)) == 1
    with pytest.raises(crm_core.PermissionDenied):
        org.mate.user_activity(org.rep.user_id, start, end)


def test_events_drain_and_ack(admin: Session) -> None:
    before = admin.pending_events(limit=10_000)
    a = admin.create("account", name="ACME")
    admin.update("account", a.id, 1, city="Roma")
    events = admin.pending_events(after=before[-1].seq if before else 0)
    mine = [e for e in events if e.record_id == a.id]
    assert len(mine) >= 2
    ev = mine[0]
    assert ev.kind == "account" and ev.user_id == admin.user_id and ev.event_type
    assert ev.at.tzinfo is not None and isinstance(ev.payload, (dict, list, type(None)))
    assert "Event" in repr(ev)
    all_seqs = [e.seq for e in admin.pending_events(limit=10_000)]
    assert admin.ack_events(all_seqs) == len(all_seqs)
    assert admin.pending_events() == []
    assert admin.ack_events(all_seqs) == 0
