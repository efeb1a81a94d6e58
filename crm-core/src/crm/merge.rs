//! Merging duplicates: one record survives, the other's values fill its gaps, every reference to the
//! duplicate moves to the survivor, and the duplicate goes to the trash — one transaction, every step
//! recorded in the audit log as a `merge`.

use crate::access::Action;
use crate::audit::Operation;
use crate::error::{CrmError, Result};
use crate::id::RecordId;
use crate::query::{Column, Cond, Liveness, Op, Query};
use crate::record::Record;
use crate::schema::EntityKind;
use crate::value::{FieldType, Value};

use super::{Context, Crm};

/// What a merge did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MergeOutcome {
    /// The surviving record, after the merge.
    pub kept: Record,
    /// Records whose references to the duplicate now point at the survivor, by type.
    pub moved: Vec<(EntityKind, RecordId)>,
}

impl Crm {
    /// Merges `duplicate` into `keep` (both of `kind`: account, contact or lead). Fields empty on
    /// `keep` take the duplicate's values; references from any record to the duplicate are moved to
    /// `keep`; the duplicate is moved to the trash. The user needs update on `keep` and delete on the
    /// duplicate; the moved references are part of the merge and recorded with it.
    pub fn merge(
        &self,
        ctx: &Context,
        kind: EntityKind,
        keep: RecordId,
        keep_version: i64,
        duplicate: RecordId,
    ) -> Result<MergeOutcome> {
        if !matches!(
            kind,
            EntityKind::Account | EntityKind::Contact | EntityKind::Lead
        ) {
            return Err(CrmError::validation(
                "entity",
                "merge",
                format!("{kind} records cannot be merged"),
            ));
        }
        if keep == duplicate {
            return Err(CrmError::validation(
                "duplicate",
                "merge",
                "a record cannot be merged into itself",
            ));
        }
        let (p, cache, mut uow, kept) = self.open_for_transition(ctx, kind, keep, keep_version)?;
        let dup = self.fetch_for_write(&uow, &p, &cache, kind, duplicate, Action::Delete)?;
        if dup.meta.deleted_at.is_some() {
            return Err(CrmError::conflict(
                kind.name(),
                "in_trash",
                "the duplicate is already in the trash",
            ));
        }
        let note = Some(format!("merged {kind} `{duplicate}` into `{keep}`"));

        // 1. The survivor takes the duplicate's values where it has none (caller fields only).
        let mut merged = kept.clone();
        for spec in &kind.schema().fields {
            if spec.system || !merged.get(spec.name).is_null() {
                continue;
            }
            if let v @ (Value::Text(_)
            | Value::Int(_)
            | Value::Decimal(_)
            | Value::Money(_)
            | Value::Date(_)
            | Value::Timestamp(_)
            | Value::Bool(_)
            | Value::Ref(_)) = dup.get(spec.name)
            {
                merged.fields.insert(spec.name.to_owned(), v.clone());
            }
            if let (Value::List(a), Value::List(b)) = (kept.get(spec.name), dup.get(spec.name)) {
                let mut all = a.clone();
                all.extend(b.iter().filter(|x| !a.contains(x)).cloned());
                merged.fields.insert(spec.name.to_owned(), Value::List(all));
            }
        }
        for (key, v) in &dup.custom {
            merged
                .custom
                .entry(key.clone())
                .or_insert_with(|| v.clone());
        }
        self.check_record(&*uow.tx, &cache, ctx, &mut merged, Some(&kept))?;
        let kept = if merged.fields != kept.fields || merged.custom != kept.custom {
            uow.replace(
                &kept,
                merged,
                Operation::Merge,
                "record.merged",
                note.clone(),
            )?
        } else {
            kept
        };

        // 2. Every reference to the duplicate, from any record of any type, moves to the survivor.
        let mut moved = Vec::new();
        for &other in EntityKind::ALL {
            for spec in &other.schema().fields {
                let (cond, multi) = match &spec.ty {
                    FieldType::Reference { to } if *to == kind => (
                        Cond::Compare(
                            Column::Builtin {
                                name: spec.name,
                                ty: spec.ty.clone(),
                            },
                            Op::Eq,
                            Value::Ref(duplicate),
                        ),
                        false,
                    ),
                    FieldType::MultiReference { to } if *to == kind => (
                        Cond::ListContains(
                            Column::Builtin {
                                name: spec.name,
                                ty: spec.ty.clone(),
                            },
                            Value::Text(duplicate.to_string()),
                        ),
                        true,
                    ),
                    _ => continue,
                };
                let mut q = Query::all(other, ctx.tenant.clone()).and(cond);
                q.liveness = Liveness::Any;
                q.custom_types = cache.customs.types(other);
                for r in uow.tx.query(&q)? {
                    let mut new = r.clone();
                    let value = if multi {
                        let list = r.get(spec.name).as_list().unwrap_or_default();
                        let mut out: Vec<String> = Vec::with_capacity(list.len());
                        for id in list {
                            let id = if *id == duplicate.to_string() {
                                keep.to_string()
                            } else {
                                id.clone()
                            };
                            if !out.contains(&id) {
                                out.push(id);
                            }
                        }
                        Value::List(out)
                    } else {
                        Value::Ref(keep)
                    };
                    new.fields.insert(spec.name.to_owned(), value);
                    uow.replace(&r, new, Operation::Merge, "record.updated", note.clone())?;
                    moved.push((other, r.meta.id));
                }
            }
        }

        // 3. The duplicate goes to the trash.
        let dup = uow
            .tx
            .get(kind, &ctx.tenant, duplicate, &cache.customs.types(kind))?
            .ok_or_else(|| CrmError::not_found(kind.name(), duplicate))?;
        let mut gone = dup.clone();
        gone.meta.deleted_at = Some(uow.now);
        uow.replace(&dup, gone, Operation::Merge, "record.deleted", note)?;
        uow.commit(self)?;
        Ok(MergeOutcome {
            kept: self.present(&p, &cache, kept),
            moved,
        })
    }
}
