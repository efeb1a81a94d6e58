//! Store-side reads for analytics: the order lines of an order query (tenant, permission
//! predicate, period; compiled as usual, bound parameters only), read in one statement and handed
//! over one at a time. The exact decimal arithmetic stays in Rust (SQLite has no exact decimals).
//!
//! The lines come from the `order_lines` table (migration 7), kept in step with `orders` by
//! triggers: a period is one key range of it, with no lookup of each order and no JSON parsing. A
//! query it cannot answer — one whose condition reads an order column the table does not carry, or
//! that does not bound `ordered_at` (orders without an order instant are not in the table) — reads
//! the orders' `lines` JSON instead (`json_each`), with the same expressions that fill the table,
//! so both give the same rows.
//!
//! The lines are not grouped here: a line's group would hold its order's account, so nearly every
//! line is a group of its own, and the caller groups them by what it reports on (segment ×
//! product) as they come. Nothing is collected: memory does not grow with the number of lines.

use crm_core::analytics::LineGroup;
use crm_core::backend::{Column, Cond, Query};
use crm_core::{CrmError, Decimal, EntityKind, RecordId, Result};
use rusqlite::types::ValueRef;
use rusqlite::{params_from_iter, Connection, Row};

use crate::codec::storage;
use crate::compile::{self, Stmt};
use crate::scope::ScopeNames;

/// The order columns `order_lines` carries under their names in `orders` (the tenant and
/// `deleted_at`, which every compiled query reads, among them).
const ORDER_COLUMNS: &[&str] = &[
    "tenant_id",
    "id",
    "owner_id",
    "deleted_at",
    "ordered_at",
    "status",
    "account_id",
    "currency",
];

/// The columns of a line row, in this order (the grouping key: every one but the description).
const LINE_ROW: &str =
    "account_id, currency, product_id, description, quantity, unit_price, discount_percent, unit_cost";

/// Whether `cond` only holds for orders with an order instant: it requires `ordered_at` to compare
/// with a value (a comparison with NULL is never true).
fn bounds_ordered_at(cond: &Cond) -> bool {
    let is_ordered_at =
        |col: &Column| matches!(col, Column::Builtin { name, .. } if *name == "ordered_at");
    match cond {
        Cond::False => true,
        Cond::Compare(col, ..) | Cond::In(col, _) => is_ordered_at(col),
        Cond::And(v) => v.iter().any(bounds_ordered_at),
        Cond::Or(v) => v.iter().all(bounds_ordered_at),
        _ => false,
    }
}

/// Whether the `order_lines` table answers `q` (an order query) alone.
fn lines_table_answers(q: &Query) -> bool {
    bounds_ordered_at(&q.cond) && compile::cond_reads_only(q.kind, &q.cond, ORDER_COLUMNS)
}

/// The statement reading the lines of the orders `q` matches, one row per line, columns
/// [`LINE_ROW`].
pub(crate) fn statement(q: &Query, scopes: &ScopeNames) -> Result<Stmt> {
    if q.kind != EntityKind::Order {
        return Err(CrmError::invalid_query(
            None,
            "kind",
            "order line aggregates run over orders",
        ));
    }
    if lines_table_answers(q) {
        let w = compile::where_only(q, scopes)?;
        return Ok(Stmt {
            sql: format!("SELECT {LINE_ROW} FROM order_lines {}", w.sql),
            params: w.params,
        });
    }
    let mut q = q.clone();
    q.sort = None;
    q.after = None;
    q.limit = None;
    q.fields = Some(vec!["account_id", "currency", "lines"]);
    let inner = compile::select(&q, scopes)?;
    // The expressions of migration 7, which fill `order_lines` (its TEXT columns turn numbers into
    // text as `CAST` does). Decimals are stored as JSON strings; `CAST(… AS TEXT)` keeps numbers
    // written by hand readable too.
    let sql = format!(
        "SELECT o.account_id, o.currency, \
           CAST(json_extract(l.value, '$.product_id') AS TEXT), \
           CAST(coalesce(json_extract(l.value, '$.description'), '') AS TEXT), \
           CAST(json_extract(l.value, '$.quantity') AS TEXT), \
           CAST(json_extract(l.value, '$.unit_price') AS TEXT), \
           CAST(coalesce(json_extract(l.value, '$.discount_percent'), '0') AS TEXT), \
           CAST(json_extract(l.value, '$.unit_cost') AS TEXT) \
         FROM ({}) AS o, json_each(o.lines) AS l",
        inner.sql
    );
    Ok(Stmt {
        sql,
        params: inner.params,
    })
}

fn bad(what: &str) -> CrmError {
    crate::error::failure(
        crate::error::CORRUPT,
        format!("stored order line has a bad {what}"),
    )
}

/// Column `i` of a line row: NULL, or the bytes of a value of the expected storage class (blob for
/// the account, text for the others).
fn bytes<'r>(row: &'r Row<'_>, i: usize, what: &str) -> Result<Option<&'r [u8]>> {
    match (i, row.get_ref(i).map_err(storage)?) {
        (_, ValueRef::Null) => Ok(None),
        (0, ValueRef::Blob(b)) => Ok(Some(b)),
        (1.., ValueRef::Text(t)) => Ok(Some(t)),
        _ => Err(bad(what)),
    }
}

fn text<'a>(b: &'a [u8], what: &str) -> Result<&'a str> {
    std::str::from_utf8(b).map_err(|_| bad(what))
}

fn dec(v: Option<&[u8]>, what: &str) -> Result<Option<Decimal>> {
    v.map(|b| text(b, what)?.parse::<Decimal>().map_err(|_| bad(what)))
        .transpose()
}

/// Fills `g` from one line row's columns (as [`bytes`] reads them), reusing its text buffers.
fn fill(g: &mut LineGroup, cols: &[Option<&[u8]>; 8]) -> Result<()> {
    let [account, currency, product, description, quantity, unit_price, discount, unit_cost] =
        *cols;
    g.account_id = match account {
        Some(b) => Some(RecordId::from_bytes(
            b.try_into().map_err(|_| bad("account id"))?,
        )),
        None => None,
    };
    g.product_id = match product {
        Some(b) => Some(
            text(b, "product id")?
                .parse()
                .map_err(|_| bad("product id"))?,
        ),
        None => None,
    };
    let set = |to: &mut String, v: Option<&[u8]>, what: &str| -> Result<()> {
        to.clear();
        if let Some(b) = v {
            to.push_str(text(b, what)?);
        }
        Ok(())
    };
    set(&mut g.currency, currency, "currency")?;
    set(&mut g.description, description, "description")?;
    g.quantity = dec(quantity, "quantity")?.unwrap_or_default();
    g.unit_price = dec(unit_price, "unit price")?.unwrap_or_default();
    g.discount_percent = dec(discount, "discount")?.unwrap_or_default();
    g.unit_cost = dec(unit_cost, "unit cost")?;
    g.lines = 1;
    Ok(())
}

/// The column names of a line row's columns, for error messages.
const WHAT: [&str; 8] = [
    "account id",
    "currency",
    "product id",
    "description",
    "quantity",
    "unit price",
    "discount",
    "unit cost",
];

/// See [`crm_core::backend::ReadTx::order_lines`]: each line alone (`lines` = 1).
pub(crate) fn order_lines(
    conn: &Connection,
    q: &Query,
    scopes: &ScopeNames,
    each: &mut dyn FnMut(&LineGroup) -> Result<()>,
) -> Result<()> {
    let Stmt { sql, params } = statement(q, scopes)?;
    let mut st = conn.prepare_cached(&sql).map_err(storage)?;
    let mut rows = st.query(params_from_iter(params.iter())).map_err(storage)?;
    let mut g = LineGroup {
        account_id: None,
        currency: String::new(),
        product_id: None,
        description: String::new(),
        quantity: Decimal::ZERO,
        unit_price: Decimal::ZERO,
        discount_percent: Decimal::ZERO,
        unit_cost: None,
        lines: 1,
    };
    while let Some(row) = rows.next().map_err(storage)? {
        let mut cols = [None; 8];
        for (i, c) in cols.iter_mut().enumerate() {
            *c = bytes(row, i, WHAT[i])?;
        }
        fill(&mut g, &cols)?;
        each(&g)?;
    }
    Ok(())
}
