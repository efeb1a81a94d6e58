"""The filter language, segments and lifecycles."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

import crm_core
from crm_core import Session


def accounts(admin: Session) -> dict[str, crm_core.Record]:
    rows = [
        {"name": "Alpha", "country": "IT", "city": "Milano"},
        {"name": "Beta", "country": "DE", "city": "Berlin"},
        {"name": "Gamma", "country": "FR", "city": "Paris"},
    ]
    return {r["name"]: r for r in admin.create_many("account", rows)}


def test_parse_filter_gives_a_usable_filter(admin: Session) -> None:
    accs = accounts(admin)
    f = admin.parse_filter("account", 'country in ("IT", "DE") and name != "Beta"')
    assert isinstance(f, dict) and "op" in f
    assert [r.id for r in admin.list("account", f).items] == [accs["Alpha"].id]
    assert admin.count("account", admin.parse_filter("account", 'city = "Paris"', currency="EUR")) == 1
    with pytest.raises(crm_core.InvalidQuery) as e:
        admin.parse_filter("account", "no_such_field = 1")
    assert e.value.field == "no_such_field"
    with pytest.raises(crm_core.CrmError):
        admin.parse_filter("account", "country in (")
    with pytest.raises(crm_core.ValidationError):
        admin.parse_filter("account", 'country = "IT"', currency="XXXX")


def test_dynamic_and_static_segments(admin: Session) -> None:
    accs = accounts(admin)
    seg = admin.create("segment", name="DACH and Italy", entity="account", definition='country in ("IT", "DE")')
    assert admin.segment_count(seg.id) == 2
    page = admin.segment_members(seg.id, sort="name")
    assert [r["name"] for r in page.items] == ["Alpha", "Beta"] and page.next is None
    narrowed = admin.segment_members(seg.id, {"country": "DE"})
    assert [r.id for r in narrowed.items] == [accs["Beta"].id]
    first = admin.segment_members(seg.id, sort="name", limit=1)
    assert len(first) == 1 and first.next is not None
    rest = admin.segment_members(seg.id, sort="name", limit=1, after=first.next)
    assert [r["name"] for r in rest.items] == ["Beta"]

    diff = admin.refresh_segment(seg.id)
    assert sorted(diff.entered) == sorted([accs["Alpha"].id, accs["Beta"].id])
    assert diff.left == [] and diff.member_count == 2 and "SegmentDiff" in repr(diff)
    gamma = accs["Gamma"]
    admin.update("account", gamma.id, gamma.version, country="IT")
    beta = accs["Beta"]
    admin.update("account", beta.id, beta.version, country="FR")
    diff = admin.refresh_segment(seg.id)
    assert diff.entered == [gamma.id] and diff.left == [beta.id] and diff.member_count == 2
    refreshed = admin.get("segment", seg.id)
    assert refreshed["member_count"] == 2 and refreshed["last_refreshed_at"] is not None

    static = admin.create(
        "segment", name="hand picked", entity="account", kind="static", member_ids=[accs["Alpha"].id]
    )
    assert admin.segment_count(static.id) == 1
    with pytest.raises(crm_core.NotFound):
        admin.segment_count(accs["Alpha"].id)


def test_a_segment_definition_is_checked_when_saved(admin: Session) -> None:
    with pytest.raises(crm_core.InvalidQuery) as e:
        admin.create("segment", name="bad", entity="account", definition='colour = "red"')
    assert e.value.field == "definition.colour"
    with pytest.raises(crm_core.ValidationError) as v:
        admin.create("segment", name="empty", entity="account")
    assert v.value.field == "definition"
    assert admin.count("segment") == 0


def test_lifecycles_without_orders_are_prospects(admin: Session) -> None:
    accs = accounts(admin)
    got = dict(admin.lifecycles())
    assert got == {a.id: "prospect" for a in accs.values()}
    only_it = admin.lifecycles({"country": "IT"}, new_days=10, active_days=20, dormant_days=30)
    assert only_it == [(accs["Alpha"].id, "prospect")]


def test_rfm_scores_accounts_with_orders(admin: Session) -> None:
    accs = accounts(admin)
    now = dt.datetime.now(dt.timezone.utc)

    def order(acc: crm_core.Record, amount: str, days_ago: int) -> None:
        line = {"description": "Goods", "quantity": 1, "unit_price": Decimal(amount), "tax_rate": 0}
        admin.create(
            "order", account_id=acc.id, currency="EUR", lines=[line], ordered_at=now - dt.timedelta(days=days_ago)
        )

    order(accs["Alpha"], "1000", 5)
    order(accs["Alpha"], "500", 20)
    order(accs["Beta"], "100", 200)
    rows = {r.account_id: r for r in admin.rfm()}
    assert set(rows) == {accs["Alpha"].id, accs["Beta"].id}, "accounts without orders are left out"
    a, b = rows[accs["Alpha"].id], rows[accs["Beta"].id]
    assert a.frequency == 2 and a.monetary == crm_core.Money("1500", "EUR") and a.recency_days == 5
    assert a.r > b.r and a.f > b.f and a.m > b.m and a.lifecycle == "new" and b.lifecycle == "dormant"
    assert isinstance(a.segment, str) and "RfmRow" in repr(a)
    recent = admin.rfm(window_days=30)
    assert [r.account_id for r in recent] == [accs["Alpha"].id]
    rules = [{"segment": "everyone", "r": [1, 5], "f": [1, 5], "m": [1, 5]}]
    assert {r.segment for r in admin.rfm(rules=rules)} == {"everyone"}
    assert [r.account_id for r in admin.rfm(accounts={"country": "DE"})] == [accs["Beta"].id]
    with pytest.raises(ValueError):
        admin.rfm(rules=[{"segment": 1}])


def test_profit_by_field_rfm_and_lifecycle(admin: Session) -> None:
    accs = accounts(admin)
    now = dt.datetime.now(dt.timezone.utc)
    widget = admin.create("product", name="Widget", sku="W-1", list_price=crm_core.Money("100", "EUR"))

    def order(acc: crm_core.Record, qty: int, cost: str | None) -> None:
        line: dict[str, object] = {
            "product_id": widget.id,
            "description": "Widget",
            "quantity": qty,
            "unit_price": Decimal("100"),
            "tax_rate": 22,
        }
        if cost is not None:
            line["unit_cost"] = Decimal(cost)
        admin.create("order", account_id=acc.id, currency="EUR", lines=[line], ordered_at=now - dt.timedelta(days=3))

    order(accs["Alpha"], 3, "60")
    order(accs["Beta"], 1, None)
    start, end = now - dt.timedelta(days=30), now + dt.timedelta(seconds=1)
    rows = admin.profit(start, end, by="field", field="country")
    by_seg = {r.segment: r for r in rows}
    it = by_seg["IT"]
    assert it.product_id == widget.id and it.product == "Widget" and it.quantity == Decimal("3")
    assert it.revenue == crm_core.Money("300", "EUR") and it.cost == crm_core.Money("180", "EUR")
    assert it.margin == crm_core.Money("120", "EUR") and it.lines_without_cost == 0
    assert by_seg["DE"].lines_without_cost == 1 and rows[0].segment == "IT", "largest margin first"
    assert "ProfitRow" in repr(it)
    assert sum(r.revenue.amount for r in admin.profit(start, end)) == Decimal("400")
    assert {r.segment for r in admin.profit(start, end, by="lifecycle")} == {"new"}
    assert admin.profit(now - dt.timedelta(days=90), now - dt.timedelta(days=60), by="lifecycle") == []
    with pytest.raises(ValueError):
        admin.profit(start, end, by="field")


def test_forecast_kpis_and_cross_sell(admin: Session) -> None:
    accs = accounts(admin)
    now = dt.datetime.now(dt.timezone.utc)
    admin.create(
        "opportunity",
        name="Deal",
        account_id=accs["Alpha"].id,
        amount=crm_core.Money("1000", "EUR"),
        probability=Decimal("40"),
        expected_close=dt.date(2030, 5, 17),
    )
    (row,) = admin.forecast()
    assert row.month == "2030-05" and row.forecast_category == "pipeline" and row.count == 1
    assert row.amount == crm_core.Money("1000", "EUR") and row.weighted.amount == Decimal("400")
    assert "ForecastRow" in repr(row)

    p1 = admin.create("product", name="Pump", sku="P1", list_price=crm_core.Money("10", "EUR"))
    p2 = admin.create("product", name="Valve", sku="P2", list_price=crm_core.Money("10", "EUR"))

    def order(acc: crm_core.Record, *products: crm_core.Record) -> None:
        lines = [
            {"product_id": p.id, "description": p["name"], "quantity": 1, "unit_price": Decimal("10"), "tax_rate": 0}
            for p in products
        ]
        admin.create("order", account_id=acc.id, currency="EUR", lines=lines, ordered_at=now - dt.timedelta(days=1))

    order(accs["Alpha"], p1, p2)
    order(accs["Beta"], p1, p2)
    order(accs["Gamma"], p1)
    (hint,) = admin.cross_sell(accs["Gamma"].id)
    assert hint.product_id == p2.id and hint.because_of == p1.id
    assert 0 < hint.support <= 1 and 0 < hint.confidence <= 1 and hint.lift > 0 and "CrossSell" in repr(hint)
    assert admin.cross_sell(accs["Alpha"].id, limit=3) == []

    admin.create("activity", activity_type="call", subject="Called")
    kpis = {k.user_id: k for k in admin.kpis(now - dt.timedelta(days=7), now + dt.timedelta(days=1))}
    mine = kpis[admin.user_id]
    assert mine.activities == 1 and mine.calls == 1 and mine.orders == 3
    assert mine.order_revenue == crm_core.Money("50", "EUR") and mine.opportunities_won == 0
    assert mine.open_cases == 0 and "Kpi user" in repr(mine)
    assert mine.team_id is None and mine.users == 1 and mine.win_rate is None
    (calls,) = mine.activity_breakdown
    assert (calls.activity_type, calls.direction, calls.outcome, calls.count) == ("call", None, None, 1)

    # Per team: the members' figures added up.
    team = admin.create("team", name="Inside sales")
    me = admin.get("user", admin.user_id)
    admin.update("user", me.id, me.version, team_ids=[team.id])
    won = admin.create(
        "opportunity", name="Won", account_id=accs["Beta"].id, amount=crm_core.Money("300", "EUR"),
        probability=Decimal("100"), closed_at=now,
    )
    admin.create("opportunity", name="Lost", account_id=accs["Beta"].id, probability=Decimal("0"), closed_at=now)
    (t,) = admin.team_kpis(now - dt.timedelta(days=7), now + dt.timedelta(days=1))
    assert t.team_id == team.id and t.user_id is None and t.users == 1 and "Kpi team" in repr(t)
    assert (t.activities, t.orders, t.opportunities_won, t.opportunities_lost) == (1, 3, 1, 1)
    assert t.win_rate == 0.5 and t.revenue_closed == won["amount"] == t.average_deal_size
    assert admin.team_kpis(now - dt.timedelta(days=7), now + dt.timedelta(days=1)).to_dicts()[0]["users"] == 1


class Erp:
    def facts(self, account_id: str) -> dict[str, object]:
        return {
            "balance": crm_core.Money("120.50", "EUR"),
            "credit_terms": "30 days",
            "overdue_invoices": [{"number": "F-1", "amount": (Decimal("99"), "EUR"), "due": dt.date(2026, 1, 31)}],
        }


class BrokenErp:
    def facts(self, account_id: str) -> dict[str, object]:
        raise LookupError("erp offline")


def test_screen_pop(admin: Session) -> None:
    acc = admin.create("account", name="Caller", phone="02 1234 5678", country="IT")
    admin.create("contact", last_name="Rossi", account_id=acc.id)
    admin.create("case", subject="Broken", account_id=acc.id)
    pop = admin.screen_pop("+39 02 1234 5678")
    assert [c.id for c in pop.candidates] == [acc.id] and pop.account is not None and pop.account.id == acc.id
    assert pop.contact is None and [c["last_name"] for c in pop.contacts] == ["Rossi"]
    assert [c["subject"] for c in pop.open_cases] == ["Broken"]
    assert pop.recent_orders == [] and pop.quotes == [] and pop.open_opportunities == []
    assert isinstance(pop.last_activities, list) and isinstance(pop.cross_sell, list)
    assert pop.lifecycle == "prospect" and pop.erp is None and "ScreenPop" in repr(pop)
    with_erp = admin.screen_pop("02 1234 5678", erp=Erp())
    assert with_erp.erp is not None
    assert with_erp.erp["balance"] == crm_core.Money("120.50", "EUR") and with_erp.erp["credit_terms"] == "30 days"
    (inv,) = with_erp.erp["overdue_invoices"]
    assert inv == {"number": "F-1", "amount": crm_core.Money("99", "EUR"), "due": dt.date(2026, 1, 31)}
    with pytest.raises(LookupError, match="erp offline"):
        admin.screen_pop("02 1234 5678", erp=BrokenErp())
    with pytest.raises(TypeError):
        admin.screen_pop("02 1234 5678", erp=object())  # type: ignore[arg-type]
    assert admin.screen_pop("06 999 999").candidates == []


def test_funnel_and_customer_values(admin: Session) -> None:
    stages = [
        {"name": "open", "probability": 20},
        {"name": "offer", "probability": 60},
        {"name": "won", "probability": 100, "outcome": "won"},
        {"name": "lost", "probability": 0, "outcome": "lost"},
    ]
    admin.create("pipeline", name="py", stages=stages)
    acc = accounts(admin)["Alpha"]
    for i, path in enumerate([["offer", "won"], ["lost"], []]):
        o = admin.create("opportunity", name=f"O{i}", account_id=acc.id, pipeline="py")
        for stage in path:
            o = admin.move_opportunity(o.id, o.version, stage, lost_reason="price")
    f = admin.funnel("py")
    assert [(s.stage, s.reached, s.current) for s in f.stages] == [("open", 3, 1), ("offer", 1, 0), ("won", 1, 1)]
    assert f.stages[0].conversion_to_next == pytest.approx(1 / 3) and f.stages[-1].conversion_to_next is None
    assert (f.opportunities, f.won, f.lost, f.win_rate) == (3, 1, 1, 0.5)
    assert f.average_days_to_win is not None and f.average_days_to_win >= 0 and "Funnel py" in repr(f)
    with pytest.raises(crm_core.ValidationError):
        admin.funnel("nope")

    now = dt.datetime.now(dt.timezone.utc)
    line = {"description": "x", "quantity": 1, "unit_price": Decimal("40"), "tax_rate": 0}
    for days in (100, 10):
        admin.create("order", account_id=acc.id, currency="EUR", lines=[line], ordered_at=now - dt.timedelta(days=days))
    admin.create("activity", activity_type="survey", survey_type="nps", score=10, account_id=acc.id)
    with pytest.raises(crm_core.ValidationError) as e:
        admin.create("activity", activity_type="survey", survey_type="csat", score=9, account_id=acc.id)
    assert e.value.field == "score"
    rows = {v.account_id: v for v in admin.customer_values()}
    v = rows[acc.id]
    assert v.orders == 2 and v.lifetime_value == crm_core.Money("80", "EUR")
    assert v.average_order_value == crm_core.Money("40", "EUR") and v.churn_risk == 0.0
    assert v.predicted_value is not None and v.predicted_value.amount > 0
    assert v.nps == 100.0 and v.csat is None and v.survey_responses == 1
    (d,) = admin.customer_values({"name": "Alpha"}).to_dicts()
    assert d["lifetime_value"] == Decimal("80") and d["lifetime_value_currency"] == "EUR"
