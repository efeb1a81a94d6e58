"""crm_core wheel vs SQLAlchemy 2 ORM on SQLite: bulk contact creation and phone lookup.

    bash benches/python/run.sh [--rows 100000] [--lookups 2000] [--json FILE]

Both sides write the same 100 000 contacts (names, email, phone) into a database file in one
batch: the wheel through ``Session.create_many`` (validation, phone normalisation to E.164,
audit trail, events, access control, all in one transaction), SQLAlchemy through ``add_all`` +
``commit`` of a comparable ``Contact`` model with indexes on phone and email. Then both look up
contacts by phone: the wheel with ``find_by_phone`` (any written form of the number), SQLAlchemy
with an ORM query on the indexed column (exact stored form).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time

from sqlalchemy import String, create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from crm_core import Crm


class Base(DeclarativeBase):
    pass


class Contact(Base):
    __tablename__ = "contact"
    id: Mapped[int] = mapped_column(primary_key=True)
    first_name: Mapped[str] = mapped_column(String(80))
    last_name: Mapped[str] = mapped_column(String(80))
    email: Mapped[str] = mapped_column(String(200), index=True)
    phone: Mapped[str] = mapped_column(String(40), index=True)


def rows(n: int) -> list[dict[str, str]]:
    return [
        {
            "first_name": f"Anna{i % 97}",
            "last_name": f"Rossi {i:06d}",
            "email": f"anna.rossi{i}@example.com",
            "phone": f"+39 02 {1000 + i // 10000:04d} {i % 10000:04d}",
        }
        for i in range(n)
    ]


def fresh(path: str) -> str:
    for suffix in ("", "-wal", "-shm", "-journal"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--lookups", type=int, default=2_000)
    ap.add_argument("--workdir", default=".")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    data = rows(args.rows)
    rng = random.Random(1)
    picks = [rng.randrange(args.rows) for _ in range(args.lookups)]

    # crm_core wheel
    crm = Crm.open(fresh(os.path.join(args.workdir, "bench-crm.db")))
    admin = crm.bootstrap("bench", "admin")
    t = time.perf_counter()
    created = admin.create_many("contact", data)
    wheel_create = time.perf_counter() - t
    assert len(created) == args.rows
    t = time.perf_counter()
    for i in picks:
        found = admin.find_by_phone("contact", data[i]["phone"])
        assert len(found) == 1, found
    wheel_lookup = time.perf_counter() - t

    # SQLAlchemy 2 ORM
    engine = create_engine(f"sqlite:///{fresh(os.path.join(args.workdir, 'bench-sqla.db'))}")
    Base.metadata.create_all(engine)
    t = time.perf_counter()
    with Session(engine) as s:
        s.add_all([Contact(**d) for d in data])
        s.commit()
    sqla_create = time.perf_counter() - t
    t = time.perf_counter()
    with Session(engine) as s:
        for i in picks:
            found_orm = s.scalars(select(Contact).where(Contact.phone == data[i]["phone"])).all()
            assert len(found_orm) == 1
    sqla_lookup = time.perf_counter() - t

    n, k = args.rows, args.lookups
    print(f"{n} contacts, {k} phone lookups (SQLite files in {args.workdir})")
    print(f"{'':24}{'crm_core wheel':>16}{'SQLAlchemy ORM':>16}{'wheel/SQLA':>12}")
    wr, sr = n / wheel_create, n / sqla_create
    print(f"{'create (rows/s)':24}{wr:>16,.0f}{sr:>16,.0f}{wr / sr:>11.2f}x")
    print(f"{'create (s)':24}{wheel_create:>16.2f}{sqla_create:>16.2f}")
    wl, sl = wheel_lookup / k * 1e6, sqla_lookup / k * 1e6
    print(f"{'lookup (us/lookup)':24}{wl:>16.1f}{sl:>16.1f}{wl / sl:>11.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "rows": n,
                    "lookups": k,
                    "wheel_create_s": wheel_create,
                    "sqla_create_s": sqla_create,
                    "wheel_lookup_us": wl,
                    "sqla_lookup_us": sl,
                },
                f,
                indent=1,
            )


if __name__ == "__main__":
    main()
