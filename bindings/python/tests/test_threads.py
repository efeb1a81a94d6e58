"""One Crm shared by several Python threads (the GIL is released inside the core)."""

from __future__ import annotations

import threading

from crm_core import Crm


def test_threads_read_and_write_one_crm(crm: Crm) -> None:
    admin = crm.bootstrap("acme", "admin")
    errors: list[BaseException] = []
    per_thread = 40

    def work(n: int) -> None:
        try:
            s = crm.session("acme", admin.user_id)
            for i in range(per_thread):
                r = s.create("account", name=f"T{n}-{i}")
                assert s.get("account", r.id)["name"] == f"T{n}-{i}"
                r2 = s.update("account", r.id, r.version, city="Roma")
                assert r2.version == 2
                s.count("account")
                s.list("account", limit=10)
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert admin.count("account") == 6 * per_thread
    assert admin.count("account", {"city": "Roma"}) == 6 * per_thread
    assert admin.verify_audit().ok


def test_threads_share_one_iterator(crm: Crm) -> None:
    admin = crm.bootstrap("acme", "admin")
    admin.create_many("account", [{"name": f"A{i}"} for i in range(600)])
    it = admin.iterate("account", page_size=50)
    seen: list[str] = []
    lock = threading.Lock()

    def drain() -> None:
        for r in it:
            with lock:
                seen.append(r.id)

    threads = [threading.Thread(target=drain) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 600 == len(set(seen))
