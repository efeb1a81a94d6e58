"""The results of `rfm`, `profit`, `customer_values` and `lifecycles`: `Rows` over the library's
result, whose columns (`to_columns`, `to_dicts`, DataFrames) are read from it directly. They are
plain lists to every reader (C code included). Everything must equal what the row objects give,
column by column."""

from __future__ import annotations

import copy
import datetime as dt
import json
import pickle
import threading
from decimal import Decimal
from typing import Any, Callable, Optional

import pytest

from crm_core import CustomerValue, Money, ProfitRow, RfmRow, Rows, Session

NOW = dt.datetime.now(dt.timezone.utc)


def book(admin: Session) -> dict[str, str]:
    """Seven accounts in two countries with orders at different ages, counts and values (so r, f
    and m differ), decimals of several scales, a free-text line (no product), lines without a
    cost, survey answers, and one account without orders (None values)."""
    widget = admin.create("product", name="Widget", sku="W-1", list_price=Money("100", "EUR"))
    gadget = admin.create("product", name="Gadget", sku="G-1", list_price=Money("7.5", "EUR"))
    ids: dict[str, str] = {}
    plans: list[tuple[str, str, list[tuple[int, int, str, Optional[str]]]]] = [
        # name, country, [(days ago, quantity, unit price, unit cost)]
        ("Alpha", "IT", [(3, 1, "10.05", "3.125")]),
        ("Beta", "DE", [(40, 2, "250", None), (200, 1, "1.5", "1")]),
        ("Gamma", "IT", [(90, 3, "99.999", "50"), (95, 1, "0.01", None), (400, 4, "12", "6.5")]),
        ("Delta", "FR", [(10, 5, "1000", "700"), (11, 1, "3", "1"), (12, 2, "4", "2"), (13, 1, "5", "2")]),
        ("Epsilon", "ES", [(700, 1, "42.42", "50"), (710, 3, "0.5", "0.125")]),
        ("Zeta", "IT", [(20, 10, "2.5", "1.25"), (25, 1, "2.5", None)]),
        ("Eta", "IT", []),
    ]
    for name, country, orders in plans:
        acc = admin.create("account", name=name, country=country)
        ids[name] = acc.id
        for i, (days, qty, price, cost) in enumerate(orders):
            line: dict[str, Any] = {
                "product_id": (widget if i % 2 == 0 else gadget).id,
                "description": "Widget" if i % 2 == 0 else "Gadget",
                "quantity": qty,
                "unit_price": Decimal(price),
                "tax_rate": 22,
            }
            if cost is not None:
                line["unit_cost"] = Decimal(cost)
            lines = [line]
            if name == "Gamma" and i == 0:
                lines.append({"description": "Set-up", "quantity": 1, "unit_price": Decimal("19.90"), "tax_rate": 22})
            admin.create(
                "order", account_id=acc.id, currency="EUR", lines=lines, ordered_at=NOW - dt.timedelta(days=days)
            )
    for account, kind, score in (("Alpha", "csat", 5), ("Alpha", "nps", 3), ("Beta", "nps", 10), ("Gamma", "csat", 2)):
        admin.create("activity", activity_type="survey", survey_type=kind, score=score, account_id=ids[account])
    return ids


def window() -> tuple[dt.datetime, dt.datetime]:
    return NOW - dt.timedelta(days=1000), NOW + dt.timedelta(days=1)


# Each result, its item type and the attributes of the items (the columns before money is split).
RESULTS: dict[str, tuple[Callable[[Session], Rows[Any]], type]] = {
    "rfm": (lambda s: s.rfm(), RfmRow),
    "profit_rfm": (lambda s: s.profit(*window()), ProfitRow),
    "profit_country": (lambda s: s.profit(*window(), by="field", field="country"), ProfitRow),
    "customer_values": (lambda s: s.customer_values(), CustomerValue),
    "lifecycles": (lambda s: s.lifecycles(), tuple),
}
ATTRIBUTES: dict[type, tuple[str, ...]] = {
    RfmRow: ("account_id", "recency_days", "frequency", "monetary", "r", "f", "m", "segment", "lifecycle"),
    ProfitRow: ("segment", "product_id", "product", "quantity", "revenue", "cost", "margin", "lines_without_cost"),
    CustomerValue: (
        "account_id",
        "orders",
        "lifetime_value",
        "average_order_value",
        "predicted_value",
        "churn_risk",
        "csat",
        "nps",
        "survey_responses",
    ),
}


MONEY = {"monetary", "revenue", "cost", "margin", "lifetime_value", "average_order_value", "predicted_value"}


def by_hand(item: Any, of: type, split_money: bool) -> dict[str, Any]:
    """One item's columns read from the row object (or tuple) itself."""
    if of is tuple:
        return {"account_id": item[0], "lifecycle": item[1]}
    out: dict[str, Any] = {}
    for name in ATTRIBUTES[of]:
        value = getattr(item, name)
        if split_money and (isinstance(value, Money) or (value is None and name in MONEY)):
            out[name] = value.amount if value is not None else None
            out[f"{name}_currency"] = value.currency if value is not None else None
        else:
            out[name] = value
    return out


def same(a: Any, b: Any) -> bool:
    """Equal and of the same type (`Decimal("1.0")` is not `1.0`, nor `Decimal("1.00")`)."""
    if isinstance(a, Decimal) or isinstance(b, Decimal):
        return type(a) is type(b) and a.as_tuple() == b.as_tuple()
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("result", sorted(RESULTS))
@pytest.mark.parametrize("split_money", [True, False])
def test_columns_equal_the_row_objects(admin: Session, result: str, split_money: bool) -> None:
    book(admin)
    call, of = RESULTS[result]
    rows = call(admin)
    assert len(rows) >= 4
    cols = rows.to_columns(split_money=split_money)
    expected = [by_hand(item, of, split_money) for item in call(admin)]
    assert list(cols) == list(expected[0]) == rows.columns(split_money=split_money)
    for name, values in cols.items():
        assert len(values) == len(expected)
        for i, (got, want) in enumerate(zip(values, [e[name] for e in expected])):
            assert same(got, want), f"{result}.{name}[{i}]: {got!r} != {want!r}"
    # The per-row path (a Rows of the same objects, without the library's result) agrees.
    by_rows = Rows(list(call(admin)), of=of, columns=["account_id", "lifecycle"] if of is tuple else None)
    assert rows.to_dicts(split_money=split_money) == by_rows.to_dicts(split_money=split_money)
    assert rows.columns(split_money=split_money) == by_rows.columns(split_money=split_money)
    # Both paths built the dicts from different code: compare types too.
    for d, e in zip(rows.to_dicts(split_money=split_money), by_rows.to_dicts(split_money=split_money)):
        assert all(same(d[k], e[k]) for k in d)


def test_the_data_set_exercises_every_kind_of_value(admin: Session) -> None:
    ids = book(admin)
    rfm = {r["account_id"]: r for r in admin.rfm().to_dicts()}
    assert ids["Eta"] not in rfm and len(rfm) == 6
    delta = rfm[ids["Delta"]]
    assert delta["monetary"] == Decimal("5016") and delta["frequency"] == 4 and delta["monetary_currency"] == "EUR"
    assert any(len({r["r"], r["f"], r["m"]}) == 3 for r in rfm.values())
    assert len({r["segment"] for r in rfm.values()}) >= 3 and len({r["lifecycle"] for r in rfm.values()}) >= 3
    values = {v["account_id"]: v for v in admin.customer_values().to_dicts()}
    eta = values[ids["Eta"]]
    assert eta["lifetime_value"] is None and eta["lifetime_value_currency"] is None and eta["churn_risk"] is None
    assert values[ids["Alpha"]]["csat"] == 100.0 and values[ids["Alpha"]]["nps"] == -100.0
    assert values[ids["Beta"]]["nps"] == 100.0 and values[ids["Beta"]]["csat"] is None
    profit = admin.profit(*window(), by="field", field="country").to_dicts()
    assert any(p["product_id"] is None and p["product"] == "Set-up" for p in profit)
    assert any(p["lines_without_cost"] > 0 for p in profit)
    assert {type(p["quantity"]) for p in profit} == {Decimal}
    assert any(p["margin"] < 0 for p in profit) and any(p["margin"].as_tuple().exponent < -2 for p in profit)
    assert dict(admin.lifecycles())[ids["Eta"]] == "prospect"


def test_results_behave_as_lists(admin: Session) -> None:
    book(admin)
    rows = admin.rfm()
    n = len(rows)
    assert n == 6 and bool(rows) and list.__len__(rows) == n  # the items are there, as stored
    assert rows.to_columns()["account_id"] == [r.account_id for r in rows]
    first = rows[0]
    assert type(rows) is Rows and isinstance(first, RfmRow)
    assert rows[0] is first and rows[-1] is rows[n - 1] and rows.index(first) == 0 and rows.count(first) == 1
    assert first in rows and [r.account_id for r in rows] == rows.to_columns()["account_id"]

    fresh = admin.rfm()
    assert fresh[1:3] == list(fresh)[1:3] and type(fresh[1:3]) is list and len(fresh[::2]) == 3
    for use in (
        lambda r: list(r),
        lambda r: list(reversed(r))[::-1],
        lambda r: [x for x in r],
        lambda r: r[:],
        lambda r: r.copy(),
        lambda r: r + [],
        lambda r: [] + r,
        lambda r: (r * 2)[: len(r)],
        lambda r: sorted(r, key=lambda x: x.account_id),
        lambda r: copy.copy(r),
    ):
        r = admin.rfm()
        got = use(r)
        assert [x.account_id for x in got] == sorted(x.account_id for x in r)  # the rfm order is by id
    assert repr(admin.rfm()).startswith("Rows([<RfmRow ")
    assert admin.rfm() != [] and [] != admin.rfm() and not (admin.rfm() == [])
    a = admin.rfm()
    assert a == a and a == list(a)
    empty = admin.rfm(accounts={"country": "XX"})
    assert empty == [] and len(empty) == 0 and not empty and list(empty) == []
    assert empty.columns()[:4] == ["account_id", "recency_days", "frequency", "monetary"]


def test_code_reading_the_list_directly_sees_every_item(admin: Session) -> None:
    book(admin)
    x, y = admin.rfm(), admin.rfm()
    assert x != y  # RfmRow compares by identity, as before
    assert list.__len__(x) == list.__len__(y) == 6
    # C code reading the list's storage (the json encoder, str.join) sees the items.
    assert json.dumps(admin.rfm(), default=lambda r: r.account_id).count('"') == 12
    assert ",".join(r.segment or "-" for r in admin.rfm()).count(",") == 5
    total = admin.rfm() + admin.rfm()
    assert len(total) == 12 and all(isinstance(t, RfmRow) for t in total)
    assert len([1] + admin.profit(*window())) == 1 + len(admin.profit(*window()))
    assert json.dumps(admin.lifecycles())[:3] == '[["'


def test_changing_the_list_drops_the_table(admin: Session) -> None:
    book(admin)
    rows = admin.rfm()
    rows.sort(key=lambda r: r.monetary.amount)
    assert rows.to_columns()["account_id"] == [r.account_id for r in rows]
    assert rows.to_columns()["monetary"] == sorted(rows.to_columns()["monetary"])
    other = admin.rfm()
    extra = other[0]
    del other[0]
    other.append(extra)
    assert other.to_columns()["account_id"][-1] == extra.account_id and len(other.to_dicts()) == 6
    life = admin.lifecycles()
    life.pop()
    assert len(life.to_columns()["account_id"]) == len(life) == 6
    grown = admin.profit(*window())
    grown += [grown[0]]
    assert len(grown.to_dicts()) == len(grown)
    cleared = admin.customer_values()
    cleared.clear()
    assert cleared.to_dicts() == [] and cleared == []


def test_concurrent_readers_see_the_same_items(admin: Session) -> None:
    book(admin)
    for _ in range(20):
        rows = admin.rfm()
        start = threading.Barrier(4)
        seen: list[int] = []

        def use() -> None:
            start.wait()
            seen.append(sum(1 for _ in rows) + len(rows.to_columns()["account_id"]))

        threads = [threading.Thread(target=use) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert seen == [12, 12, 12, 12] and list.__len__(rows) == 6


def test_copies_and_pickles_are_plain_rows(admin: Session) -> None:
    book(admin)
    life = admin.lifecycles()
    twin = copy.deepcopy(life)
    assert twin == life and isinstance(twin, Rows) and twin.columns() == ["account_id", "lifecycle"]
    assert twin.to_dicts() == life.to_dicts()
    assert pickle.loads(pickle.dumps(life)).to_dicts() == life.to_dicts()


@pytest.mark.parametrize("result", sorted(RESULTS))
@pytest.mark.parametrize("split_money", [True, False])
def test_pandas_frames_equal_the_per_row_frames(admin: Session, result: str, split_money: bool) -> None:
    pd = pytest.importorskip("pandas")
    book(admin)
    call, of = RESULTS[result]
    names = ["account_id", "lifecycle"] if of is tuple else None
    got = call(admin).to_pandas(split_money=split_money)
    want = Rows(list(call(admin)), of=of, columns=names).to_pandas(split_money=split_money)
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert len(got) >= 4 and list(got.columns) == call(admin).columns(split_money=split_money)
    if split_money and of is not tuple:
        money = next(c for c in got.columns if c in MONEY)
        assert got[money].dtype == object and all(isinstance(v, Decimal) or v is None for v in got[money])


@pytest.mark.parametrize("result", sorted(RESULTS))
@pytest.mark.parametrize("split_money", [True, False])
def test_polars_frames_equal_the_per_row_frames(admin: Session, result: str, split_money: bool) -> None:
    pl = pytest.importorskip("polars")
    from polars.testing import assert_frame_equal  # type: ignore[import-not-found, unused-ignore]

    book(admin)
    call, of = RESULTS[result]
    names = ["account_id", "lifecycle"] if of is tuple else None
    got = call(admin).to_polars(split_money=split_money)
    want = Rows(list(call(admin)), of=of, columns=names).to_polars(split_money=split_money)
    assert got.schema == want.schema
    if split_money:
        assert_frame_equal(got, want)
    else:  # `Money` objects: an object column
        assert got.columns == want.columns and got.to_dicts() == want.to_dicts()
    if split_money and of is not tuple:
        assert any(isinstance(t, pl.Decimal) for t in got.schema.values())


def test_empty_results_give_empty_frames_with_their_columns(admin: Session) -> None:
    pd = pytest.importorskip("pandas")
    pl = pytest.importorskip("polars")
    book(admin)
    for rows, of in (
        (admin.rfm(accounts={"country": "XX"}), RfmRow),
        (admin.customer_values({"country": "XX"}), CustomerValue),
        (admin.profit(NOW + dt.timedelta(days=5), NOW + dt.timedelta(days=6)), ProfitRow),
    ):
        assert rows.to_columns() == {c: [] for c in Rows([], of=of).columns()}
        pd.testing.assert_frame_equal(rows.to_pandas(), Rows([], of=of).to_pandas())
        assert rows.to_polars().columns == Rows([], of=of).to_polars().columns
        assert isinstance(rows.to_polars(), pl.DataFrame)


def test_to_columns_of_any_rows_follows_to_dicts(admin: Session) -> None:
    book(admin)
    accounts = admin.list("account", sort="name").items
    cols = Rows(accounts).to_columns()
    dicts = Rows(accounts).to_dicts()
    assert list(cols) == Rows(accounts).columns() and cols["name"] == [d["name"] for d in dicts]
    stamps = cols["created_at"]
    assert all(isinstance(t, dt.datetime) and t.utcoffset() == dt.timedelta(0) for t in stamps)
    assert Rows([("a", 1)], columns=["k", "v"]).to_columns() == {"k": ["a"], "v": [1]}
    assert Rows([{"a": 1}, {"b": Decimal("2.50")}]).to_columns() == {"a": [1, None], "b": [None, Decimal("2.50")]}


def test_building_rows_leaves_the_collector_as_it_was(admin: Session) -> None:
    import gc

    book(admin)
    assert gc.isenabled()
    assert len(admin.rfm()) > 0
    assert gc.isenabled()
    gc.disable()
    try:
        assert len(admin.rfm()) > 0
        assert not gc.isenabled()
    finally:
        gc.enable()
