"""Filters (serde dicts, plain dicts, F expressions), paging, iteration, export, phones, custom fields."""

from __future__ import annotations

from decimal import Decimal

import pytest

import crm_core
from crm_core import F, Session


@pytest.fixture
def accounts(admin: Session) -> Session:
    rows = [
        {"name": "Alpha", "country": "IT", "city": "Milano"},
        {"name": "Beta", "country": "IT", "city": "Roma"},
        {"name": "Gamma", "country": "DE", "city": "Berlin"},
        {"name": "Delta", "country": "FR"},
    ]
    admin.create_many("account", rows)
    return admin


def names(page: crm_core.Page) -> list[str]:
    return sorted(r["name"] for r in page.items)


def test_serde_filter_form(accounts: Session) -> None:
    f = {"op": "compare", "field": "country", "cmp": "eq", "value": {"type": "text", "value": "IT"}}
    assert names(accounts.list("account", f)) == ["Alpha", "Beta"]
    f2 = {"op": "or", "any": [f, {"op": "is_null", "field": "city"}]}
    assert accounts.count("account", f2) == 3
    f3 = {"op": "not", "not": {"op": "in", "field": "country", "values": ["IT", "DE"]}}
    assert names(accounts.list("account", f3)) == ["Delta"]
    f4 = {"op": "and", "all": [f, {"op": "starts_with", "field": "name", "value": "Al"}]}
    assert names(accounts.list("account", f4)) == ["Alpha"]


def test_plain_dict_filter(accounts: Session) -> None:
    assert names(accounts.list("account", {"country": "IT", "city": "Roma"})) == ["Beta"]
    assert names(accounts.list("account", {"city": None})) == ["Delta"]


def test_f_expressions(accounts: Session) -> None:
    assert names(accounts.list("account", F("country") == "IT")) == ["Alpha", "Beta"]
    assert names(accounts.list("account", (F("country") == "IT") & (F("city") != "Roma"))) == ["Alpha"]
    assert names(accounts.list("account", (F("country") == "DE") | F("city").is_null())) == ["Delta", "Gamma"]
    assert names(accounts.list("account", ~F("country").isin(["IT", "FR"]))) == ["Gamma"]
    assert names(accounts.list("account", F("name").contains("ETA"))) == ["Beta"]
    assert names(accounts.list("account", F("name").startswith("Ga"))) == ["Gamma"]
    assert names(accounts.list("account", (F("name") >= "Beta") & (F("name") < "Gamma"))) == ["Beta", "Delta"]
    assert names(accounts.list("account", (F("name") > "Beta") & (F("name") <= "Delta"))) == ["Delta"]
    assert (F("a") == 1).to_dict() == {"op": "compare", "field": "a", "cmp": "eq", "value": 1}
    assert "Filter" in repr(F("a") == 1) and repr(F("a")) == "F('a')"


def test_decimal_and_money_filters(admin: Session) -> None:
    acc = admin.create("account", name="ACME")
    for i, p in enumerate(["0.1", "0.5", "0.9"]):
        admin.create("opportunity", name=f"O{i}", account_id=acc.id, probability=Decimal(p),
                     amount=crm_core.Money(Decimal(100 * (i + 1)), "EUR"))
    assert admin.count("opportunity", F("probability") > Decimal("0.3")) == 2
    assert admin.count("opportunity", F("amount") >= crm_core.Money(200, "EUR")) == 2
    assert admin.count("opportunity", {"account_id": acc.id}) == 3


def test_bad_filters(accounts: Session) -> None:
    with pytest.raises(crm_core.InvalidQuery) as e:
        accounts.list("account", F("no_such_field") == 1)
    assert e.value.field == "no_such_field"
    with pytest.raises(crm_core.InvalidQuery):
        accounts.list("account", after="garbage")
    with pytest.raises(ValueError):
        accounts.list("account", {"op": "bogus"})
    with pytest.raises(TypeError):
        accounts.list("account", 42)
    with pytest.raises(crm_core.ValidationError):
        accounts.list("no_such_kind")


def test_sorting_and_paging(accounts: Session) -> None:
    p1 = accounts.list("account", sort="name", limit=3)
    assert [r["name"] for r in p1.items] == ["Alpha", "Beta", "Delta"] and p1.next is not None
    assert len(p1) == 3 and "Page" in repr(p1)
    p2 = accounts.list("account", sort="name", limit=3, after=p1.next)
    assert [r["name"] for r in p2.items] == ["Gamma"] and p2.next is None
    desc = accounts.list("account", sort="name", descending=True, limit=2)
    assert [r["name"] for r in desc.items] == ["Gamma", "Delta"]
    assert [r["name"] for r in accounts.list("account", sort="-name", limit=1).items] == ["Gamma"]


def test_keyset_iteration_over_many_records(admin: Session) -> None:
    n = 1203
    created = admin.create_many("account", ({"name": f"Acc {i:05}", "city": ("Milano" if i % 3 else "Roma")} for i in range(n)))
    ids = [r.id for r in admin.iterate("account", page_size=250)]
    assert len(ids) == n and len(set(ids)) == n and set(ids) == {r.id for r in created}
    by_name = [r["name"] for r in admin.iterate("account", sort="name", descending=True, page_size=100)]
    assert by_name == sorted(by_name, reverse=True) and len(by_name) == n
    roma = list(admin.iterate("account", F("city") == "Roma", sort="name"))
    assert len(roma) == admin.count("account", {"city": "Roma"}) == 401
    it = admin.iterate("account", page_size=1000)
    assert iter(it) is it
    # Manual paging visits each record once too.
    seen: list[str] = []
    after = None
    while True:
        page = admin.list("account", limit=1000, after=after)
        seen.extend(r.id for r in page.items)
        if page.next is None:
            break
        after = page.next
    assert len(seen) == n == len(set(seen))


def test_export(accounts: Session) -> None:
    rows = accounts.export("account", F("country") == "IT", columns=["name", "city"])
    assert sorted((r["name"], r["city"]) for r in rows) == [("Alpha", "Milano"), ("Beta", "Roma")]
    assert all(set(r) == {"id", "name", "city"} for r in rows)
    assert len(accounts.export("account")) == 4


def test_find_by_phone_in_three_formats(admin: Session) -> None:
    c = admin.create("contact", last_name="Rossi", phone="+39 02 1234 5678")
    assert c["phone"] == "+390212345678"
    admin.create("contact", last_name="Bianchi", phone="+39 06 9999 0000")
    for raw in ["+39 02 1234 5678", "0039-02-12345678", "(02) 1234 5678"]:
        found = admin.find_by_phone("contact", raw)
        assert [r.id for r in found] == [c.id], raw
    assert admin.find_by_phone("contact", "+39 011 000 0000") == []


def test_custom_fields_define_use_filter_sort(admin: Session) -> None:
    d = admin.define_custom_field("account", "sector", "choice", label="Sector", choices=["retail", "bank", "energy"])
    assert d.kind == "custom_field" and d["name"] == "sector"
    admin.define_custom_field("account", "revenue", "decimal", required=False)
    admin.define_custom_field("account", "parent_ref", "reference", reference_to="account")
    a = admin.create("account", name="A", custom={"sector": "retail", "revenue": Decimal("10.5")})
    b = admin.create("account", name="B", **{"custom.sector": "bank", "custom.revenue": Decimal("3")})
    c = admin.create("account", name="C", custom={"sector": "energy", "parent_ref": a.id})
    assert a.custom == {"sector": "retail", "revenue": Decimal("10.5")}
    assert b["custom.sector"] == "bank" and "custom.sector" in b and c.custom["parent_ref"] == a.id
    assert [r.id for r in admin.list("account", F("custom.sector") == "retail").items] == [a.id]
    assert [r["name"] for r in admin.list("account", sort="custom.sector").items] == ["B", "C", "A"]
    assert admin.count("account", F("custom.revenue") > 5) == 1
    with pytest.raises(crm_core.ValidationError) as e:
        admin.create("account", name="D", custom={"sector": "farming"})
    assert e.value.rule == "choice" and e.value.field == "custom.sector"
    with pytest.raises(crm_core.ValidationError):
        admin.define_custom_field("account", "Bad Name", "text")
    b2 = admin.update("account", b.id, b.version, custom={"sector": "retail"})
    assert b2.custom["sector"] == "retail"
    rows = admin.export("account", F("custom.sector") == "retail", columns=["name", "custom.sector"])
    assert sorted(r["name"] for r in rows) == ["A", "B"] and all(r["custom.sector"] == "retail" for r in rows)


def test_a_filter_nested_past_the_limit_is_refused_not_a_crash(admin: Session) -> None:
    f: dict[str, object] = {"country": "IT"}
    for _ in range(100_000):
        f = {"op": "not", "not": f}
    with pytest.raises(crm_core.InvalidQuery):
        admin.count("account", f)
    text = "(" * 50_000 + 'country = "IT"' + ")" * 50_000
    with pytest.raises(crm_core.InvalidQuery):
        admin.parse_filter("account", text)
