//! Merging duplicates: one record survives, the other's values fill its gaps, every reference to the
//! duplicate moves to the survivor, and the duplicate goes to the trash — one transaction, every step
//! recorded in the audit log as a `merge`.

use crate::access::{self, Action, FieldAccess};
use crate::audit::Operation;
use crate::error::{CrmError, Result};
use crate::id::RecordId;
use crate::query::{Column, Cond, Liveness, Op, Query};
use crate::record::Record;
use crate::schema::EntityKind;
use crate::value::{FieldType, Value};

use super::{Context, Engine};

/// What a merge did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MergeOutcome {
    /// The surviving record, after the merge.
    pub kept: Record,
    /// Records whose references to the duplicate now point at the survivor, by type.
    pub moved: Vec<(EntityKind, RecordId)>,
}

impl Engine {
    /// Merges `duplicate` into `keep` (both of `kind`: account, contact or lead). Fields empty on
    /// `keep` take the duplicate's values; references from any record to the duplicate are moved to
    /// `keep`; the duplicate is moved to the trash. The user needs update on `keep` and delete on the
    /// duplicate; the moved references are part of the merge and recorded with it.
    pub(crate) fn merge(
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

        // 1. The survivor takes the duplicate's values where it has none (caller fields only) —
        //    only what the user could have typed in: a hidden field is left as it is (saying it
        //    holds a value would tell them something), a read-only field that would be filled
        //    refuses the merge (the duplicate's value would otherwise be dropped unseen).
        let may_fill = |field: &str| -> Result<bool> {
            match access::field_access(&p, kind, field) {
                Some(FieldAccess::Hidden) => Ok(false),
                Some(FieldAccess::ReadOnly) => Err(CrmError::field_denied(
                    "merge",
                    kind.name(),
                    field,
                    "read_only_field",
                )),
                _ => Ok(true),
            }
        };
        let mut merged = kept.clone();
        for spec in &kind.schema().fields {
            if spec.system || !merged.get(spec.name).is_null() {
                continue;
            }
            let fill = match (kept.get(spec.name), dup.get(spec.name)) {
                (
                    _,
                    v @ (Value::Text(_)
                    | Value::Int(_)
                    | Value::Decimal(_)
                    | Value::Money(_)
                    | Value::Date(_)
                    | Value::Timestamp(_)
                    | Value::Bool(_)
                    | Value::Ref(_)),
                ) => Some(v.clone()),
                (Value::List(a), Value::List(b)) => {
                    let mut all = a.clone();
                    all.extend(b.iter().filter(|x| !a.contains(x)).cloned());
                    Some(Value::List(all))
                }
                _ => None,
            };
            if let Some(v) = fill {
                if may_fill(spec.name)? {
                    merged.fields.insert(spec.name.to_owned(), v);
                }
            }
        }
        for (key, v) in &dup.custom {
            let Some(def) = cache.customs.by_key(kind, key) else {
                continue;
            };
            if def.archived || merged.custom.contains_key(key) {
                continue;
            }
            if !may_fill(&format!("custom.{}", def.key))? {
                continue;
            }
            merged
                .custom
                .entry(key.clone())
                .or_insert_with(|| v.clone());
        }
        self.check_record(&uow.tx, &p, &cache, ctx, &mut merged, Some(&kept))?;
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

        // 2. References to the duplicate move to the survivor on the records the user may change;
        //    the others are left as they are (pointing at the duplicate in the trash): a merge
        //    writes nothing outside the user's reach.
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
                // Only through fields the user may write (a read-only or hidden reference stays,
                // and the records holding it are not named), the rights-granting fields of users
                // only for those who may configure users.
                if access::check_field_write(&p, other, spec.name).is_err()
                    || (other == EntityKind::User
                        && super::write::USER_ASSIGNMENTS.contains(&spec.name)
                        && super::write::require_assignment(&p, spec.name).is_err())
                {
                    continue;
                }
                let mut q = Query::all(other, ctx.tenant.clone()).and(cond);
                q.liveness = Liveness::Any;
                q.custom_types = cache.customs.types(other);
                let referring = uow
                    .tx
                    .scoped(self.who(&p, &cache, ctx))
                    .query(q, Action::Update)?;
                for r in referring {
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
            .scoped(self.who(&p, &cache, ctx))
            .get(kind, duplicate, Action::Delete)?;
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
