"""A tour of the crm_core wheel: demo data, a caller's screen pop, RFM segments, profit.

    python examples/python/tour.py [DB_PATH] [--accounts N]

Opens (re-creates) a database file, loads a deterministic demo data set through the wheel
(accounts with phones and countries, products with unit costs, a year of orders with product
lines), then prints the screen pop for one caller with facts from a (fake) ERP, logs the call and a
follow-up case in one transaction, and prints the RFM segment counts and the profit by segment x
product over the last three months.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import sys
import tempfile
from collections import Counter, defaultdict
from decimal import Decimal
from typing import Any, Mapping

import crm_core
from crm_core import Crm, Money, Session

COUNTRIES = [("IT", "+39 02 {:04d} {:04d}"), ("DE", "+49 30 {:04d}{:04d}"), ("FR", "+33 1 {:04d} {:04d}")]
PRODUCTS = [  # sku, name, list price, unit cost (EUR)
    ("P-PUMP", "Pump", "120.00", "70.00"),
    ("P-VALVE", "Valve", "35.50", "12.25"),
    ("P-HOSE", "Hose", "9.90", "6.10"),
    ("P-METER", "Flow meter", "480.00", "390.00"),
    ("P-SERVICE", "Service plan", "200.00", "45.00"),
]
NAMES = ["Acme", "Borea", "Castello", "Delta", "Etna", "Fiume", "Garda", "Helix", "Isola", "Jura"]
SUFFIXES = ["SpA", "GmbH", "SARL", "Srl", "AG"]


def load_demo(admin: Session, now: dt.datetime, *, accounts: int = 60, seed: int = 7) -> dict[str, Any]:
    """Creates the demo data set (same seed, same data); returns the ids worth knowing."""
    rng = random.Random(seed)
    acc_rows = []
    for i in range(accounts):
        country, pattern = COUNTRIES[i % len(COUNTRIES)]
        acc_rows.append(
            {
                "name": f"{NAMES[i % len(NAMES)]} {SUFFIXES[(i // len(NAMES)) % len(SUFFIXES)]} {i:03d}",
                "phone": pattern.format(1000 + i, rng.randrange(1000, 9999)),
                "country": country,
                "city": {"IT": "Milano", "DE": "Berlin", "FR": "Paris"}[country],
            }
        )
    accs = admin.create_many("account", acc_rows)
    admin.create_many(
        "contact",
        [{"first_name": "Anna", "last_name": f"Rossi {i:03d}", "account_id": a.id} for i, a in enumerate(accs)],
    )
    products = admin.create_many(
        "product",
        [
            {"sku": sku, "name": name, "list_price": Money(price, "EUR"), "unit_cost": Money(cost, "EUR")}
            for sku, name, price, cost in PRODUCTS
        ],
    )
    orders = []
    for i, acc in enumerate(accs):
        # A skewed customer base: a few frequent buyers, many occasional ones, some dormant.
        n = rng.choice([0, 1, 1, 2, 3, 5, 8, 13]) if i else 12
        for _ in range(n):
            days_ago = rng.randrange(1, 365) if i % 5 != 1 else rng.randrange(200, 365)
            lines = []
            for p in rng.sample(products, rng.randint(1, 3)):
                lines.append(
                    {
                        "product_id": p.id,
                        "description": p["name"],
                        "quantity": rng.randint(1, 10),
                        "unit_price": p["list_price"].amount,
                        "tax_rate": 22,
                    }
                )
            orders.append(
                {
                    "account_id": acc.id,
                    "currency": "EUR",
                    "lines": lines,
                    "ordered_at": now - dt.timedelta(days=days_ago, hours=rng.randrange(24)),
                }
            )
    admin.create_many("order", orders)
    stages = ["prospecting", "qualification", "proposal", "negotiation", "closed_won"]
    opps = []
    for i, acc in enumerate(accs):
        stage = stages[min(int(rng.expovariate(0.8)), len(stages) - 1)]
        opps.append(
            {
                "name": f"Deal {i:03d}",
                "account_id": acc.id,
                "stage": stage,
                "amount": Money(Decimal(rng.randrange(1, 50)) * 1000, "EUR"),
                "expected_close": (now + dt.timedelta(days=rng.randrange(10, 180))).date(),
            }
        )
    admin.create_many("opportunity", opps)
    return {"caller": accs[0], "accounts": len(accs), "orders": len(orders), "stages": stages}


class FakeErp:
    """An ERP facts provider: any object with ``facts(account_id)`` returning a mapping."""

    def __init__(self, balances: Mapping[str, Decimal]) -> None:
        self.balances = balances
        self.calls = 0

    def facts(self, account_id: str) -> dict[str, object]:
        self.calls += 1
        return {
            "balance": Money(self.balances.get(account_id, Decimal("0")), "EUR"),
            "credit_terms": "60 days end of month",
            "overdue_invoices": [{"number": "INV-2041", "amount": Money("1830.00", "EUR"), "due": dt.date(2026, 9, 30)}],
        }


def print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    print(fmt.format(*header))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print(fmt.format(*r))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("db", nargs="?", default=os.path.join(tempfile.gettempdir(), "crm-tour.db"))
    ap.add_argument("--accounts", type=int, default=60)
    args = ap.parse_args(argv)
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(args.db + suffix):
            os.remove(args.db + suffix)

    crm = Crm.open(args.db, default_region="IT")
    admin = crm.bootstrap("demo", "admin")
    now = crm.now()
    demo = load_demo(admin, now, accounts=args.accounts)
    print(f"database {args.db}: {demo['accounts']} accounts, {demo['orders']} orders")

    # Screen pop: the phone system hands us the caller's number, written the local way.
    caller: crm_core.Record = demo["caller"]
    phone: str = caller["phone"]  # stored in E.164: +390210001234
    local = f"{phone[3:5]} {phone[5:9]} {phone[9:]}" if phone.startswith("+39") else phone
    erp = FakeErp({caller.id: Decimal("4210.75")})
    pop = admin.screen_pop(local, erp=erp)
    print(f"\n== Screen pop for {local} ==")
    if pop.account is None:
        print(f"  {len(pop.candidates)} candidates")
    else:
        print(f"  account    {pop.account['name']} ({pop.account['country']}, {pop.account['city']})")
        print(f"  contacts   {', '.join(c.label for c in pop.contacts)}")
        print(f"  segment    {pop.rfm_segment}   lifecycle {pop.lifecycle}")
        for o in pop.recent_orders[:3]:
            total = o["total"]
            print(f"  order      {o['ordered_at']:%Y-%m-%d}  {total.amount:>10} {total.currency}")
        for opp in pop.open_opportunities:
            print(f"  deal       {opp['name']} [{opp['stage']}] {opp['amount'].amount} {opp['amount'].currency}")
        for hint in pop.cross_sell[:2]:
            product = admin.get("product", hint.product_id)["name"]
            print(f"  suggest    {product} (lift {hint.lift:.2f})")
        if pop.erp is not None:
            bal = pop.erp["balance"]
            print(f"  ERP        balance {bal.amount} {bal.currency}, terms {pop.erp['credit_terms']}, "
                  f"{len(pop.erp['overdue_invoices'])} overdue invoice(s)")

    # The call is logged and a follow-up case opened in one transaction: both or neither. A call
    # that fails inside (the operator typed a bad e-mail) is refused alone; the rest commits.
    refused = "nothing"
    with admin.transaction() as tx:
        call = tx.create("activity", activity_type="call", direction="inbound", channel="phone",
                         duration_seconds=95, account_id=caller.id)
        case = tx.create("case", subject="Pump maintenance", account_id=caller.id)
        try:
            tx.update("account", caller.id, caller.version, email="not-an-email")
        except crm_core.ValidationError as e:
            refused = f"{e.field} ({e.rule})"
    print(f"\n== Call logged in one transaction ==\n  activity {call.id}\n  case     {case.id} "
          f"due {case['resolution_due']:%Y-%m-%d %H:%M}\n  refused  {refused}")

    rfm = admin.rfm(window_days=365)
    print(f"\n== RFM segments ({len(rfm)} customers with orders in the last year) ==")
    counts = Counter(r.segment for r in rfm)
    print_table(["segment", "accounts"], [[s, str(n)] for s, n in counts.most_common()])

    start = now - dt.timedelta(days=91)
    profit = admin.profit(start, now, by="rfm", window_days=365)
    print(f"\n== Margin (EUR) by segment x product, {start:%Y-%m-%d} .. {now:%Y-%m-%d} ==")
    products = sorted({r["product"] for r in profit.to_dicts()})
    table: dict[str, dict[str, Decimal]] = defaultdict(dict)
    for d in profit.to_dicts():
        table[d["segment"]][d["product"]] = table[d["segment"]].get(d["product"], Decimal(0)) + d["margin"]
    rows = []
    for seg, by_prod in sorted(table.items(), key=lambda kv: -sum(kv[1].values())):
        rows.append([seg] + [f"{by_prod.get(p, Decimal(0)):.2f}" for p in products] + [f"{sum(by_prod.values()):.2f}"])
    print_table(["segment"] + products + ["total"], rows)
    revenue = sum((d["revenue"] for d in profit.to_dicts()), Decimal(0))
    margin = sum((d["margin"] for d in profit.to_dicts()), Decimal(0))
    print(f"revenue {revenue:.2f} EUR, margin {margin:.2f} EUR ({margin / revenue:.1%})" if revenue else "no sales")
    return 0


if __name__ == "__main__":
    sys.exit(main())
