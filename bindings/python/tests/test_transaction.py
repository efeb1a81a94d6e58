"""Transactions: several calls that commit together, as a context manager or by hand."""

from __future__ import annotations

import gc
import threading
import time
from pathlib import Path

import pytest

import crm_core
from crm_core import Crm, Session

from conftest import Org


def totals(s: Session) -> tuple[int, int, int, int]:
    """Live accounts, live contacts, audit entries (chain checked), outbox events."""
    audit = s.verify_audit()
    assert audit.ok
    return (
        s.count("account"),
        s.count("contact"),
        audit.checked,
        len(s.pending_events(limit=10_000)),
    )


def test_the_block_commits_on_normal_exit(admin: Session) -> None:
    a0, c0, audit0, events0 = totals(admin)
    with admin.transaction() as tx:
        assert isinstance(tx, crm_core.Transaction)
        assert tx.is_open
        acme = tx.create("account", name="ACME")
        tx.create("contact", last_name="Rossi", account_id=acme.id)
        tx.update("account", acme.id, acme.version, city="Milano")
        tx.create_many("contact", [{"last_name": "A"}, {"last_name": "B"}])
    assert not tx.is_open
    assert admin.get("account", acme.id)["city"] == "Milano"
    assert totals(admin) == (a0 + 1, c0 + 3, audit0 + 5, events0 + 5)


def test_an_exception_rolls_everything_back(admin: Session) -> None:
    before = totals(admin)
    with pytest.raises(RuntimeError, match="boom"):
        with admin.transaction() as tx:
            acme = tx.create("account", name="ACME")
            tx.update("account", acme.id, 1, city="Roma")
            tx.create("contact", last_name="Rossi")
            raise RuntimeError("boom")
    assert not tx.is_open
    assert totals(admin) == before
    with pytest.raises(crm_core.NotFound):
        admin.get("account", acme.id)


def test_explicit_commit_and_rollback(crm: Crm, admin: Session) -> None:
    before = totals(admin)
    tx = crm.transaction(admin)
    tx.create("account", name="Dropped")
    tx.rollback()
    assert totals(admin) == before

    tx = admin.transaction()
    kept = tx.create("account", name="Kept")
    tx.commit()
    assert admin.get("account", kept.id)["name"] == "Kept"

    # Committed inside the block: the exit leaves it alone.
    with admin.transaction() as tx:
        tx.create("account", name="Inside")
        tx.commit()
    assert admin.count("account") == before[0] + 2


def test_a_caught_failure_inside_leaves_the_transaction_usable(admin: Session) -> None:
    a0, c0, audit0, events0 = totals(admin)
    with admin.transaction() as tx:
        acme = tx.create("account", name="ACME")
        with pytest.raises(crm_core.ValidationError) as e:
            tx.create_many("contact", [{"last_name": "Good"}, {"last_name": "Bad", "email": "nope"}])
        assert e.value.field == "rows[1].email"
        with pytest.raises(crm_core.Conflict) as c:
            tx.update("account", acme.id, 5, city="Roma")
        assert c.value.rule == "stale_version"
        assert tx.count("contact") == c0
        tx.create("contact", last_name="Verdi")
    # The failed calls left nothing: no rows, no audit entries, no events, no gap in the chain.
    assert totals(admin) == (a0 + 1, c0 + 1, audit0 + 2, events0 + 2)


def test_reads_inside_see_pending_writes(tmp_path: Path) -> None:
    crm = Crm.open(tmp_path / "crm.sqlite")
    admin = crm.bootstrap("acme", "admin")
    with admin.transaction() as tx:
        acme = tx.create("account", name="ACME", city="Torino")
        assert tx.get("account", acme.id)["city"] == "Torino"
        assert [r.id for r in tx.list("account", {"city": "Torino"}).items] == [acme.id]
        assert tx.count("account") == 1
        # A file database serves other readers from committed data meanwhile.
        assert admin.count("account") == 0
    assert admin.count("account") == 1


def test_permissions_and_redaction_inside(org: Org) -> None:
    theirs = org.admin.create("account", name="Admin's", vat_number="IT123")
    with org.rep.transaction() as tx:
        with pytest.raises(crm_core.PermissionDenied):
            tx.create("role", name="Sneaky")
        with pytest.raises((crm_core.NotFound, crm_core.PermissionDenied)):
            tx.update("account", theirs.id, theirs.version, city="Bari")
        with pytest.raises(crm_core.PermissionDenied) as e:
            tx.create("account", name="Mine", vat_number="IT999")
        assert e.value.rule == "hidden_field"
        mine = tx.create("account", name="Mine")
    org.admin.update("account", mine.id, mine.version, vat_number="IT999")
    with org.rep.transaction() as tx:
        assert "vat_number" not in tx.get("account", mine.id)
    assert org.admin.get("account", mine.id)["vat_number"] == "IT999"


def test_use_after_the_end_raises(admin: Session) -> None:
    with admin.transaction() as tx:
        tx.create("account", name="ACME")
    for call in (
        lambda: tx.create("account", name="Late"),
        lambda: tx.count("account"),
        tx.commit,
        tx.rollback,
    ):
        with pytest.raises(crm_core.InvalidTransition) as e:
            call()
        assert e.value.rule == "transaction_ended"
        assert isinstance(e.value, crm_core.CrmError)
    assert "ended" in repr(tx)


def test_dropping_an_open_transaction_rolls_back(admin: Session) -> None:
    before = admin.count("account")
    tx = admin.transaction()
    tx.create("account", name="Forgotten")
    assert "open" in repr(tx)
    del tx
    gc.collect()
    # The writer is free again (the write would fail as busy after 5 s otherwise).
    admin.create("contact", last_name="After")
    assert admin.count("account") == before


def test_another_thread_waits_for_the_commit(crm: Crm, admin: Session) -> None:
    finished: list[float] = []
    errors: list[BaseException] = []

    def write() -> None:
        try:
            crm.session("acme", admin.user_id).create("account", name="Second")
            finished.append(time.monotonic())
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)

    with admin.transaction() as tx:
        tx.create("account", name="First")
        other = threading.Thread(target=write)
        other.start()
        time.sleep(0.3)
        assert finished == []  # still waiting for the writer
        committed = time.monotonic()
    other.join()
    assert errors == []
    assert finished and finished[0] >= committed
    assert admin.count("account") == 2


def test_a_session_of_another_crm_is_refused(crm: Crm) -> None:
    other = Crm.memory().bootstrap("acme", "admin")
    with pytest.raises(ValueError):
        crm.transaction(other)
