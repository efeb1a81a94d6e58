"""The values that cross the boundary: floats refused for money and decimals, integers checked
against their range, page sizes of at least 1, wrong-typed kinds, and Rust panics as `InternalError`."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

import crm_core
from crm_core import F, Money, Session, _crm_core
from crm_core import Crm

from conftest import Org

UTC = dt.timezone.utc
# The hidden test hook (not in the public stub): "now", "next" or "never".
panic_for_tests: Callable[..., None] = getattr(_crm_core, "_panic_for_tests")


def line(**over: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"description": "Widget", "quantity": 2, "unit_price": Decimal("9.99"), "tax_rate": 22}
    d.update(over)
    return d


# ------------------------------------------------------------------ 1. money and decimals: no floats


def test_money_refuses_a_float_amount() -> None:
    with pytest.raises(TypeError, match="`amount` must not be a float"):
        Money(12.5, "EUR")  # type: ignore[arg-type]
    assert Money(Decimal("12.5"), "EUR").amount == Decimal("12.5")
    assert Money(12, "EUR").amount == Decimal(12)
    assert Money("12.50", "EUR").amount == Decimal("12.50")
    with pytest.raises(crm_core.ValidationError) as e:
        Money(10**40, "EUR")
    assert e.value.field == "amount" and e.value.rule == "range"


@pytest.mark.parametrize(
    ("kind", "fields", "named"),
    [
        ("opportunity", {"name": "Deal", "probability": 0.35}, "probability"),
        ("opportunity", {"name": "Deal", "amount": (1234.5, "EUR")}, "amount"),
        ("product", {"name": "Pump", "sku": "P", "list_price": (12.5, "EUR")}, "list_price"),
        ("product", {"name": "Pump", "sku": "P", "unit_cost": 7.25}, "unit_cost"),
        ("account", {"name": "ACME", "custom": {"score": 1.5}}, "custom.score"),
    ],
)
def test_a_float_for_a_decimal_or_money_field_is_a_type_error(
    admin: Session, kind: str, fields: dict[str, Any], named: str
) -> None:
    with pytest.raises(TypeError, match=f"`{named}` must not be a float"):
        admin.create(kind, **fields)
    assert admin.count(kind) == 0


def test_a_float_in_a_line_item_is_a_type_error(admin: Session) -> None:
    acc = admin.create("account", name="ACME")
    for key in ("unit_price", "quantity", "discount_percent", "tax_rate", "unit_cost"):
        with pytest.raises(TypeError, match=rf"`lines\[1\]\.{key}` must not be a float"):
            admin.create("quote", number="Q1", account_id=acc.id, currency="EUR", lines=[line(), line(**{key: 0.5})])
    with pytest.raises(TypeError, match=r"`lines\[0\]\.unit_price`"):
        admin.create_many("order", [{"account_id": acc.id, "currency": "EUR", "lines": [line(unit_price=9.99)]}])
    assert admin.count("quote") == 0 and admin.count("order") == 0
    # Decimals, ints and numeric strings stay accepted.
    q = admin.create(
        "quote", number="Q1", account_id=acc.id, currency="EUR",
        lines=[line(), line(unit_price="19.90", quantity=Decimal("1.5"), discount_percent=10)],
    )
    assert q["lines"][1]["unit_price"] == Decimal("19.90") and q["lines"][1]["quantity"] == Decimal("1.5")


def test_floats_are_refused_on_update_in_transactions_filters_and_parameters(admin: Session) -> None:
    acc = admin.create("account", name="ACME")
    opp = admin.create("opportunity", name="Deal", account_id=acc.id, probability="0.35")
    assert opp["probability"] == Decimal("0.35"), "a numeric string stays accepted"
    with pytest.raises(TypeError, match="`probability`"):
        admin.update("opportunity", opp.id, opp.version, probability=0.5)
    with admin.transaction() as tx:
        with pytest.raises(TypeError, match="`probability`"):
            tx.create("opportunity", name="Other", account_id=acc.id, probability=0.5)
        with pytest.raises(TypeError, match="`probability`"):
            tx.update("opportunity", opp.id, opp.version, probability=0.5)
    with pytest.raises(TypeError, match="`probability`"):
        admin.count("opportunity", F("probability") > 0.3)
    with pytest.raises(TypeError, match="`probability`"):
        admin.list("opportunity", {"probability": 0.35})
    with pytest.raises(TypeError, match="`probability`"):
        admin.count("opportunity", F("probability").isin([Decimal("0.35"), 0.5]))
    with pytest.raises(TypeError, match="`probability`"):
        admin.count("opportunity", {"op": "compare", "field": "probability", "cmp": "gt", "value": {"type": "decimal", "value": 0.3}})
    assert admin.count("opportunity", F("probability") > Decimal("0.3")) == 1
    assert admin.count("opportunity", F("probability") < 1) == 1
    with pytest.raises(TypeError, match=r"`rates\.rates\.USD`"):
        admin.forecast(rates={"base": "EUR", "rates": {"USD": 0.9}})
    assert admin.forecast(rates={"base": "EUR", "rates": {"USD": "0.9"}}) is not None


def test_a_float_amount_for_a_lead_conversion_or_an_erp_balance(org: Org) -> None:
    admin = org.admin
    lead = admin.create("lead", last_name="Rossi", company="Rossi")
    lead = admin.transition_lead(lead.id, lead.version, "qualified")
    with pytest.raises(TypeError, match="`amount` must not be a float"):
        admin.convert_lead(lead.id, lead.version, amount=(2500.0, "EUR"))  # type: ignore[arg-type]
    acc = admin.create("account", name="ACME", phone="02 1234 5678")

    class Erp:
        def facts(self, account_id: str) -> dict[str, Any]:
            return {"balance": (120.5, "EUR"), "credit_terms": None, "overdue_invoices": []}

    with pytest.raises(TypeError, match="`balance` must not be a float"):
        admin.screen_pop("02 1234 5678", erp=Erp())
    assert admin.get("account", acc.id)["name"] == "ACME"


def test_floats_stay_json_numbers_inside_json_fields(admin: Session) -> None:
    role = admin.create_role("Weights", {"objects": {"*": {"actions": ["read"], "read": ["all"]}}, "weight": 0.5})
    assert role["policy"]["weight"] == 0.5


# ------------------------------------------------------------------ 2. integers out of range


@pytest.mark.parametrize(
    ("call", "named"),
    [
        (lambda s: s.list("account", limit=-1), "limit"),
        (lambda s: s.list("account", limit=2**32), "limit"),
        (lambda s: s.iterate("account", page_size=-5), "page_size"),
        (lambda s: s.pending_events(after=2**70), "after"),
        (lambda s: s.pending_events(after=-1), "after"),
        (lambda s: s.pending_events(limit=-1), "limit"),
        (lambda s: s.ack_events([1, -1]), "seqs[1]"),
        (lambda s: s.ack_events([2**64]), "seqs[0]"),
        (lambda s: s.history("account", "x", before=-1), "before"),
        (lambda s: s.version("account", "x", 2**63), "n"),
        (lambda s: s.diff_versions("account", "x", 1, -(2**63) - 1), "b"),
        (lambda s: s.delete("account", "x", version=2**64), "version"),
        (lambda s: s.restore_version("account", "x", 1, 2**70), "restore_to"),
        (lambda s: s.send_quote("x", 2**63), "version"),
        (lambda s: s.rfm(window_days=-1), "window_days"),
        (lambda s: s.rfm(new_days=2**63), "new_days"),
        (lambda s: s.lifecycles(dormant_days=-(2**64)), "dormant_days"),
        (lambda s: s.customer_values(horizon_years=-1), "horizon_years"),
        (lambda s: s.cross_sell("x", limit=-1), "limit"),
        (lambda s: s.user_activity(s.user_id, dt.datetime(2020, 1, 1, tzinfo=UTC), dt.datetime.now(UTC), limit=-1), "limit"),
        (lambda s: s.create("account", name="A", custom={"n": 2**70}), "custom.n"),
        (lambda s: s.create("account", name="A", custom={"n": -(2**63) - 1}), "custom.n"),
        (lambda s: s.create_role("R", {"objects": {}, "n": [1, 2**64]}), "policy.n[1]"),
        (lambda s: s.count("account", {"employees": 2**64}), "employees"),
    ],
)
def test_an_integer_out_of_range_is_a_validation_error(
    admin: Session, call: Callable[[Session], object], named: str
) -> None:
    with pytest.raises(crm_core.ValidationError) as e:
        call(admin)
    err = e.value
    assert not isinstance(err, OverflowError)
    assert (err.field, err.rule, err.kind) == (named, "range", "validation")
    assert f"`{named}`" in err.message


def test_integer_parameters_in_transactions(admin: Session) -> None:
    acc = admin.create("account", name="ACME")
    with admin.transaction() as tx:
        calls: list[tuple[Callable[[], object], str]] = [
            (lambda: tx.update("account", acc.id, 2**63, city="Roma"), "version"),
            (lambda: tx.delete("account", acc.id, version=-(2**64)), "version"),
            (lambda: tx.list("account", limit=-1), "limit"),
        ]
        for call, named in calls:
            with pytest.raises(crm_core.ValidationError) as e:
                call()
            assert e.value.field == named
        assert tx.get("account", acc.id).version == acc.version


def test_a_non_integer_parameter_is_a_type_error_naming_it(admin: Session) -> None:
    with pytest.raises(TypeError, match="`limit` must be an int, not `str`"):
        admin.list("account", limit="10")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="`limit` must be an int, not `float`"):
        admin.list("account", limit=2.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="`version`"):
        admin.update("account", "x", Decimal(1))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="`seqs`"):
        admin.ack_events("12")  # type: ignore[arg-type]
    # Integers in range (and objects with __index__) stay accepted.
    admin.define_custom_field("account", "n", "int")
    assert admin.create("account", name="ACME", custom={"n": 2**63 - 1}).custom["n"] == 2**63 - 1

    class Index:
        def __index__(self) -> int:
            return 3

    assert len(admin.list("account", limit=Index())) == 1  # type: ignore[arg-type]
    assert admin.pending_events(after=2**63 - 1) == []


# ------------------------------------------------------------------ 4. page sizes of at least 1


@pytest.mark.parametrize(
    ("call", "named"),
    [
        (lambda s, ids: s.list("account", limit=0), "limit"),
        (lambda s, ids: s.iterate("account", page_size=0), "page_size"),
        (lambda s, ids: s.segment_members(ids["segment"], limit=0), "limit"),
        (lambda s, ids: s.history("account", ids["account"], limit=0), "limit"),
        (lambda s, ids: s.pending_events(limit=0), "limit"),
        (lambda s, ids: s.user_activity(s.user_id, dt.datetime(2020, 1, 1, tzinfo=UTC), dt.datetime.now(UTC), limit=0), "limit"),
        (lambda s, ids: s.cross_sell(ids["account"], limit=0), "limit"),
    ],
)
def test_a_page_size_of_zero_is_a_validation_error(
    admin: Session, call: Callable[[Session, dict[str, str]], object], named: str
) -> None:
    acc = admin.create("account", name="ACME", country="IT")
    admin.create("account", name="Beta", country="IT")
    seg = admin.create("segment", name="Italy", entity="account", definition='country = "IT"')
    with pytest.raises(crm_core.ValidationError) as e:
        call(admin, {"account": acc.id, "segment": seg.id})
    assert (e.value.field, e.value.rule) == (named, "range")
    assert f"`{named}` must be between 1 and" in e.value.message


def test_a_page_size_of_one_still_pages(admin: Session) -> None:
    for name in ("A", "B"):
        admin.create("account", name=name)
    page = admin.list("account", sort="name", limit=1)
    assert [r["name"] for r in page.items] == ["A"] and page.next is not None
    assert [r["name"] for r in admin.iterate("account", sort="name", page_size=1)] == ["A", "B"]
    with admin.transaction() as tx:
        with pytest.raises(crm_core.ValidationError, match="limit"):
            tx.list("account", limit=0)


# ------------------------------------------------------------------ 5. wrong-typed kinds


@pytest.mark.parametrize(
    ("call", "named"),
    [
        (lambda s: s.create(123, name="x"), "kind"),
        (lambda s: s.get(None, "x"), "kind"),
        (lambda s: s.list(3.5), "kind"),
        (lambda s: s.count(b"account"), "kind"),
        (lambda s: s.iterate(object()), "kind"),
        (lambda s: s.export(["account"]), "kind"),
        (lambda s: s.explain(s.user_id, 1, "account", "x"), "action"),
        (lambda s: s.define_custom_field("account", "ref", "reference", reference_to=5), "reference_to"),
        (lambda s: s.define_custom_field(7, "n", "int"), "kind"),
    ],
)
def test_a_wrong_typed_kind_is_a_type_error_naming_the_argument(
    admin: Session, call: Callable[[Session], object], named: str
) -> None:
    with pytest.raises(TypeError, match=f"`{named}` must be a str or a str enum member, not"):
        call(admin)


def test_kinds_in_transactions_and_enum_members(admin: Session) -> None:
    import enum

    class Kind(enum.Enum):
        ACCOUNT = "account"

    acc = admin.create(Kind.ACCOUNT, name="ACME")
    with admin.transaction() as tx:
        with pytest.raises(TypeError, match="`kind`"):
            tx.create(123, name="x")
        with pytest.raises(TypeError, match="`kind`"):
            tx.get(None, acc.id)
        assert tx.get(Kind.ACCOUNT, acc.id).id == acc.id
    with pytest.raises(crm_core.ValidationError):
        admin.create("no_such_kind", name="x")


# ------------------------------------------------------------------ 3. panics arrive as InternalError


def test_a_panic_is_an_internal_error_not_a_panic_exception() -> None:
    with pytest.raises(crm_core.InternalError) as e:
        panic_for_tests()
    err = e.value
    assert isinstance(err, Exception) and isinstance(err, crm_core.CrmError)
    assert type(err).__name__ == "InternalError"
    assert (err.kind, err.rule) == ("internal", "panic")
    assert err.message == "the library panicked: panic requested by _panic_for_tests"
    try:
        panic_for_tests()
    except Exception as caught:  # what a host's generic handler does
        assert isinstance(caught, crm_core.InternalError)


@pytest.fixture
def armed() -> Iterator[Callable[[], None]]:
    """Arms the hook for the next guarded call on this thread; disarms it afterwards in any case."""
    yield lambda: panic_for_tests("next")
    panic_for_tests("never")


class _Mailer:
    def send(self, message: crm_core.EmailMessage) -> None:
        pass


ENTRY_POINTS: dict[str, Callable[[Crm, Session, Path], object]] = {
    "Crm.memory": lambda c, s, p: Crm.memory(),
    "Crm.open": lambda c, s, p: Crm.open(p / "x.db"),
    "Crm.bootstrap": lambda c, s, p: Crm.memory().bootstrap("other", "admin"),
    "Crm.session": lambda c, s, p: c.session("acme", s.user_id),
    "Crm.backup": lambda c, s, p: c.backup(p / "b.db"),
    "Crm.integrity_check": lambda c, s, p: c.integrity_check(),
    "Crm.now": lambda c, s, p: c.now(),
    "Crm.reload_configuration": lambda c, s, p: c.reload_configuration(),
    "Crm.transaction": lambda c, s, p: c.transaction(s),
    "Session.create": lambda c, s, p: s.create("account", name="X"),
    "Session.list": lambda c, s, p: s.list("account"),
    "Session.count": lambda c, s, p: s.count("account"),
    "Session.history": lambda c, s, p: s.history("user", s.user_id),
    "Session.pending_events": lambda c, s, p: s.pending_events(),
    "Session.verify_audit": lambda c, s, p: s.verify_audit(),
    "Session.rfm": lambda c, s, p: s.rfm(),
    "Session.screen_pop": lambda c, s, p: s.screen_pop("02 1234 5678"),
    "Session.deliver_emails": lambda c, s, p: s.deliver_emails(_Mailer()),
    "Session.as_user": lambda c, s, p: s.as_user(s.user_id),
    "Session.transaction": lambda c, s, p: s.transaction(),
}


@pytest.mark.parametrize("name", sorted(ENTRY_POINTS))
def test_every_entry_point_turns_a_panic_into_an_internal_error(
    crm: Crm, admin: Session, tmp_path: Path, armed: Callable[[], None], name: str
) -> None:
    armed()
    with pytest.raises(crm_core.InternalError) as e:
        ENTRY_POINTS[name](crm, admin, tmp_path)
    assert e.value.rule == "panic"
    # Nothing is left broken: the same call works afterwards.
    again = tmp_path / "again"
    again.mkdir()
    ENTRY_POINTS[name](crm, admin, again)


def test_a_panic_in_a_transaction_or_an_iterator_leaves_them_usable(
    admin: Session, armed: Callable[[], None]
) -> None:
    admin.create("account", name="A")
    it = admin.iterate("account")
    armed()
    with pytest.raises(crm_core.InternalError):
        next(it)
    assert [r["name"] for r in it] == ["A"]
    with admin.transaction() as tx:
        armed()
        with pytest.raises(crm_core.InternalError):
            tx.create("account", name="B")
        tx.create("account", name="C")
        armed()
        with pytest.raises(crm_core.InternalError):
            tx.list("account")
        assert tx.count("account") == 2
    assert sorted(r["name"] for r in admin.list("account").items) == ["A", "C"]
    tx2 = admin.transaction()
    tx2.create("account", name="D")
    armed()
    with pytest.raises(crm_core.InternalError):
        tx2.commit()
    tx2.commit()
    assert admin.count("account") == 3


def test_a_value_nested_past_the_limit_is_refused_not_a_crash(admin: Session) -> None:
    deep: object = "x"
    for _ in range(200_000):
        deep = [deep]
    with pytest.raises(crm_core.CrmError):
        admin.count("account", {"name": deep})
    with pytest.raises((crm_core.CrmError, TypeError)):
        admin.create("account", name=deep)
