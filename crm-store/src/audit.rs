//! The audit log and the outbox tables.

use crm_core::backend::AuditQuery;
use crm_core::{AuditEntry, CrmError, Event, NewEvent, Operation, Origin, Result, TenantId};
use rusqlite::types::Value as Sql;
use rusqlite::{params, params_from_iter, Connection, Row};

use crate::codec::{blob_id, corrupt, int_to_ts, storage, ts_to_int};

fn seq_param(seq: u64) -> Result<i64> {
    i64::try_from(seq)
        .map_err(|_| CrmError::validation("seq", "range", "sequence number out of range"))
}

pub(crate) fn append(conn: &Connection, e: &AuditEntry) -> Result<()> {
    let changes = serde_json::to_string(&e.changes)
        .map_err(|_| CrmError::internal("json encoding failed"))?;
    let mut st = conn
        .prepare_cached(
            "INSERT INTO audit_log (tenant_id, seq, at, user_id, origin_client, origin_address, \
             origin_location, operation, kind, record_id, version, changes, comment, prev_hash, hash) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .map_err(storage)?;
    st.execute(params![
        e.tenant.as_str(),
        seq_param(e.seq)?,
        ts_to_int(e.at),
        e.user_id.as_bytes().as_slice(),
        e.origin.client,
        e.origin.address,
        e.origin.location,
        e.operation.name(),
        e.kind.name(),
        e.record_id.as_bytes().as_slice(),
        e.version,
        changes,
        e.comment,
        e.prev_hash,
        e.hash,
    ])
    .map_err(|err| match &err {
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            CrmError::conflict(
                "audit",
                "audit_seq",
                "an audit entry with this sequence number exists",
            )
        }
        _ => storage(err),
    })?;
    Ok(())
}

fn decode_entry(tenant: &TenantId, r: &Row<'_>) -> Result<AuditEntry> {
    let text = |i: usize| r.get::<_, String>(i).map_err(storage);
    let operation: Operation = serde_json::from_value(serde_json::Value::String(text(6)?))
        .map_err(|_| corrupt("audit operation"))?;
    Ok(AuditEntry {
        tenant: tenant.clone(),
        seq: r.get::<_, u64>(0).map_err(storage)?,
        at: int_to_ts(r.get(1).map_err(storage)?)?,
        user_id: blob_id(&r.get::<_, Vec<u8>>(2).map_err(storage)?)?,
        origin: Origin {
            client: r.get(3).map_err(storage)?,
            address: r.get(4).map_err(storage)?,
            location: r.get(5).map_err(storage)?,
        },
        operation,
        kind: text(7)?.parse().map_err(|_| corrupt("audit kind"))?,
        record_id: blob_id(&r.get::<_, Vec<u8>>(8).map_err(storage)?)?,
        version: r.get(9).map_err(storage)?,
        changes: serde_json::from_str(&text(10)?).map_err(|_| corrupt("audit changes"))?,
        comment: r.get(11).map_err(storage)?,
        prev_hash: text(12)?,
        hash: text(13)?,
    })
}

pub(crate) fn read(conn: &Connection, q: &AuditQuery) -> Result<Vec<AuditEntry>> {
    let mut sql = String::from(
        "SELECT seq, at, user_id, origin_client, origin_address, origin_location, operation, kind, \
         record_id, version, changes, comment, prev_hash, hash FROM audit_log WHERE tenant_id = ?",
    );
    let mut p = vec![Sql::Text(q.tenant.as_str().to_owned())];
    if let Some((kind, id)) = &q.record {
        sql.push_str(" AND kind = ? AND record_id = ?");
        p.push(Sql::Text(kind.name().to_owned()));
        p.push(Sql::Blob(id.as_bytes().to_vec()));
    }
    if let Some(user) = &q.user {
        sql.push_str(" AND user_id = ?");
        p.push(Sql::Blob(user.as_bytes().to_vec()));
    }
    if let Some(from) = q.from {
        sql.push_str(" AND at >= ?");
        p.push(Sql::Integer(ts_to_int(from)));
    }
    if let Some(until) = q.until {
        sql.push_str(" AND at < ?");
        p.push(Sql::Integer(ts_to_int(until)));
    }
    if let Some(s) = q.before_seq {
        sql.push_str(" AND seq < ?");
        p.push(Sql::Integer(seq_param(s)?));
    }
    if let Some(s) = q.after_seq {
        sql.push_str(" AND seq > ?");
        p.push(Sql::Integer(seq_param(s)?));
    }
    sql.push_str(if q.newest_first {
        " ORDER BY seq DESC"
    } else {
        " ORDER BY seq"
    });
    if let Some(limit) = q.limit {
        sql.push_str(" LIMIT ?");
        p.push(Sql::Integer(i64::from(limit)));
    }
    let mut st = conn.prepare_cached(&sql).map_err(storage)?;
    let mut rows = st.query(params_from_iter(p.iter())).map_err(storage)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(storage)? {
        out.push(decode_entry(&q.tenant, r)?);
    }
    Ok(out)
}

pub(crate) fn head(conn: &Connection, tenant: &TenantId) -> Result<Option<(u64, String)>> {
    let mut st = conn
        .prepare_cached(
            "SELECT seq, hash FROM audit_log WHERE tenant_id = ? ORDER BY seq DESC LIMIT 1",
        )
        .map_err(storage)?;
    let mut rows = st.query(params![tenant.as_str()]).map_err(storage)?;
    match rows.next().map_err(storage)? {
        Some(r) => Ok(Some((
            r.get::<_, u64>(0).map_err(storage)?,
            r.get(1).map_err(storage)?,
        ))),
        None => Ok(None),
    }
}

pub(crate) fn append_event(conn: &Connection, e: &NewEvent) -> Result<u64> {
    let payload = serde_json::to_string(&e.payload)
        .map_err(|_| CrmError::internal("json encoding failed"))?;
    let mut st = conn
        .prepare_cached(
            "INSERT INTO outbox (tenant_id, at, event_type, kind, record_id, user_id, payload) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .map_err(storage)?;
    st.execute(params![
        e.tenant.as_str(),
        ts_to_int(e.at),
        e.event_type,
        e.kind.name(),
        e.record_id.as_bytes().as_slice(),
        e.user_id.as_bytes().as_slice(),
        payload,
    ])
    .map_err(storage)?;
    u64::try_from(conn.last_insert_rowid()).map_err(|_| CrmError::internal("negative outbox seq"))
}

pub(crate) fn pending_events(
    conn: &Connection,
    tenant: &TenantId,
    after_seq: u64,
    limit: u32,
) -> Result<Vec<Event>> {
    let mut st = conn
        .prepare_cached(
            "SELECT seq, at, event_type, kind, record_id, user_id, payload FROM outbox \
             WHERE tenant_id = ? AND delivered_at IS NULL AND seq > ? ORDER BY seq LIMIT ?",
        )
        .map_err(storage)?;
    let mut rows = st
        .query(params![tenant.as_str(), seq_param(after_seq)?, limit])
        .map_err(storage)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(storage)? {
        out.push(Event {
            tenant: tenant.clone(),
            seq: r.get::<_, u64>(0).map_err(storage)?,
            at: int_to_ts(r.get(1).map_err(storage)?)?,
            event_type: r.get(2).map_err(storage)?,
            kind: r
                .get::<_, String>(3)
                .map_err(storage)?
                .parse()
                .map_err(|_| corrupt("event kind"))?,
            record_id: blob_id(&r.get::<_, Vec<u8>>(4).map_err(storage)?)?,
            user_id: blob_id(&r.get::<_, Vec<u8>>(5).map_err(storage)?)?,
            payload: serde_json::from_str(&r.get::<_, String>(6).map_err(storage)?)
                .map_err(|_| corrupt("event payload"))?,
        });
    }
    Ok(out)
}

pub(crate) fn ack_events(conn: &Connection, tenant: &TenantId, seqs: &[u64]) -> Result<u64> {
    let now = ts_to_int(chrono::Utc::now());
    let mut st = conn
        .prepare_cached(
            "UPDATE outbox SET delivered_at = ? \
             WHERE tenant_id = ? AND seq = ? AND delivered_at IS NULL",
        )
        .map_err(storage)?;
    let mut n = 0u64;
    for s in seqs {
        n += st
            .execute(params![now, tenant.as_str(), seq_param(*s)?])
            .map_err(storage)? as u64;
    }
    Ok(n)
}
