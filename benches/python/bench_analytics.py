"""RFM and profit by segment × product: the crm_core wheel against DuckDB (and pandas, polars) on the
same rows of the sales data set.

    bash benches/python/run.sh analytics [--repeat 5] [--json target/bench-python-analytics.json]

The sales data set (``CRM_BENCH_N`` customers, ten orders each on average) is built or opened by the
Rust bin ``sales_data`` (``cargo run --profile bench -p crm-benches --bin sales_data``), which prints its
path and the administrator's id; ``--data`` takes that JSON (or a file holding it) instead.

Before anything is timed, the rows are read from the same SQLite file with ``sqlite3`` (amounts are
stored as integers × 10⁴, ids as 16-byte blobs, order lines as JSON in ``orders.lines``; see
crm-store/src/codec.rs) and loaded into DuckDB tables (``accounts``, ``orders``, ``order_lines``)
and into pandas and polars frames. Then, each repeated ``--repeat`` times:

* ``session.rfm()`` — the library's RFM (the maintained per-account order statistics), a ``Rows``
  list of ``RfmRow`` objects that keeps the library's result for column conversions — against DuckDB computing recency / frequency / monetary from the orders and
  ``NTILE(5)`` over each, ordered ascending with ties broken by the account id, and the default
  segment rules as a ``CASE``; pandas and polars compute the same from their frames
  (informational). The same result in Python forms is timed too: ``session.rfm().to_columns()``
  (a list per column) and ``session.rfm().to_polars()`` against DuckDB's
  answer as a polars DataFrame (``pl.from_arrow``).
* ``session.profit(now − 91 days, now, by="rfm")`` against one DuckDB query: the RFM segment of
  each customer, the lines of the non-cancelled orders of the period joined to it, revenue per
  line rounded to cents (half away from zero) as the library does, grouped by segment × product.

Every engine's answer is checked against DuckDB's: RFM scores per customer (and so the segment
counts) and every profit row must be equal, or the script lists the differences and exits 1. The
library's RFM is checked in every timed form (columns, row objects, polars), its profit as
columns and as row objects.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Callable

import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa

from crm_core import Crm

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

# The default rule table of crm-core (docs/segments.md): first match wins.
RULES = [
    ("champions", (4, 5), (4, 5), (4, 5)),
    ("loyal", (3, 5), (4, 5), (1, 5)),
    ("potential_loyalists", (4, 5), (2, 3), (1, 5)),
    ("new", (5, 5), (1, 1), (1, 5)),
    ("promising", (4, 4), (1, 1), (1, 5)),
    ("need_attention", (3, 3), (2, 3), (1, 5)),
    ("about_to_sleep", (3, 3), (1, 1), (1, 5)),
    ("cant_lose", (1, 1), (4, 5), (1, 5)),
    ("at_risk", (1, 2), (3, 5), (1, 5)),
    ("hibernating", (2, 2), (1, 2), (1, 5)),
    ("lost", (1, 1), (1, 2), (1, 5)),
]


def segment_case() -> str:
    arms = " ".join(
        f"WHEN r BETWEEN {r[0]} AND {r[1]} AND f BETWEEN {f[0]} AND {f[1]} "
        f"AND m BETWEEN {m[0]} AND {m[1]} THEN '{name}'"
        for name, r, f, m in RULES
    )
    return f"CASE {arms} ELSE 'other' END"


# Which orders count (crm-core analytics::order_counts and the account statistics): live, not
# cancelled (a missing status counts), of a live account; monetary = Σ (total − tax_total) of the
# orders with a total; frequency = every counted order; recency = the latest ordered_at.
RFM_SQL = f"""
WITH m AS (
    SELECT o.account_id AS id, max(o.ordered_at) AS last, count(*) AS n,
           sum(o.total - coalesce(o.tax_total, 0)) AS net
    FROM orders o
    WHERE o.deleted_at IS NULL AND o.status IS DISTINCT FROM 'cancelled'
      AND o.account_id IN (SELECT id FROM accounts WHERE deleted_at IS NULL)
    GROUP BY o.account_id
    HAVING count(o.total) > 0
), s AS (
    SELECT id,
           ntile(5) OVER (ORDER BY last, id) AS r,
           ntile(5) OVER (ORDER BY n, id) AS f,
           ntile(5) OVER (ORDER BY net, id) AS m
    FROM m
)
SELECT id, r, f, m, {segment_case()} AS segment FROM s
"""

PROFIT_SQL = f"""
WITH rfm AS ({RFM_SQL}),
l AS (
    SELECT coalesce(rfm.segment, 'no_rfm') AS segment, ol.product_id, ol.quantity,
           round(ol.quantity * ol.unit_price, 2) AS gross, ol.discount_percent, ol.unit_cost
    FROM order_lines ol
    JOIN orders o ON o.id = ol.order_id
    LEFT JOIN rfm ON rfm.id = o.account_id
    WHERE o.deleted_at IS NULL AND o.status IS DISTINCT FROM 'cancelled'
      AND o.ordered_at >= $start AND o.ordered_at < $end
)
SELECT segment, product_id, sum(quantity) AS quantity,
       sum(gross - round(gross * discount_percent * 0.01, 2)) AS revenue,
       sum(coalesce(unit_cost, 0) * quantity) AS cost,
       revenue - cost AS margin,
       count(*) FILTER (WHERE unit_cost IS NULL) AS lines_without_cost
FROM l
GROUP BY segment, product_id
ORDER BY margin DESC, segment, product_id
"""


def arrow(result: Any) -> pa.Table:
    """The result as an Arrow table (the method's name changed in DuckDB 2)."""
    f = getattr(result, "to_arrow_table", None) or result.fetch_arrow_table
    return f()


def micros(t: datetime) -> int:
    return (t - EPOCH) // timedelta(microseconds=1)


def uuid_of(b: bytes) -> str:
    return str(uuid.UUID(bytes=b))


def timed(repeat: int, f: Callable[[], Any]) -> tuple[list[float], Any]:
    out, times = None, []
    for _ in range(repeat):
        t = time.perf_counter()
        out = f()
        times.append(time.perf_counter() - t)
    return times, out


def summary(times: list[float]) -> dict[str, Any]:
    return {"median_s": statistics.median(times), "min_s": min(times), "times_s": times}


# ----------------------------------------------------------------------------- loading


def load(path: str) -> dict[str, Any]:
    """The rows of the sales data set as Arrow tables (ids as 16-byte blobs, amounts as integers
    × 10⁴, decimals of the lines as text). Rows are fetched and converted a chunk at a time, so the
    Python objects of one chunk are alive at once (10⁷ orders fit in memory)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)

    def fetch(sql: str, names: list[str], types: list[pa.DataType], keep=None) -> pa.Table:
        cur = db.execute(sql)
        schema = pa.schema(list(zip(names, types)))
        batches = []
        while rows := cur.fetchmany(250_000):
            if keep is not None:
                rows = [keep(r) for r in rows]
            batches.append(
                pa.record_batch([pa.array([r[i] for r in rows], type=t) for i, t in enumerate(types)], schema=schema)
            )
        return pa.Table.from_batches(batches, schema=schema)

    accounts = fetch(
        "SELECT id, deleted_at FROM accounts WHERE tenant_id = 'bench'",
        ["id", "deleted_at"],
        [pa.binary(), pa.int64()],
    )
    currencies: set[str] = set()

    def order_row(r: tuple) -> tuple:
        if r[5] is not None:
            currencies.add(r[5])
        return r[:5] + r[6:]

    orders = fetch(
        "SELECT id, account_id, status, ordered_at, total, total_currency, tax_total, deleted_at "
        "FROM orders WHERE tenant_id = 'bench'",
        ["id", "account_id", "status", "ordered_at", "total", "tax_total", "deleted_at"],
        [pa.binary(), pa.binary(), pa.string(), pa.int64(), pa.int64(), pa.int64(), pa.int64()],
        keep=order_row,
    )
    assert len(currencies) <= 1, f"one currency expected, found {currencies}"
    lines = fetch(
        "SELECT o.id, CAST(l.key AS INTEGER), json_extract(l.value, '$.product_id'), "
        "CAST(json_extract(l.value, '$.quantity') AS TEXT), "
        "CAST(json_extract(l.value, '$.unit_price') AS TEXT), "
        "CAST(coalesce(json_extract(l.value, '$.discount_percent'), '0') AS TEXT), "
        "CAST(json_extract(l.value, '$.unit_cost') AS TEXT) "
        "FROM orders o, json_each(o.lines) l WHERE o.tenant_id = 'bench'",
        ["order_id", "line_no", "product_id", "quantity", "unit_price", "discount_percent", "unit_cost"],
        [pa.binary(), pa.int64(), pa.string(), pa.string(), pa.string(), pa.string(), pa.string()],
    )
    db.close()
    return {"accounts": accounts, "orders": orders, "lines": lines}


def load_duckdb(t: dict[str, Any]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    for name, table in t.items():
        con.register(f"src_{name}", table)
    con.execute("CREATE TABLE accounts AS SELECT id, deleted_at FROM src_accounts")
    con.execute("CREATE TABLE orders AS SELECT * FROM src_orders")
    con.execute(
        "CREATE TABLE order_lines AS SELECT order_id, line_no, product_id, "
        "CAST(quantity AS DECIMAL(18,4)) AS quantity, CAST(unit_price AS DECIMAL(18,4)) AS unit_price, "
        "CAST(discount_percent AS DECIMAL(18,4)) AS discount_percent, "
        "CAST(unit_cost AS DECIMAL(18,4)) AS unit_cost FROM src_lines"
    )
    for name in t:
        con.unregister(f"src_{name}")
    return con


def frames(t: dict[str, Any]) -> dict[str, Any]:
    """The orders (and live accounts) as pandas and polars frames, ids as 32-digit hex text (which
    sorts as the bytes do). Built column by column through polars (no Python object per value)."""
    o = pl.from_arrow(t["orders"]).select(
        pl.col("account_id").bin.encode("hex").alias("account"),
        "status",
        "ordered_at",
        "total",
        "tax_total",
        "deleted_at",
    )
    live = (
        pl.from_arrow(t["accounts"])
        .filter(pl.col("deleted_at").is_null())
        .select(pl.col("id").bin.encode("hex").alias("account"))
        .to_series()
    )
    df = o.to_arrow().to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
    if not df["ordered_at"].hasnans:
        df["ordered_at"] = df["ordered_at"].astype("int64")
    return {
        "pandas": (df, pd.Index(live.to_arrow().to_pandas())),
        "polars": (o, live),
    }


# ----------------------------------------------------------------------------- pandas, polars


def ntile_of_positions(k: int) -> np.ndarray:
    """SQL NTILE(5) of rows 0..k-1 already in order: the first k % 5 tiles hold one row more."""
    q, r = divmod(k, 5)
    pos = np.arange(k)
    big = r * (q + 1)
    return np.where(pos < big, pos // (q + 1), r + (pos - big) // max(q, 1)) + 1


def segments_np(r: np.ndarray, f: np.ndarray, m: np.ndarray) -> np.ndarray:
    conds = [
        (r >= rr[0]) & (r <= rr[1]) & (f >= ff[0]) & (f <= ff[1]) & (m >= mm[0]) & (m <= mm[1])
        for _, rr, ff, mm in RULES
    ]
    return np.select(conds, [name for name, *_ in RULES], default="other")


def rfm_pandas(df: pd.DataFrame, live: pd.Index) -> pd.DataFrame:
    o = df[df["deleted_at"].isna() & (df["status"] != "cancelled") & df["account"].isin(live)]
    o = o.assign(net=o["total"] - o["tax_total"].fillna(0))
    g = o.groupby("account", sort=False).agg(
        last=("ordered_at", "max"), n=("ordered_at", "size"), net=("net", "sum"), priced=("total", "count")
    )
    g = g[g["priced"] > 0].reset_index()
    for col, score in (("last", "r"), ("n", "f"), ("net", "m")):
        order = g.sort_values([col, "account"], kind="stable").index.to_numpy()
        tiles = np.empty(len(g), dtype=np.int64)
        tiles[order] = ntile_of_positions(len(g))
        g[score] = tiles
    g["segment"] = segments_np(g["r"].to_numpy(), g["f"].to_numpy(), g["m"].to_numpy())
    return g[["account", "r", "f", "m", "segment"]]


def rfm_polars(df: pl.DataFrame, live: pl.Series) -> pl.DataFrame:
    g = (
        df.lazy()
        .filter(
            pl.col("deleted_at").is_null()
            & pl.col("status").ne_missing("cancelled")
            & pl.col("account").is_in(live.implode())
        )
        .group_by("account")
        .agg(
            pl.col("ordered_at").max().alias("last"),
            pl.len().alias("n"),
            (pl.col("total") - pl.col("tax_total").fill_null(0)).sum().alias("net"),
            pl.col("total").count().alias("priced"),
        )
        .filter(pl.col("priced") > 0)
        .collect()
    )
    k = len(g)
    q, rem = divmod(k, 5)
    big = rem * (q + 1)

    def tile(col: str, name: str) -> pl.DataFrame:
        pos = pl.int_range(0, pl.len())
        t = pl.when(pos < big).then(pos // (q + 1)).otherwise(rem + (pos - big) // max(q, 1)) + 1
        return g.select("account", col).sort([col, "account"]).select("account", t.alias(name))

    out = tile("last", "r").join(tile("n", "f"), on="account").join(tile("net", "m"), on="account")
    r, f, m = (pl.col(c) for c in "rfm")
    seg = pl.lit("other")
    for name, rr, ff, mm in reversed(RULES):
        seg = (
            pl.when(r.is_between(*rr) & f.is_between(*ff) & m.is_between(*mm))
            .then(pl.lit(name))
            .otherwise(seg)
        )
    return out.with_columns(seg.alias("segment"))


# ----------------------------------------------------------------------------- checks


def compare_rfm(name: str, got: dict[str, tuple], want: dict[str, tuple], problems: list[str]) -> None:
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    differ = sorted(k for k in set(got) & set(want) if got[k] != want[k])
    for k in missing[:20]:
        problems.append(f"{name}: customer {k} missing (DuckDB: r,f,m,segment = {want[k]})")
    for k in extra[:20]:
        problems.append(f"{name}: customer {k} not scored by DuckDB ({got[k]})")
    for k in differ[:50]:
        problems.append(f"{name}: customer {k}: {got[k]} vs DuckDB {want[k]}")
    if missing or extra or differ:
        problems.append(
            f"{name}: {len(missing)} missing, {len(extra)} extra, {len(differ)} with other scores "
            f"(of {len(want)} DuckDB rows)"
        )


def counts(rows: dict[str, tuple]) -> dict[str, int]:
    c: dict[str, int] = {}
    for v in rows.values():
        c[v[3]] = c.get(v[3], 0) + 1
    return dict(sorted(c.items()))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", help="the JSON printed by the sales_data bin, or a file holding it")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    if args.data is None:
        root = os.path.join(os.path.dirname(__file__), "..", "..")
        text = subprocess.run(
            ["cargo", "run", "--quiet", "--profile", "bench", "-p", "crm-benches", "--bin", "sales_data"],
            cwd=root, check=True, capture_output=True, text=True,
        ).stdout
    elif os.path.exists(args.data):
        with open(args.data) as f:
            text = f.read()
    else:
        text = args.data
    data = json.loads(text.strip().splitlines()[-1])
    path, n = data["path"], data["n"]

    t0 = time.perf_counter()
    tables = load(path)
    con = load_duckdb(tables)
    fr = frames(tables)
    load_s = time.perf_counter() - t0
    n_orders, n_lines = tables["orders"].num_rows, tables["lines"].num_rows
    print(f"sales data: {n} customers, {n_orders} orders, {n_lines} lines; loaded in {load_s:.1f} s")
    del tables

    crm = Crm.open(path)
    admin = crm.session(data["tenant"], data["admin"])
    rep = args.repeat
    problems: list[str] = []
    out: dict[str, Any] = {
        "n": n,
        "orders": n_orders,
        "lines": n_lines,
        "load_s": load_s,
        "repeat": rep,
        "versions": {
            "duckdb": duckdb.__version__,
            "pandas": pd.__version__,
            "polars": pl.__version__,
            "python": sys.version.split()[0],
        },
        "duckdb_threads": con.execute("SELECT current_setting('threads')").fetchall()[0][0],
    }

    # --- RFM
    ours_t, ours_rows = timed(rep, lambda: admin.rfm())
    cols_t, ours = timed(rep, lambda: admin.rfm().to_columns())
    frame_t, ours_frame = timed(rep, lambda: admin.rfm().to_polars())
    duck_t, duck = timed(rep, lambda: arrow(con.sql(RFM_SQL)))
    duck_frame_t, _ = timed(rep, lambda: pl.from_arrow(arrow(con.sql(RFM_SQL))))
    pd_t, pdf = timed(rep, lambda: rfm_pandas(*fr["pandas"]))
    pl_t, pld = timed(rep, lambda: rfm_polars(*fr["polars"]))
    want = {
        uuid_of(i): (r, f, m, s)
        for i, r, f, m, s in zip(*(duck[c].to_pylist() for c in ("id", "r", "f", "m", "segment")))
    }
    scored = ("account_id", "r", "f", "m", "segment")
    got = {a: (r, f, m, s) for a, r, f, m, s in zip(*(ours[c] for c in scored))}
    compare_rfm("crm_core rfm", got, want, problems)
    got_rows = {row.account_id: (row.r, row.f, row.m, row.segment) for row in ours_rows}
    compare_rfm("crm_core rfm (row objects)", got_rows, want, problems)
    got_frame = {a: (r, f, m, s) for a, r, f, m, s in ours_frame.select(*scored).iter_rows()}
    compare_rfm("crm_core rfm (polars)", got_frame, want, problems)
    hex_to_uuid = lambda h: str(uuid.UUID(hex=h))  # noqa: E731
    compare_rfm(
        "pandas",
        {hex_to_uuid(a): (int(r), int(f), int(m), s) for a, r, f, m, s in pdf.itertuples(index=False)},
        want, problems,
    )
    compare_rfm(
        "polars", {hex_to_uuid(a): (r, f, m, s) for a, r, f, m, s in pld.iter_rows()}, want, problems
    )
    out["rfm"] = {
        "customers": len(want),
        "segments": counts(want),
        "segments_crm": counts(got),
        "match": not any(p.startswith("crm_core") for p in problems),
        "crm_wheel": summary(ours_t),
        "crm_wheel_columns": summary(cols_t),
        "crm_wheel_polars": summary(frame_t),
        "duckdb": summary(duck_t),
        "duckdb_polars": summary(duck_frame_t),
        "pandas": summary(pd_t),
        "polars": summary(pl_t),
    }

    # --- profit by RFM segment × product, last three months
    now = crm.now()
    start, end = now - timedelta(days=91), now
    ours_t, prof_rows = timed(rep, lambda: admin.profit(start, end, by="rfm"))
    prof = prof_rows.to_columns()
    params = {"start": micros(start), "end": micros(end)}
    duck_t, dprof = timed(rep, lambda: con.execute(PROFIT_SQL, params).fetchall())
    cents = Decimal("0.0001")

    def norm(seg: str, pid: Any, q: Any, rev: Any, cost: Any, margin: Any, nc: int) -> tuple:
        return (seg, pid, Decimal(q).quantize(cents), Decimal(rev).quantize(cents),
                Decimal(cost).quantize(cents), Decimal(margin).quantize(cents), int(nc))

    want_p = [norm(*r) for r in dprof]
    names = ("segment", "product_id", "quantity", "revenue", "cost", "margin", "lines_without_cost")
    got_p = [norm(*r) for r in zip(*(prof[c] for c in names))]
    got_p_rows = [
        norm(p.segment, p.product_id, p.quantity, p.revenue.amount, p.cost.amount, p.margin.amount,
             p.lines_without_cost)
        for p in prof_rows
    ]
    if got_p_rows != got_p:
        problems.append("crm_core profit: the row objects differ from the columns")
    if got_p != want_p:
        gs, ws = set(got_p), set(want_p)
        for r in sorted(gs - ws)[:20]:
            problems.append(f"crm_core profit row not in DuckDB's: {r}")
        for r in sorted(ws - gs)[:20]:
            problems.append(f"DuckDB profit row not in crm_core's: {r}")
        problems.append(
            f"crm_core profit: {len(got_p)} rows vs DuckDB {len(want_p)}"
            + ("; same rows, other order" if gs == ws else "")
        )
    out["profit"] = {
        "rows": len(want_p),
        "match": got_p == want_p and got_p_rows == got_p,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "crm_wheel": summary(ours_t),
        "duckdb": summary(duck_t),
    }
    out["problems"] = problems

    def line(name: str, sec: dict[str, Any], base: dict[str, Any], vs: str = "DuckDB") -> str:
        return (f"  {name:17}{sec['median_s'] * 1e3:10.1f} ms{sec['min_s'] * 1e3:10.1f} ms"
                f"{sec['median_s'] / base['median_s']:10.2f}x {vs}")

    r, p = out["rfm"], out["profit"]
    print(f"RFM, {r['customers']} customers (median, min of {rep}):")
    for k in ("crm_wheel", "crm_wheel_columns", "duckdb", "pandas", "polars"):
        print(line(k, r[k], r["duckdb"]))
    print("RFM into a polars DataFrame:")
    for k in ("crm_wheel_polars", "duckdb_polars"):
        print(line(k, r[k], r["duckdb_polars"], "DuckDB into polars"))
    print(f"  segments: {r['segments']}")
    print(f"profit by RFM segment x product, {p['start']} .. {p['end']}, {p['rows']} rows:")
    for k in ("crm_wheel", "duckdb"):
        print(line(k, p[k], p["duckdb"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    if problems:
        print("DIFFERENCES:", *problems, sep="\n  ")
        sys.exit(1)
    print("RFM scores and profit rows equal DuckDB's.")


if __name__ == "__main__":
    main()
