//! Audit entries: who changed what, how, when and from where, chained by hash per tenant so that an
//! altered, removed or reordered entry is detected.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::id::{RecordId, TenantId};
use crate::schema::EntityKind;
use crate::value::{Fields, Value};

/// Where a request came from, as the host tells it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// The client application (`erp-desktop 7.2`).
    pub client: Option<String>,
    /// A network address.
    pub address: Option<String>,
    /// A place (`Milan office`, `call centre 3`).
    pub location: Option<String>,
}

/// What kind of change an audit entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// A record was created.
    Create,
    /// Fields were changed.
    Update,
    /// A record was moved to the trash.
    Delete,
    /// A record came back from the trash, or an earlier version was restored.
    Restore,
    /// A record was removed for good.
    Purge,
    /// A lifecycle transition.
    Transition,
    /// A record was shared or a share revoked.
    Share,
    /// Configuration changed (roles, custom fields, audit switches).
    Configure,
    /// Records were merged.
    Merge,
}

impl Operation {
    /// The stable lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::Delete => "delete",
            Operation::Restore => "restore",
            Operation::Purge => "purge",
            Operation::Transition => "transition",
            Operation::Share => "share",
            Operation::Configure => "configure",
            Operation::Merge => "merge",
        }
    }
}

/// The change of one field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldChange {
    /// The field (`custom.<name>` for custom fields).
    pub field: String,
    /// The value before.
    pub old: Value,
    /// The value after.
    pub new: Value,
}

/// One audit entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// The tenant.
    pub tenant: TenantId,
    /// Position in the tenant's chain, from 1.
    pub seq: u64,
    /// When (UTC).
    pub at: DateTime<Utc>,
    /// Who.
    pub user_id: RecordId,
    /// From where.
    pub origin: Origin,
    /// How.
    pub operation: Operation,
    /// The record's type.
    pub kind: EntityKind,
    /// The record.
    pub record_id: RecordId,
    /// The record's version after the change.
    pub version: i64,
    /// Field-level old → new values.
    pub changes: Vec<FieldChange>,
    /// A free comment (transition comments, purge reasons).
    pub comment: Option<String>,
    /// The previous entry's hash (empty for the first).
    pub prev_hash: String,
    /// SHA-256 over this entry's content and `prev_hash`.
    pub hash: String,
}

#[derive(Serialize)]
struct Hashed<'a> {
    tenant: &'a TenantId,
    seq: u64,
    at: i64,
    user_id: &'a RecordId,
    origin: &'a Origin,
    operation: Operation,
    kind: EntityKind,
    record_id: &'a RecordId,
    version: i64,
    changes: &'a [FieldChange],
    comment: &'a Option<String>,
    prev_hash: &'a str,
}

impl AuditEntry {
    /// The hash this entry should carry, from its content and `prev_hash`.
    pub fn compute_hash(&self) -> String {
        self.hash_with(&mut Vec::new())
    }

    /// [`AuditEntry::compute_hash`], serialising into `buf` (cleared first), so that a batch of
    /// entries reuses one buffer.
    pub(crate) fn hash_with(&self, buf: &mut Vec<u8>) -> String {
        let h = Hashed {
            tenant: &self.tenant,
            seq: self.seq,
            at: self.at.timestamp_micros(),
            user_id: &self.user_id,
            origin: &self.origin,
            operation: self.operation,
            kind: self.kind,
            record_id: &self.record_id,
            version: self.version,
            changes: &self.changes,
            comment: &self.comment,
            prev_hash: &self.prev_hash,
        };
        buf.clear();
        if serde_json::to_writer(&mut *buf, &h).is_err() {
            // Not reachable (every field serialises); hash what the former `to_vec` fallback did.
            buf.clear();
        }
        hex::encode(Sha256::digest(&buf[..]))
    }

    /// Sets `hash` from the content.
    pub fn seal(mut self) -> Self {
        self.hash = self.compute_hash();
        self
    }

    /// [`AuditEntry::seal`] serialising into `buf`.
    pub(crate) fn seal_with(mut self, buf: &mut Vec<u8>) -> Self {
        self.hash = self.hash_with(buf);
        self
    }
}

/// The field-level differences between two states; fields equal in both are left out.
/// Custom fields appear as `custom.<name>`.
pub fn diff(
    old_fields: &Fields,
    old_custom: &Fields,
    new_fields: &Fields,
    new_custom: &Fields,
) -> Vec<FieldChange> {
    let mut out = Vec::new();
    diff_maps(old_fields, new_fields, "", &mut out);
    diff_maps(old_custom, new_custom, "custom.", &mut out);
    out
}

fn diff_maps(old: &Fields, new: &Fields, prefix: &str, out: &mut Vec<FieldChange>) {
    use std::cmp::Ordering;
    let null = Value::Null;
    // Both maps iterate in name order: walk them side by side.
    let mut a = old.iter().peekable();
    let mut b = new.iter().peekable();
    loop {
        let order = match (a.peek(), b.peek()) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some((ka, _)), Some((kb, _))) => ka.cmp(kb),
        };
        let step = match order {
            Ordering::Less => a.next().map(|(k, v)| (k, v, &null)),
            Ordering::Greater => b.next().map(|(k, v)| (k, &null, v)),
            Ordering::Equal => a.next().zip(b.next()).map(|((k, v), (_, w))| (k, v, w)),
        };
        let Some((name, x, y)) = step else { break };
        if x != y && !(x.is_null() && y.is_null()) {
            let mut field = String::with_capacity(prefix.len() + name.len());
            field.push_str(prefix);
            field.push_str(name);
            out.push(FieldChange {
                field,
                old: x.clone(),
                new: y.clone(),
            });
        }
    }
}

/// The outcome of checking a tenant's audit chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditVerification {
    /// Entries checked.
    pub checked: u64,
    /// Whether the chain is intact.
    pub ok: bool,
    /// The sequence number of the first bad entry (or where a missing one should be).
    pub first_bad_seq: Option<u64>,
    /// What is wrong there: `altered`, `missing` or `reordered`.
    pub problem: Option<String>,
}

/// Checks a chain of entries read in `seq` order.
pub fn verify_chain<'a>(entries: impl IntoIterator<Item = &'a AuditEntry>) -> AuditVerification {
    let mut prev_hash = String::new();
    let mut checked = 0u64;
    let bad = |seq, problem: &str, checked| AuditVerification {
        checked,
        ok: false,
        first_bad_seq: Some(seq),
        problem: Some(problem.to_owned()),
    };
    for (expected_seq, e) in (1u64..).zip(entries) {
        checked += 1;
        if e.seq != expected_seq {
            let problem = if e.seq > expected_seq {
                "missing"
            } else {
                "reordered"
            };
            return bad(expected_seq, problem, checked);
        }
        if e.prev_hash != prev_hash {
            // Content intact but linked to another predecessor: entries were removed or swapped.
            let problem = if e.compute_hash() == e.hash {
                "reordered"
            } else {
                "altered"
            };
            return bad(e.seq, problem, checked);
        }
        if e.compute_hash() != e.hash {
            return bad(e.seq, "altered", checked);
        }
        prev_hash = e.hash.clone();
    }
    AuditVerification {
        checked,
        ok: true,
        first_bad_seq: None,
        problem: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The diff as first written (names collected, sorted and deduplicated): the reference.
    fn diff_by_sorting(old: &Fields, new: &Fields, prefix: &str) -> Vec<FieldChange> {
        let null = Value::Null;
        let mut names: Vec<&String> = old.keys().chain(new.keys()).collect();
        names.sort();
        names.dedup();
        let mut out = Vec::new();
        for name in names {
            let a = old.get(name).unwrap_or(&null);
            let b = new.get(name).unwrap_or(&null);
            if a != b && !(a.is_null() && b.is_null()) {
                out.push(FieldChange {
                    field: format!("{prefix}{name}"),
                    old: a.clone(),
                    new: b.clone(),
                });
            }
        }
        out
    }

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            Just(Value::List(vec![])),
            (0i64..3).prop_map(Value::Int),
            "[ab]{0,2}".prop_map(Value::Text),
        ]
    }

    fn fields() -> impl Strategy<Value = Fields> {
        proptest::collection::btree_map("[a-e]{1,2}", value(), 0..8)
    }

    proptest! {
        #[test]
        fn the_side_by_side_diff_equals_the_sorted_one(old in fields(), new in fields()) {
            let mut out = Vec::new();
            diff_maps(&old, &new, "custom.", &mut out);
            prop_assert_eq!(out, diff_by_sorting(&old, &new, "custom."));
            prop_assert_eq!(
                diff(&old, &Fields::new(), &new, &Fields::new()),
                diff_by_sorting(&old, &new, "")
            );
        }
    }

    #[test]
    fn the_hash_format_is_unchanged() {
        let at = DateTime::from_timestamp_micros(1_767_225_600_123_456).unwrap();
        let mut fields = Fields::new();
        fields.insert("name".into(), Value::Text("ACME \"Srl\"".into()));
        fields.insert("roles".into(), Value::List(vec!["customer".into()]));
        let entry = AuditEntry {
            tenant: TenantId::new("acme").unwrap(),
            seq: 7,
            at,
            user_id: RecordId::from_bytes([1; 16]),
            origin: Origin {
                client: Some("erp 7.2".into()),
                address: None,
                location: Some("Milan".into()),
            },
            operation: Operation::Create,
            kind: EntityKind::Account,
            record_id: RecordId::from_bytes([2; 16]),
            version: 1,
            changes: diff(&Fields::new(), &Fields::new(), &fields, &Fields::new()),
            comment: None,
            prev_hash: "ab".repeat(32),
            hash: String::new(),
        };
        // The serialisation every stored chain was hashed with.
        let reference = hex::encode(Sha256::digest(
            serde_json::to_vec(&Hashed {
                tenant: &entry.tenant,
                seq: entry.seq,
                at: entry.at.timestamp_micros(),
                user_id: &entry.user_id,
                origin: &entry.origin,
                operation: entry.operation,
                kind: entry.kind,
                record_id: &entry.record_id,
                version: entry.version,
                changes: &entry.changes,
                comment: &entry.comment,
                prev_hash: &entry.prev_hash,
            })
            .unwrap(),
        ));
        assert_eq!(entry.compute_hash(), reference);
        let mut buf = b"left over from the previous entry".to_vec();
        assert_eq!(entry.hash_with(&mut buf), reference);
        assert_eq!(entry.clone().seal_with(&mut buf).hash, reference);
        assert_eq!(
            reference, "4cc526d638f9874590f89b9e7d88b90182eff3eda817cb35f4ad6064df2e8a37",
            "the hash of a fixed entry changed: stored chains would no longer verify"
        );
    }
}
