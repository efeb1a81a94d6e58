//! Store-side aggregates for analytics: one SQL `GROUP BY` over the order lines (`json_each`), with the
//! order query (tenant, permission predicate, period) compiled as usual, bound parameters only. The
//! database groups identical line attributes and counts them; the exact decimal arithmetic stays in
//! Rust (SQLite has no exact decimals).

use crm_core::analytics::LineGroup;
use crm_core::{CrmError, Decimal, EntityKind, Query, RecordId, Result};
use rusqlite::{params_from_iter, Connection};

use crate::compile;

fn storage(e: rusqlite::Error) -> CrmError {
    CrmError::storage(e.to_string())
}

fn dec(v: Option<String>, what: &str) -> Result<Option<Decimal>> {
    v.map(|s| {
        s.parse::<Decimal>()
            .map_err(|_| CrmError::storage(format!("stored order line has a bad {what}")))
    })
    .transpose()
}

/// See [`crm_core::ReadTx::order_line_groups`].
pub(crate) fn order_line_groups(conn: &Connection, q: &Query) -> Result<Vec<LineGroup>> {
    if q.kind != EntityKind::Order {
        return Err(CrmError::invalid_query(
            None,
            "kind",
            "order line aggregates run over orders",
        ));
    }
    let mut q = q.clone();
    q.sort = None;
    q.after = None;
    q.limit = None;
    q.fields = Some(vec!["account_id", "currency", "lines"]);
    let inner = compile::select(&q)?;
    // Decimals are stored as JSON strings; `CAST(… AS TEXT)` keeps numbers written by hand readable too.
    let sql = format!(
        "SELECT o.account_id, o.currency, \
           json_extract(l.value, '$.product_id') AS p, \
           min(coalesce(json_extract(l.value, '$.description'), '')), \
           CAST(json_extract(l.value, '$.quantity') AS TEXT) AS q, \
           CAST(json_extract(l.value, '$.unit_price') AS TEXT) AS u, \
           CAST(coalesce(json_extract(l.value, '$.discount_percent'), '0') AS TEXT) AS d, \
           CAST(json_extract(l.value, '$.unit_cost') AS TEXT) AS c, \
           count(*) \
         FROM ({}) AS o, json_each(o.lines) AS l \
         GROUP BY o.account_id, o.currency, p, q, u, d, c",
        inner.sql
    );
    let mut st = conn.prepare(&sql).map_err(storage)?;
    let mut rows = st
        .query(params_from_iter(inner.params.iter()))
        .map_err(storage)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(storage)? {
        let account: Option<Vec<u8>> = r.get(0).map_err(storage)?;
        let account_id = match account {
            Some(b) => {
                Some(RecordId::from_bytes(b.try_into().map_err(|_| {
                    CrmError::storage("stored account id is not 16 bytes")
                })?))
            }
            None => None,
        };
        let product: Option<String> = r.get(2).map_err(storage)?;
        let product_id = match product {
            Some(p) => Some(
                p.parse()
                    .map_err(|_| CrmError::storage("stored order line has a bad product id"))?,
            ),
            None => None,
        };
        let lines: i64 = r.get(8).map_err(storage)?;
        out.push(LineGroup {
            account_id,
            currency: r
                .get::<_, Option<String>>(1)
                .map_err(storage)?
                .unwrap_or_default(),
            product_id,
            description: r.get(3).map_err(storage)?,
            quantity: dec(r.get(4).map_err(storage)?, "quantity")?.unwrap_or_default(),
            unit_price: dec(r.get(5).map_err(storage)?, "unit price")?.unwrap_or_default(),
            discount_percent: dec(r.get(6).map_err(storage)?, "discount")?.unwrap_or_default(),
            unit_cost: dec(r.get(7).map_err(storage)?, "unit cost")?,
            lines: u64::try_from(lines).unwrap_or(0),
        });
    }
    Ok(out)
}
