//! Export of one tenant as JSON Lines and import into an empty database: every record (trash
//! included, custom values by storage key), the configuration (roles, custom fields, shares, rules —
//! they are records too), the whole audit chain and the pending outbox events.
//!
//! Lines, in order: a `header`, then `record` lines (entity type by entity type, by id), `audit`
//! lines (by sequence number), `event` lines, and an `end` line with the counts. Memory stays flat:
//! records are read a page at a time.

use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};

use crate::audit::{verify_chain, AuditEntry};
use crate::error::{CrmError, Result};
use crate::events::{Event, NewEvent};
use crate::id::{RecordId, TenantId};
use crate::query::{Column, Cond, Liveness, MetaColumn, Op, Query};
use crate::record::Record;
use crate::schema::EntityKind;
use crate::store::AuditQuery;
use crate::value::Value;

use super::door::Why;
use super::{Context, Engine};

const FORMAT: &str = "crm-tenant-export";
const VERSION: u32 = 1;
const PAGE: u32 = 1000;

/// One line of an export.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Line {
    Header {
        format: String,
        version: u32,
        tenant: TenantId,
        exported_at: chrono::DateTime<chrono::Utc>,
    },
    Record {
        record: Record,
    },
    Audit {
        entry: AuditEntry,
    },
    Event {
        event: Event,
    },
    End {
        records: u64,
        audit: u64,
        events: u64,
    },
}

/// What an export or import moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferSummary {
    /// Records (of every type, trash included).
    pub records: u64,
    /// Audit entries.
    pub audit: u64,
    /// Pending outbox events.
    pub events: u64,
}

fn io_error(e: std::io::Error) -> CrmError {
    CrmError::storage(format!("export stream: {e}")).with_rule("io")
}

impl Engine {
    /// Writes the whole tenant to `out` as JSON Lines: every record with every field, the whole
    /// audit trail and the pending outbox events, for moving a tenant to another database. A host
    /// operation (no acting user: nothing is redacted). `progress` is called with the number of
    /// lines written so far.
    pub(crate) fn export_tenant(
        &self,
        tenant: &TenantId,
        out: &mut dyn Write,
        progress: &mut dyn FnMut(u64),
    ) -> Result<TransferSummary> {
        let cache = self.tenant_cache(tenant)?;
        let mut sum = TransferSummary::default();
        let mut lines = 0u64;
        let mut write = |line: &Line, out: &mut dyn Write| -> Result<()> {
            serde_json::to_writer(&mut *out, line)
                .map_err(|e| CrmError::internal(format!("export encoding: {e}")))?;
            out.write_all(b"\n").map_err(io_error)?;
            lines += 1;
            if lines % 1000 == 0 {
                progress(lines);
            }
            Ok(())
        };
        write(
            &Line::Header {
                format: FORMAT.into(),
                version: VERSION,
                tenant: tenant.clone(),
                exported_at: self.now(),
            },
            out,
        )?;
        // One read snapshot for the whole export, so records, audit and events agree.
        let snapshot = self.door().read()?;
        let tx = snapshot.unscoped(Why::Host);
        for &kind in EntityKind::ALL {
            let mut after: Option<RecordId> = None;
            loop {
                let mut q = Query::all(kind, tenant.clone());
                q.liveness = Liveness::Any;
                q.limit = Some(PAGE);
                q.custom_types = cache.customs.types(kind);
                if let Some(a) = after {
                    q.cond = Cond::Compare(Column::Meta(MetaColumn::Id), Op::Gt, Value::Ref(a));
                }
                let rows = tx.query(&q)?;
                let n = rows.len();
                for r in rows {
                    after = Some(r.meta.id);
                    write(&Line::Record { record: r }, out)?;
                    sum.records += 1;
                }
                if n < PAGE as usize {
                    break;
                }
            }
        }
        let mut after_seq = 0u64;
        loop {
            let mut q = AuditQuery::tenant(tenant.clone());
            q.after_seq = Some(after_seq);
            q.limit = Some(PAGE);
            let rows = tx.audit(&q)?;
            let n = rows.len();
            for e in rows {
                after_seq = e.seq;
                write(&Line::Audit { entry: e }, out)?;
                sum.audit += 1;
            }
            if n < PAGE as usize {
                break;
            }
        }
        let mut after_event = 0u64;
        loop {
            let rows = tx.pending_events(tenant, after_event, PAGE)?;
            let n = rows.len();
            for e in rows {
                after_event = e.seq;
                write(&Line::Event { event: e }, out)?;
                sum.events += 1;
            }
            if n < PAGE as usize {
                break;
            }
        }
        write(
            &Line::End {
                records: sum.records,
                audit: sum.audit,
                events: sum.events,
            },
            out,
        )?;
        out.flush().map_err(io_error)?;
        progress(lines);
        Ok(sum)
    }

    /// Reads an export into this database, whose tenant must be empty (no users, no audit entries):
    /// records keep their ids, versions and history; the audit chain is checked before anything is
    /// committed; everything is one transaction. Like [`Engine::bootstrap`] it needs no acting user — the
    /// export brings its own users. `progress` is called with the number of lines read so far.
    pub(crate) fn import_tenant(
        &self,
        input: &mut dyn BufRead,
        progress: &mut dyn FnMut(u64),
    ) -> Result<TransferSummary> {
        let mut buf = String::new();
        let mut read_line = |buf: &mut String| -> Result<Option<Line>> {
            buf.clear();
            let read = input.read_line(buf).map_err(|e| {
                if e.kind() == std::io::ErrorKind::InvalidData {
                    CrmError::validation("import", "line_syntax", "the export is not UTF-8 text")
                } else {
                    io_error(e)
                }
            })?;
            if read == 0 {
                return Ok(None);
            }
            serde_json::from_str(buf.trim_end()).map(Some).map_err(|e| {
                CrmError::validation(
                    "import",
                    "line_syntax",
                    format!("malformed export line: {e}"),
                )
            })
        };
        let tenant = match read_line(&mut buf)? {
            Some(Line::Header {
                format,
                version,
                tenant,
                ..
            }) if format == FORMAT && version <= VERSION => tenant,
            _ => {
                return Err(CrmError::validation(
                    "import",
                    "header",
                    "not a tenant export of a known version",
                ))
            }
        };
        let ctx = Context::new(tenant.clone(), RecordId::nil());
        let mut uow = self.begin(&ctx, self.now())?;
        if !super::load_all(uow.tx.unscoped(Why::Host), EntityKind::User, &tenant)?.is_empty()
            || uow.tx.audit_head(&tenant)?.is_some()
        {
            return Err(CrmError::conflict(
                "tenant",
                "not_empty",
                "import needs a tenant with no data",
            ));
        }
        let mut sum = TransferSummary::default();
        let mut entries: Vec<AuditEntry> = Vec::new();
        let mut lines = 1u64;
        let mut ended = false;
        while let Some(line) = read_line(&mut buf)? {
            lines += 1;
            if lines % 1000 == 0 {
                progress(lines);
            }
            match line {
                Line::Record { record } => {
                    if record.meta.tenant != tenant {
                        return Err(CrmError::validation(
                            "import",
                            "tenant",
                            "a record belongs to another tenant",
                        ));
                    }
                    uow.tx.insert(&record)?;
                    if record.meta.kind == EntityKind::CustomField
                        && record.meta.deleted_at.is_none()
                    {
                        if let (Some(entity), Some(key), Ok(ty)) = (
                            record
                                .text("entity")
                                .and_then(|e| e.parse::<EntityKind>().ok()),
                            record.text("key"),
                            crate::custom_field::type_of(&record),
                        ) {
                            uow.tx.index_custom_field(entity, key, &ty)?;
                        }
                    }
                    sum.records += 1;
                }
                Line::Audit { entry } => {
                    if entry.tenant != tenant {
                        return Err(CrmError::validation(
                            "import",
                            "tenant",
                            "an audit entry belongs to another tenant",
                        ));
                    }
                    uow.tx.append_audit(&entry)?;
                    entries.push(entry);
                    sum.audit += 1;
                }
                Line::Event { event } => {
                    uow.tx.append_event(&NewEvent {
                        tenant: tenant.clone(),
                        at: event.at,
                        event_type: event.event_type,
                        kind: event.kind,
                        record_id: event.record_id,
                        user_id: event.user_id,
                        payload: event.payload,
                    })?;
                    sum.events += 1;
                }
                Line::End {
                    records,
                    audit,
                    events,
                } => {
                    if (records, audit, events) != (sum.records, sum.audit, sum.events) {
                        return Err(CrmError::validation(
                            "import",
                            "truncated",
                            "the export's counts do not match its lines",
                        ));
                    }
                    ended = true;
                    break;
                }
                Line::Header { .. } => {
                    return Err(CrmError::validation("import", "header", "a second header"))
                }
            }
        }
        if !ended {
            return Err(CrmError::validation(
                "import",
                "truncated",
                "the export ends before its last line",
            ));
        }
        let v = verify_chain(&entries);
        if !v.ok {
            return Err(CrmError::validation(
                "import",
                "audit_chain",
                format!(
                    "the export's audit chain is broken at entry {} ({})",
                    v.first_bad_seq.unwrap_or(0),
                    v.problem.unwrap_or_default()
                ),
            ));
        }
        // Each record must be what its own history says it is (when its whole history is there).
        let mut by_record: std::collections::BTreeMap<(EntityKind, RecordId), Vec<&AuditEntry>> =
            Default::default();
        for e in &entries {
            by_record.entry((e.kind, e.record_id)).or_default().push(e);
        }
        for ((kind, id), list) in by_record {
            let created = list.first().is_some_and(|e| {
                e.operation == crate::audit::Operation::Create
                    || e.operation == crate::audit::Operation::Configure
                    || e.operation == crate::audit::Operation::Share
            });
            let Some(stored) =
                uow.tx
                    .unscoped(Why::Host)
                    .get(kind, &tenant, id, &Default::default())?
            else {
                continue; // purged: only its history remains
            };
            if !created
                || list
                    .iter()
                    .any(|e| e.operation == crate::audit::Operation::Purge)
            {
                continue;
            }
            let owned: Vec<AuditEntry> = list.into_iter().cloned().collect();
            let replayed = super::audit_ops::replay(&stored.meta, &owned);
            // System fields include derived data (order statistics) maintained without audit entries:
            // compare the fields callers write.
            let visible = |m: &crate::value::Fields| -> crate::value::Fields {
                m.iter()
                    .filter(|(k, _)| !kind.schema().field(k).is_some_and(|s| s.system))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            };
            let same = replayed.is_some_and(|r| {
                visible(&r.fields) == visible(&stored.fields)
                    && r.meta.version == stored.meta.version
                    && r.meta.deleted_at.is_some() == stored.meta.deleted_at.is_some()
                    && r.custom.len() == stored.custom.len()
            });
            if !same {
                return Err(CrmError::validation(
                    "import",
                    "record_history",
                    format!("{kind} `{id}` does not match its audit history"),
                ));
            }
        }
        drop(entries);
        uow.tx.commit()?;
        self.invalidate(&tenant);
        progress(lines);
        Ok(sum)
    }
}
