"""Construction, CRUD, value round trips, validation and conflicts."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from decimal import Decimal

import pytest

import crm_core
from conftest import Org
from crm_core import Crm, Money, Session


def test_bootstrap_returns_admin_session(crm: Crm, admin: Session) -> None:
    assert admin.tenant == "acme"
    me = admin.get("user", admin.user_id)
    assert me["username"] == "admin"
    with pytest.raises(crm_core.Conflict) as e:
        crm.bootstrap("acme", "again")
    assert e.value.rule == "already_bootstrapped"
    assert e.value.kind == crm_core.ErrorKind.CONFLICT
    assert "Session" in repr(admin)


def test_open_file_database(tmp_path: Path) -> None:
    path = tmp_path / "crm.db"
    crm = Crm.open(path, default_region="IT")
    s = crm.bootstrap("t1", "admin")
    a = s.create("account", name="ACME")
    again = Crm.open(str(path)).session("t1", s.user_id)
    assert again.get("account", a.id)["name"] == "ACME"


def test_storage_error_on_bad_path(tmp_path: Path) -> None:
    with pytest.raises(crm_core.StorageError) as e:
        Crm.open(tmp_path / "missing-dir" / "x" / "crm.db")
    assert e.value.kind == "storage"


def test_bad_region_and_tenant(crm: Crm) -> None:
    with pytest.raises(crm_core.ValidationError):
        Crm.memory(default_region="not a region")
    with pytest.raises(crm_core.ValidationError) as e:
        crm.bootstrap("bad tenant!", "admin")
    assert e.value.rule == "tenant_syntax"


def test_create_get_record_properties(admin: Session) -> None:
    a = admin.create("account", name="ACME", country="it", email="Info@ACME.it", roles=["customer"])
    assert isinstance(a.id, str) and a.kind == "account" and a.version == 1
    assert a.tenant == "acme" and a.owner_id == admin.user_id
    assert a.created_at.tzinfo is not None and a.updated_at >= a.created_at
    assert a.created_by == admin.user_id and a.updated_by == admin.user_id
    assert a.deleted_at is None
    assert a["country"] == "IT" and a.get("missing") is None and a.get("missing", 3) == 3
    assert a["roles"] == ["customer"]
    assert "name" in a and "website" not in a
    with pytest.raises(KeyError):
        a["website"]
    assert repr(a).startswith(f"<Record account {a.id} v1 name='ACME'")
    d = a.to_dict()
    assert d["id"] == a.id and d["name"] == "ACME" and d["custom"] == {}
    assert a.fields["name"] == "ACME" and a.label == "ACME"
    got = admin.get("account", a.id)
    assert got == a and hash(got) == hash(a)


def test_update_conflict_delete_restore_purge(admin: Session) -> None:
    a = admin.create("account", name="ACME")
    a2 = admin.update("account", a.id, 1, city="Milano")
    assert a2.version == 2 and a2["city"] == "Milano"
    with pytest.raises(crm_core.Conflict) as e:
        admin.update("account", a.id, 1, city="Roma")
    assert e.value.rule == "stale_version" and e.value.entity == "account"
    cleared = admin.update("account", a.id, 2, city=None)
    assert "city" not in cleared
    with pytest.raises(crm_core.Conflict):
        admin.delete("account", a.id, version=1)
    admin.delete("account", a.id, version=3)
    assert admin.get("account", a.id).deleted_at is not None
    assert admin.count("account") == 0
    trash = admin.list("account", deleted=True)
    assert [r.id for r in trash.items] == [a.id]
    assert trash.items[0].deleted_at is not None
    back = admin.restore("account", a.id)
    assert back.deleted_at is None
    admin.delete("account", a.id)
    admin.purge("account", a.id, "gdpr request")
    with pytest.raises(crm_core.NotFound) as nf:
        admin.get("account", a.id)
    assert nf.value.entity == "account"
    with pytest.raises(crm_core.NotFound):
        admin.restore("account", a.id)


def test_validation_error_names_field_and_rule(admin: Session) -> None:
    with pytest.raises(crm_core.ValidationError) as e:
        admin.create("account", name="ACME", email="not-an-email")
    err = e.value
    assert isinstance(err, crm_core.CrmError)
    assert (err.kind, err.field, err.rule) == ("validation", "email", "email_syntax")
    assert err.message == "not a valid e-mail address"
    assert "not-an-email" not in str(err)
    with pytest.raises(crm_core.ValidationError) as e2:
        admin.create("account")
    assert e2.value.field == "name"
    with pytest.raises(crm_core.ValidationError):
        admin.get("account", "not-an-id")


def test_decimal_money_date_datetime_round_trip(admin: Session) -> None:
    acc = admin.create("account", name="ACME")
    tz = dt.timezone(dt.timedelta(hours=2))
    closed = dt.datetime(2024, 5, 17, 14, 30, 15, 123456, tzinfo=tz)
    o = admin.create(
        "opportunity",
        name="Deal",
        account_id=acc.id,
        amount=Money("1234.50", "EUR"),
        probability=Decimal("0.35"),
        expected_close=dt.date(2024, 6, 30),
        closed_at=closed,
    )
    got = admin.get("opportunity", o.id)
    assert got["amount"] == Money(Decimal("1234.50"), "EUR")
    assert got["amount"].amount == Decimal("1234.50") and got["amount"].currency == "EUR"
    assert isinstance(got["probability"], Decimal) and got["probability"] == Decimal("0.35")
    assert got["expected_close"] == dt.date(2024, 6, 30)
    assert got["closed_at"] == closed
    assert got["closed_at"].utcoffset() == dt.timedelta(0)
    assert got["account_id"] == acc.id
    # Money as an (amount, currency) tuple; ints become decimals.
    o2 = admin.update("opportunity", o.id, o.version, amount=(Decimal("10"), "USD"), probability=1)
    assert o2["amount"] == Money(10, "USD") and o2["probability"] == Decimal(1)
    assert repr(o2["amount"]) == "Money('10', 'USD')" and str(o2["amount"]) == "10 USD"
    assert len({Money("1.0", "EUR"), Money("1.00", "EUR")}) == 1
    with pytest.raises(ValueError, match="naive"):
        admin.update("opportunity", o.id, o2.version, closed_at=dt.datetime(2024, 1, 1))
    with pytest.raises(crm_core.ValidationError):
        Money("1", "XYZ")
    with pytest.raises(TypeError):
        admin.create("account", name=object())


def test_lines_and_json_values(admin: Session) -> None:
    role = admin.create_role("Viewer", {"objects": {"*": {"actions": ["read"], "read": ["all"]}}}, description="d")
    assert role["policy"] == {"objects": {"*": {"actions": ["read"], "read": ["all"]}}}
    assert role["description"] == "d"
    acc = admin.create("account", name="ACME")
    q = admin.create(
        "quote",
        number="Q1",
        account_id=acc.id,
        currency="EUR",
        lines=[{"description": "Widget", "quantity": Decimal("2"), "unit_price": Decimal("9.99"), "tax_rate": 22}],
    )
    line = q["lines"][0]
    assert line["quantity"] == Decimal("2") and line["unit_price"] == Decimal("9.99")
    assert line["description"] == "Widget" and line["product_id"] is None
    assert isinstance(q["total"], Money) and q["total"].currency == "EUR"


def test_create_many_with_progress_and_row_errors(admin: Session) -> None:
    seen: list[tuple[int, int]] = []
    rows = ({"name": f"A{i:03}", "custom": None} for i in range(250))
    out = admin.create_many("account", rows, progress=lambda done, total: seen.append((done, total)))
    assert len(out) == 250 and seen[-1] == (250, 250) and seen[0] == (100, 250)
    with pytest.raises(crm_core.ValidationError) as e:
        admin.create_many("account", [{"name": "ok"}, {"name": "bad", "email": "x"}])
    assert e.value.field == "rows[1].email"
    assert admin.count("account") == 250


def test_owner_id_on_create(org: Org) -> None:
    a = org.admin.create("account", name="Given", owner_id=org.rep.user_id)
    assert a.owner_id == org.rep.user_id
    assert org.rep.get("account", a.id).id == a.id


def test_default_region_and_reload_configuration() -> None:
    crm = Crm.memory(default_region="DE")
    s = crm.bootstrap("berlin", "admin")
    c = s.create("contact", last_name="Schmidt", phone="030 1234567")
    assert c["phone"].startswith("+4930")
    crm.reload_configuration()
    assert s.get("contact", c.id)["last_name"] == "Schmidt"
