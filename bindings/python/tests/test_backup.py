"""Online backup, restore into a new file and integrity checks."""

from __future__ import annotations

from pathlib import Path

import pytest

import crm_core
from crm_core import Crm


def test_backup_restore_and_check(tmp_path: Path) -> None:
    crm = Crm.open(tmp_path / "live.db")
    admin = crm.bootstrap("acme", "admin")
    ids = [r.id for r in admin.create_many("account", [{"name": f"A{i}"} for i in range(50)])]
    assert crm.integrity_check() == []
    seen: list[tuple[int, int]] = []
    crm.backup(tmp_path / "copy.db", lambda done, total: seen.append((done, total)))
    assert seen and seen[-1][0] == seen[-1][1] > 0
    assert Crm.check_file(tmp_path / "copy.db") == []
    with pytest.raises(crm_core.CrmError):
        crm.backup(str(tmp_path / "copy.db"))  # refuses an existing destination
    Crm.restore_backup(tmp_path / "copy.db", tmp_path / "restored.db")
    restored = Crm.open(tmp_path / "restored.db").session("acme", admin.user_id)
    assert restored.count("account") == 50 and restored.get("account", ids[0])["name"] == "A0"
    with pytest.raises(crm_core.CrmError):
        Crm.restore_backup(tmp_path / "copy.db", tmp_path / "restored.db")


def test_progress_exception_is_raised_after_the_backup(tmp_path: Path) -> None:
    crm = Crm.open(tmp_path / "live.db")
    crm.bootstrap("acme", "admin")
    calls: list[int] = []

    def progress(done: int, total: int) -> None:
        calls.append(done)
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        crm.backup(tmp_path / "copy.db", progress)
    assert len(calls) == 1
    assert Crm.check_file(tmp_path / "copy.db") == [], "the copy itself completed"


def test_host_operations_are_not_on_sessions(tmp_path: Path) -> None:
    # Whole-database backups, checks and tenant moves belong to the host's `Crm`: no session, not
    # even a tenant administrator's, reaches them (they would copy every tenant's data).
    crm = Crm.open(tmp_path / "live.db")
    admin = crm.bootstrap("acme", "admin")
    role = admin.create_role("rep", {"objects": {"account": {"actions": ["read"], "read": ["all"]}}})
    rep = crm.session("acme", admin.create("user", username="rep", role_id=role.id).id)
    for s in (admin, rep):
        for name in ("backup", "integrity_check", "export_tenant", "import_tenant"):
            assert not hasattr(s, name), name
    assert not (tmp_path / "copy.db").exists()


def test_tenant_export_and_import(tmp_path: Path) -> None:
    crm = Crm.open(tmp_path / "live.db")
    admin = crm.bootstrap("acme", "admin")
    acc = admin.create("account", name="ACME", city="Milano")
    admin.update("account", acc.id, acc.version, city="Roma")
    lines: list[int] = []
    summary = crm.export_tenant("acme", tmp_path / "acme.jsonl", lines.append)
    assert summary.records >= 2 and summary.audit >= 3 and lines and "TransferSummary" in repr(summary)
    with pytest.raises(crm_core.StorageError):
        crm.export_tenant("acme", tmp_path / "acme.jsonl")  # refuses to overwrite
    other = Crm.open(tmp_path / "other.db")
    got = other.import_tenant(tmp_path / "acme.jsonl")
    assert (got.records, got.audit, got.events) == (summary.records, summary.audit, summary.events)
    s = other.session("acme", admin.user_id)
    assert s.get("account", acc.id)["city"] == "Roma"
    assert [e.version for e in s.history("account", acc.id).entries] == [2, 1]
    assert s.verify_audit().ok
    with pytest.raises(crm_core.CrmError):
        other.import_tenant(tmp_path / "acme.jsonl")  # the tenant is no longer empty
    with pytest.raises(crm_core.StorageError):
        Crm.memory().import_tenant(tmp_path / "missing.jsonl")
