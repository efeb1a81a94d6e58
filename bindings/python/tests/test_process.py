"""Processes: the seed scenario (phone lead to sent quote), the Python mailer, restore of a version,
stage history, followers, cases with SLA timers on a manual clock, tasks and reminders."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest

import crm_core
from crm_core import Crm, CrmError, EmailMessage, InvalidTransition, Mailer, Money, Session

START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone.utc)

ALL_OBJECTS: dict[str, Any] = {
    "objects": {"*": {"actions": ["create", "read", "update"], "read": ["all"], "write": ["all"]}}
}
DIRECTOR_POLICY: dict[str, Any] = {**ALL_OBJECTS, "capabilities": ["approve_quotes"]}
RECEPTION_POLICY: dict[str, Any] = {
    "objects": {"lead": {"actions": ["create", "read"], "read": ["own"], "write": ["own"]}}
}


@dataclass
class RecordingMailer:
    sent: list[EmailMessage] = field(default_factory=list)

    def send(self, message: EmailMessage) -> None:
        self.sent.append(message)


class FailingMailer:
    calls = 0

    def send(self, message: EmailMessage) -> None:
        self.calls += 1
        raise ConnectionError("smtp down")


@dataclass
class Seed:
    crm: Crm
    admin: Session
    receptionist: Session
    junior: Session
    senior: Session
    rep_no_cap: Session
    director: Session


@pytest.fixture
def seed() -> Seed:
    crm = Crm.memory(clock=START)
    admin = crm.bootstrap("acme", "admin")
    reception = admin.create_role("receptionist", RECEPTION_POLICY)
    reps = admin.create_role("rep", ALL_OBJECTS)
    director = admin.create_role("sales director", DIRECTOR_POLICY)

    def user(name: str, role: str, seniority: int | None = None) -> Session:
        extra = {} if seniority is None else {"seniority": seniority}
        return crm.session("acme", admin.create("user", username=name, role_id=role, **extra).id)

    s = Seed(
        crm=crm,
        admin=admin,
        receptionist=user("rita", reception.id),
        junior=user("jack", reps.id, 1),
        senior=user("sara", reps.id, 7),
        rep_no_cap=user("rob", reps.id, 6),
        director=user("diana", director.id, 9),
    )
    queue = admin.create(
        "queue", name="senior reps", strategy="round_robin", member_ids=[s.junior.user_id, s.senior.user_id]
    )
    admin.create(
        "assignment_rule",
        name="important phone requests",
        entity="lead",
        conditions={"channel": ["phone"], "min_value": "10000"},
        queue_id=queue.id,
        min_seniority=5,
    )
    admin.create("approval_rule", name="discount over 10%", max_discount_percent=Decimal("10"))
    admin.create(
        "pipeline",
        name="sales",
        stages=[
            {"name": "prospecting", "probability": 10},
            {"name": "proposal", "probability": 50, "forecast_category": "best_case"},
            {"name": "won", "probability": 100, "outcome": "won", "roles": ["sales director"]},
            {"name": "lost", "probability": 0, "outcome": "lost"},
        ],
        is_default=True,
    )
    return s


def phone_lead(by: Session, value: str) -> crm_core.Record:
    return by.create(
        "lead",
        first_name="Mario",
        last_name="Rossi",
        company="Rossi Impianti",
        email="Mario.Rossi@Example.com",
        channel="phone",
        estimated_value=Money(value, "EUR"),
        product_interest="heat pumps",
        country="IT",
    )


def discounted_quote(by: Session, conv: crm_core.Conversion, discount: str) -> crm_core.Record:
    line = {
        "product_id": None,
        "description": "Heat pump 12 kW",
        "quantity": Decimal("2"),
        "unit_price": Decimal("7500"),
        "discount_percent": Decimal(discount),
        "tax_rate": Decimal("22"),
    }
    return by.create(
        "quote",
        account_id=conv.account.id,
        contact_id=conv.contact.id,
        opportunity_id=conv.opportunity.id,
        currency="EUR",
        lines=[line],
    )


def converted(s: Seed) -> tuple[crm_core.Record, crm_core.Conversion]:
    lead = phone_lead(s.receptionist, "25000")
    lead = s.senior.transition_lead(lead.id, lead.version, "contacted", comment="called back")
    lead = s.senior.transition_lead(lead.id, lead.version, "qualified")
    return lead, s.senior.convert_lead(lead.id, lead.version)


def email_events(admin: Session) -> list[crm_core.Event]:
    return [e for e in admin.pending_events(limit=1000) if e.event_type == "email.requested"]


def test_phone_lead_to_sent_quote(seed: Seed) -> None:
    s = seed
    # The receptionist takes the call; the rule routes it to a senior rep, never the junior one.
    lead = phone_lead(s.receptionist, "25000")
    assert lead.owner_id == s.senior.user_id
    assert lead["assigned_by_rule"] == "important phone requests"
    email = lead["email"]
    assert email == "mario.rossi@example.com"
    for _ in range(3):
        assert phone_lead(s.receptionist, "12000").owner_id != s.junior.user_id
    assert phone_lead(s.receptionist, "500").owner_id == s.receptionist.user_id

    # The rep qualifies and converts it.
    lead = s.senior.transition_lead(lead.id, lead.version, "contacted", comment="called back")
    assert lead["status"] == "contacted"
    lead = s.senior.transition_lead(lead.id, lead.version, "qualified")
    conv = s.senior.convert_lead(lead.id, lead.version)
    assert isinstance(conv, crm_core.Conversion) and "Conversion" in repr(conv)
    assert conv.lead["status"] == "converted"
    assert conv.lead["converted_opportunity_id"] == conv.opportunity.id
    assert conv.contact["email"] == email
    assert conv.account["name"] == "Rossi Impianti"
    assert conv.opportunity["stage"] == "prospecting"
    assert conv.opportunity["amount"] == Money(Decimal("25000"), "EUR")

    # A quote with a 20 % discount needs approval.
    quote = discounted_quote(s.senior, conv, "20")
    assert quote["lines"][0]["discount_percent"] == Decimal("20")
    quote = s.senior.submit_quote(quote.id, quote.version)
    assert quote["status"] == "pending_approval"
    with pytest.raises(InvalidTransition) as e:
        s.senior.send_quote(quote.id, quote.version)
    assert e.value.rule == "approval_missing" and e.value.kind == "invalid_transition"
    assert isinstance(e.value, CrmError)
    with pytest.raises(InvalidTransition) as e:
        s.senior.approve_quote(quote.id, quote.version)
    assert e.value.rule == "same_person"
    with pytest.raises(CrmError) as e2:
        s.rep_no_cap.approve_quote(quote.id, quote.version)
    assert e2.value.rule == "role"
    assert email_events(s.admin) == []

    # The director approves; the quote goes out automatically.
    quote = s.director.approve_quote(quote.id, quote.version, comment="ok for a new customer")
    assert quote["status"] == "sent"
    assert quote["approved_by"] == s.director.user_id
    assert quote["sent_to"] == email
    assert len(email_events(s.admin)) == 1

    # The host's Python mailer delivers it once.
    mailer = RecordingMailer()
    assert s.admin.deliver_emails(mailer) == 1
    assert len(mailer.sent) == 1
    msg = mailer.sent[0]
    assert msg.to == email and msg.record_kind == "quote" and msg.record_id == quote.id
    assert msg.subject.startswith("Quote") and msg.body
    assert "EmailMessage" in repr(msg)
    assert email_events(s.admin) == []
    assert s.admin.deliver_emails(mailer) == 0
    assert len(mailer.sent) == 1

    # The history shows every step.
    steps = s.senior.stage_history("quote", quote.id)
    assert [h.to_state for h in steps] == ["pending_approval", "approved", "sent"]
    lh = s.senior.stage_history("lead", lead.id)
    assert [h.to_state for h in lh] == ["contacted", "qualified", "converted"]
    assert [h.from_state for h in lh] == ["new", "contacted", "qualified"]
    assert lh[0].comment == "called back" and lh[0].user_id == s.senior.user_id
    assert all(h.at.tzinfo is not None and h.seconds_in_state >= 0 for h in lh)
    assert "StageEntry" in repr(lh[0])


def test_failing_python_mailer_leaves_the_event_pending(seed: Seed) -> None:
    s = seed
    _, conv = converted(s)
    quote = discounted_quote(s.senior, conv, "5")
    quote = s.senior.submit_quote(quote.id, quote.version)
    assert quote["status"] == "sent", "under the approval limit: approved and sent at once"
    failing = FailingMailer()
    errors: list[tuple[EmailMessage, CrmError]] = []
    assert s.admin.deliver_emails(failing, on_error=lambda m, e: errors.append((m, e))) == 0
    assert failing.calls == 1
    assert len(email_events(s.admin)) == 1, "a failed send leaves the event pending"
    (m, err), = errors
    assert isinstance(err, crm_core.StorageError) and isinstance(err, CrmError)
    assert isinstance(err.__cause__, ConnectionError) and "smtp down" in err.message
    assert err.kind == "storage" and err.action == "send" and m.record_id == quote.id
    # Without on_error the failure is silent; the event is retried next time.
    assert s.admin.deliver_emails(failing) == 0 and failing.calls == 2
    ok: Mailer = RecordingMailer()
    assert s.admin.deliver_emails(ok) == 1
    assert email_events(s.admin) == []


def test_mailer_without_send_and_interrupts(seed: Seed) -> None:
    s = seed
    with pytest.raises(TypeError):
        s.admin.deliver_emails(object())  # type: ignore[arg-type]
    _, conv = converted(s)
    quote = discounted_quote(s.senior, conv, "0")
    s.senior.submit_quote(quote.id, quote.version)

    class Interrupting:
        def send(self, message: EmailMessage) -> None:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        s.admin.deliver_emails(Interrupting())
    assert len(email_events(s.admin)) == 1
    # Outbox delivery needs the outbox permission.
    with pytest.raises(crm_core.PermissionDenied):
        s.senior.deliver_emails(RecordingMailer())


def test_quote_reject_accept_expire_and_order(seed: Seed) -> None:
    s = seed
    _, conv = converted(s)
    q = discounted_quote(s.senior, conv, "20")
    q = s.senior.submit_quote(q.id, q.version)
    with pytest.raises(CrmError):
        s.director.reject_quote(q.id, q.version, "")
    q = s.director.reject_quote(q.id, q.version, "too generous")
    assert q["status"] == "rejected"

    q2 = discounted_quote(s.senior, conv, "0")
    q2 = s.senior.submit_quote(q2.id, q2.version)
    assert q2["status"] == "sent"
    q2, order = s.senior.accept_quote(q2.id, q2.version, create_order=True)
    assert q2["status"] == "accepted"
    assert order is not None and order.kind == "order" and order["currency"] == "EUR"
    assert len(order["lines"]) == 1

    q3 = discounted_quote(s.senior, conv, "0")
    q3 = s.senior.submit_quote(q3.id, q3.version)
    q3, none = s.senior.accept_quote(q3.id, q3.version)
    assert none is None
    q4 = discounted_quote(s.senior, conv, "0")
    q4 = s.senior.submit_quote(q4.id, q4.version)
    assert s.senior.expire_quote(q4.id, q4.version)["status"] == "expired"
    with pytest.raises(InvalidTransition):
        s.senior.expire_quote(q4.id, q4.version + 1)


def test_opportunity_moves_and_lead_options(seed: Seed) -> None:
    s = seed
    lead = s.senior.create("lead", last_name="Bianchi", company="Bianchi SRL")
    lead = s.senior.transition_lead(lead.id, lead.version, "qualified")
    conv = s.senior.convert_lead(
        lead.id, lead.version, opportunity_name="Big deal", amount=(Decimal("1234.50"), "EUR"), pipeline="sales"
    )
    opp = conv.opportunity
    assert opp["name"] == "Big deal" and opp["amount"] == Money("1234.50", "EUR")
    opp = s.senior.move_opportunity(opp.id, opp.version, "proposal", comment="sent a proposal")
    assert opp["stage"] == "proposal" and opp["probability"] == 50
    with pytest.raises(InvalidTransition):
        s.senior.move_opportunity(opp.id, opp.version, "won")
    opp = s.senior.move_opportunity(opp.id, opp.version, "lost", lost_reason="price")
    assert opp["closed_at"] is not None
    assert [h.to_state for h in s.senior.stage_history("opportunity", opp.id)][-2:] == ["proposal", "lost"]

    other = s.senior.create("lead", last_name="Verdi", company="Verdi")
    with pytest.raises(CrmError):
        s.senior.disqualify_lead(other.id, other.version, "")
    other = s.senior.disqualify_lead(other.id, other.version, "no budget")
    assert other["status"] == "disqualified"
    with pytest.raises(InvalidTransition):
        s.senior.transition_lead(other.id, other.version, "converted")
    with pytest.raises(TypeError):
        s.senior.convert_lead(lead.id, lead.version, amount="12")  # type: ignore[arg-type]


def test_restore_version_round_trip(admin: Session) -> None:
    a1 = admin.create("account", name="ACME", city="Milano")
    a2 = admin.update("account", a1.id, a1.version, city="Roma")
    a3 = admin.update("account", a1.id, a2.version, name="ACME S.p.A.")
    with pytest.raises(crm_core.Conflict):
        admin.restore_version("account", a1.id, a2.version, 1)
    with pytest.raises(crm_core.ValidationError):
        admin.restore_version("account", a1.id, a3.version, 9)
    a4 = admin.restore_version("account", a1.id, a3.version, 1)
    assert a4.version == 4 and a4["name"] == "ACME" and a4["city"] == "Milano"
    assert a4.fields == a1.fields
    assert admin.history("account", a1.id, limit=1).entries[0].operation == "restore"
    assert admin.get("account", a1.id) == a4


def test_followers(seed: Seed) -> None:
    s = seed
    acc = s.admin.create("account", name="Followed")
    f = s.senior.follow("account", acc.id)
    assert f.kind == "follow"
    assert s.senior.follow("account", acc.id).id == f.id, "following twice is harmless"
    s.director.follow("account", acc.id)
    assert sorted(s.senior.followers("account", acc.id)) == sorted([s.senior.user_id, s.director.user_id])
    s.admin.update("account", acc.id, acc.version, city="Torino")
    notes = [e for e in s.admin.pending_events(limit=1000) if e.event_type == "notification"]
    assert {e.payload.get("user_id") for e in notes} >= {s.senior.user_id}
    assert s.senior.unfollow("account", acc.id) is True
    assert s.senior.unfollow("account", acc.id) is False
    assert s.senior.followers("account", acc.id) == [s.director.user_id]
    with pytest.raises(crm_core.NotFound):
        s.receptionist.follow("account", acc.id)


def test_cases_sla_on_the_manual_clock(seed: Seed) -> None:
    s = seed
    assert s.crm.now() == START
    urgent = s.admin.create("case", subject="Outage", priority="urgent")
    assert urgent["first_response_due"] == START + dt.timedelta(hours=1)
    answered = s.admin.create("case", subject="Fast", priority="urgent")
    s.crm.advance(dt.timedelta(minutes=30))
    answered = s.admin.transition_case(answered.id, answered.version, "in_progress", comment="on it")
    assert answered["first_responded_at"] == START + dt.timedelta(minutes=30)
    assert s.admin.check_slas() == []
    s.crm.advance(dt.timedelta(minutes=31))
    assert s.admin.check_slas() == [urgent.id]
    assert s.admin.check_slas() == [], "once per case"
    assert s.admin.get("case", urgent.id)["sla_breached"] is True
    s.crm.set_clock(START + dt.timedelta(days=30))
    assert s.crm.now() == START + dt.timedelta(days=30)
    with pytest.raises(RuntimeError):
        Crm.memory().advance(dt.timedelta(seconds=1))
    with pytest.raises(ValueError):
        Crm.memory(clock=dt.datetime(2026, 1, 1))


def test_due_tasks_and_reminders(seed: Seed) -> None:
    s = seed
    soon = START + dt.timedelta(hours=2)
    t1 = s.senior.create("activity", activity_type="task", subject="Call back", due_at=soon)
    s.senior.create("activity", activity_type="task", subject="Later", due_at=START + dt.timedelta(days=3))
    s.senior.create("activity", activity_type="call", subject="A call", due_at=soon)
    assert [t.id for t in s.senior.due_tasks(START + dt.timedelta(days=1))] == [t1.id]
    assert s.admin.fire_reminders() == 0
    s.crm.advance(dt.timedelta(hours=3))
    assert s.admin.fire_reminders() == 1
    assert s.admin.fire_reminders() == 0
    ev = [e for e in s.admin.pending_events(limit=1000) if e.event_type == "task.due"]
    assert len(ev) == 1 and ev[0].payload["user_id"] == s.senior.user_id
    with pytest.raises(ValueError):
        s.senior.due_tasks(dt.datetime(2026, 1, 1))
