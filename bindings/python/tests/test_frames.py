"""Result lists (`Rows`): plain dicts, pandas and polars DataFrames, exact decimals."""

from __future__ import annotations

import datetime as dt
import sys
from decimal import Decimal
from typing import Any

import pytest

import crm_core
from crm_core import F, Money, Rows, Session


def sales(admin: Session) -> dict[str, crm_core.Record]:
    now = dt.datetime.now(dt.timezone.utc)
    it = admin.create("account", name="Alpha", country="IT")
    de = admin.create("account", name="Beta", country="DE")
    widget = admin.create("product", name="Widget", sku="W-1", list_price=Money("100", "EUR"))
    for acc, qty, cost in ((it, 3, "60.125"), (de, 1, "70")):
        line = {
            "product_id": widget.id,
            "description": "Widget",
            "quantity": qty,
            "unit_price": Decimal("100.10"),
            "unit_cost": Decimal(cost),
            "tax_rate": 22,
        }
        admin.create("order", account_id=acc.id, currency="EUR", lines=[line], ordered_at=now - dt.timedelta(days=3))
    admin.create(
        "opportunity",
        name="Deal",
        account_id=it.id,
        amount=Money("1000", "EUR"),
        probability=Decimal("40"),
        expected_close=dt.date(2030, 5, 17),
    )
    return {"it": it, "de": de, "widget": widget}


def window() -> tuple[dt.datetime, dt.datetime]:
    now = dt.datetime.now(dt.timezone.utc)
    return now - dt.timedelta(days=30), now + dt.timedelta(seconds=1)


def test_analytics_return_rows_that_are_lists(admin: Session) -> None:
    sales(admin)
    start, end = window()
    for result in (
        admin.rfm(),
        admin.profit(start, end),
        admin.forecast(),
        admin.kpis(start, end),
        admin.lifecycles(),
        admin.export("account"),
    ):
        assert isinstance(result, Rows) and isinstance(result, list) and len(result) > 0
    assert admin.profit(start - dt.timedelta(days=90), start - dt.timedelta(days=60)) == []
    assert repr(Rows([1])) == "Rows([1])"


def test_to_dicts_splits_money_and_keeps_decimals(admin: Session) -> None:
    sales(admin)
    start, end = window()
    rows = admin.profit(start, end, by="field", field="country").to_dicts()
    it = next(r for r in rows if r["segment"] == "IT")
    assert list(it) == [
        "segment",
        "product_id",
        "product",
        "quantity",
        "revenue",
        "revenue_currency",
        "cost",
        "cost_currency",
        "margin",
        "margin_currency",
        "lines_without_cost",
    ]
    assert it["revenue"] == Decimal("300.30") and isinstance(it["revenue"], Decimal)
    assert it["cost"] == Decimal("180.375") and it["cost_currency"] == "EUR" and it["quantity"] == Decimal("3")
    whole = admin.profit(start, end, by="field", field="country").to_dicts(split_money=False)
    assert whole[0]["revenue"] == Money(whole[0]["revenue"].amount, "EUR")

    (rfm,) = [r for r in admin.rfm().to_dicts() if r["monetary"] == Decimal("300.30")]
    assert rfm["monetary_currency"] == "EUR" and isinstance(rfm["r"], int)
    (fc,) = admin.forecast().to_dicts()
    assert fc["weighted"] == Decimal("400") and fc["month"] == "2030-05"
    (kpi,) = admin.kpis(start, end).to_dicts()
    assert kpi["orders"] == 2 and kpi["order_revenue_currency"] == "EUR"

    life = admin.lifecycles().to_dicts()
    assert {d["lifecycle"] for d in life} == {"new"} and set(life[0]) == {"account_id", "lifecycle"}
    exported = admin.export("account", F("country") == "IT", columns=["name", "country"])
    assert exported.to_dicts() == [{"id": exported[0]["id"], "name": "Alpha", "country": "IT"}]
    assert exported.columns() == ["id", "name", "country"]


def test_empty_rows_know_their_columns(admin: Session) -> None:
    start, end = window()
    empty = admin.profit(start, end)
    assert empty.to_dicts() == [] and "margin_currency" in empty.columns()
    assert admin.lifecycles().columns() == ["account_id", "lifecycle"]
    assert Rows([]).columns() == []


def test_records_and_tuples_wrap_by_hand(admin: Session) -> None:
    accs = sales(admin)
    page = admin.list("account", sort="name")
    (first, _) = Rows(page.items).to_dicts()
    assert first["id"] == accs["it"].id and first["name"] == "Alpha" and first["custom"] == {}
    assert Rows([("a", 1)], columns=["k", "v"]).to_dicts() == [{"k": "a", "v": 1}]
    assert Rows([("a", 1)]).to_dicts() == [{"c0": "a", "c1": 1}]
    with pytest.raises(TypeError, match="cannot tabulate"):
        Rows([object()]).to_dicts()


def test_to_pandas_keeps_decimals_exact(admin: Session) -> None:
    pd = pytest.importorskip("pandas")
    sales(admin)
    start, end = window()
    df = admin.profit(start, end, by="field", field="country").to_pandas()
    assert list(df.columns)[:5] == ["segment", "product_id", "product", "quantity", "revenue"]
    assert df["revenue"].dtype == object and df["revenue"].sum() == Decimal("400.40")
    assert df.set_index("segment").loc["IT", "cost"] == Decimal("180.375")
    accounts = admin.list("account").items
    recs = Rows(accounts).to_pandas()
    assert str(recs["created_at"].dtype).startswith("datetime64") and len(recs) == 2
    empty = admin.rfm(window_days=1, accounts={"country": "FR"}).to_pandas()
    assert isinstance(empty, pd.DataFrame) and len(empty) == 0 and "monetary_currency" in empty.columns


def test_to_polars_uses_exact_decimal_dtype(admin: Session) -> None:
    pl = pytest.importorskip("polars")
    sales(admin)
    start, end = window()
    df = admin.profit(start, end, by="field", field="country").to_polars()
    assert isinstance(df.schema["cost"], pl.Decimal) and df.schema["segment"] == pl.String
    assert df["cost"].sum() == Decimal("250.375") and df["revenue"].sum() == Decimal("400.40")
    life = admin.lifecycles().to_polars()
    assert life.columns == ["account_id", "lifecycle"] and life.height == 2
    assert admin.forecast().to_polars()["weighted"].to_list() == [Decimal("400")]
    assert admin.profit(start - dt.timedelta(days=90), start - dt.timedelta(days=60)).to_polars().width == 11


def test_missing_dataframe_library_says_what_to_install(
    admin: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    sales(admin)
    blocked: dict[str, Any] = {"pandas": None, "polars": None}
    for name, value in blocked.items():
        monkeypatch.setitem(sys.modules, name, value)
    rows = admin.rfm()
    with pytest.raises(ImportError, match=r"needs pandas.*pip install pandas"):
        rows.to_pandas()
    with pytest.raises(ImportError, match=r"needs polars.*pip install polars"):
        rows.to_polars()
