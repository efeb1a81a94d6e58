//! Resolving caller filters (field names) into backend conditions (columns), with the access rules
//! and value normalisation applied.

use crate::access::{self, Principal};
use crate::custom_field::CustomCatalog;
use crate::error::{CrmError, Result};
use crate::query::{Column, Cond, Filter, MetaColumn};
use crate::schema::EntityKind;
use crate::validate::{normalise_value, PhoneRules};
use crate::value::{FieldType, Value};

pub(crate) struct Resolver<'a> {
    pub(crate) kind: EntityKind,
    pub(crate) principal: &'a Principal,
    pub(crate) customs: &'a CustomCatalog,
    pub(crate) phones: &'a PhoneRules,
}

impl Resolver<'_> {
    /// The column behind a field name, refusing unknown and hidden fields.
    pub(crate) fn column(&self, name: &str) -> Result<Column> {
        let kind = self.kind;
        let col = if let Some(custom) = name.strip_prefix("custom.") {
            let def = self.customs.by_name(kind, custom).ok_or_else(|| {
                CrmError::invalid_query(
                    Some(name),
                    "unknown_field",
                    format!("{kind} has no custom field `{custom}`"),
                )
            })?;
            access::check_field_query(self.principal, kind, &format!("custom.{}", def.key))
                .map_err(|e| e.in_field_named(name))?;
            return Ok(Column::Custom {
                key: def.key.clone(),
                ty: def.ty.clone(),
            });
        } else if let Some(m) = MetaColumn::from_name(name) {
            Column::Meta(m)
        } else {
            let spec = kind.schema().field(name).ok_or_else(|| {
                CrmError::invalid_query(
                    Some(name),
                    "unknown_field",
                    format!("{kind} has no field `{name}`"),
                )
            })?;
            Column::Builtin {
                name: spec.name,
                ty: spec.ty.clone(),
            }
        };
        access::check_field_query(self.principal, kind, name)?;
        Ok(col)
    }

    fn value(&self, ty: &FieldType, v: Value, field: &str) -> Result<Value> {
        let ty = match ty {
            // An element of a list column.
            FieldType::MultiChoice { choices } => FieldType::Choice {
                choices: choices.clone(),
            },
            FieldType::MultiReference { to } => FieldType::Reference { to: *to },
            t => t.clone(),
        };
        // A filter value already in E.164 (as `find_by_phone` passes it) needs no second parse.
        if let (FieldType::Phone, Value::Text(s)) = (&ty, &v) {
            let digits = s.strip_prefix('+').unwrap_or_default();
            if (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
                return Ok(v);
            }
        }
        let v = match (&ty, v) {
            // Decimals compared with money-typed fields: allow a plain number in the money's currency
            // only through Money values; ints become decimals.
            (FieldType::Decimal, Value::Int(i)) => Value::Decimal(i.into()),
            (_, v) => v,
        };
        normalise_value(&ty, v, field, self.phones).map_err(|e| {
            let mut e = e;
            e.kind = crate::error::ErrorKind::InvalidQuery;
            e
        })
    }

    /// The filter as a condition, its field names and values checked against the schema and the
    /// field rules; a filter beyond the size limits is refused before anything recurses over it.
    pub(crate) fn cond(&self, f: &Filter) -> Result<Cond> {
        f.check_limits()?;
        self.cond_in(f)
    }

    fn cond_in(&self, f: &Filter) -> Result<Cond> {
        Ok(match f {
            Filter::And { all } => {
                let mut c = Cond::True;
                for f in all {
                    c = c.and(self.cond_in(f)?);
                }
                c
            }
            Filter::Or { any } => {
                let mut c = Cond::False;
                for f in any {
                    c = c.or(self.cond_in(f)?);
                }
                c
            }
            Filter::Not { not } => Cond::Not(Box::new(self.cond_in(not)?)),
            Filter::Compare { field, cmp, value } => {
                let col = self.column(field)?;
                let ty = col.ty();
                if ty.is_multi() || matches!(ty, FieldType::Lines | FieldType::Json) {
                    return Err(CrmError::invalid_query(
                        Some(field),
                        "not_comparable",
                        format!("field `{field}` holds a list; use `contains`"),
                    ));
                }
                if value.is_null() {
                    let is_null = Cond::IsNull(col);
                    return Ok(match cmp {
                        crate::query::Op::Eq => is_null,
                        crate::query::Op::Ne => Cond::Not(Box::new(is_null)),
                        _ => {
                            return Err(CrmError::invalid_query(
                                Some(field),
                                "null_compare",
                                "only `=` and `!=` compare with null",
                            ))
                        }
                    });
                }
                let v = self.value(&ty, value.clone(), field)?;
                Cond::Compare(col, *cmp, v)
            }
            Filter::In { field, values } => {
                let col = self.column(field)?;
                let ty = col.ty();
                let mut vs = Vec::with_capacity(values.len());
                for v in values {
                    vs.push(self.value(&ty, v.clone(), field)?);
                }
                Cond::In(col, vs)
            }
            Filter::IsNull { field } => Cond::IsNull(self.column(field)?),
            Filter::Contains { field, value } => {
                let col = self.column(field)?;
                let ty = col.ty();
                if ty.is_multi() {
                    let v = self.value(&ty, value.clone(), field)?;
                    Cond::ListContains(col, v)
                } else if matches!(ty, FieldType::Text | FieldType::Email | FieldType::Phone) {
                    let s = value.as_text().ok_or_else(|| {
                        CrmError::invalid_query(
                            Some(field),
                            "type",
                            "`contains` on text takes a text",
                        )
                    })?;
                    Cond::TextContains(col, s.to_owned())
                } else {
                    return Err(CrmError::invalid_query(
                        Some(field),
                        "not_text",
                        format!("`contains` does not apply to field `{field}`"),
                    ));
                }
            }
            Filter::StartsWith { field, value } => {
                let col = self.column(field)?;
                if !matches!(
                    col.ty(),
                    FieldType::Text | FieldType::Email | FieldType::Phone
                ) {
                    return Err(CrmError::invalid_query(
                        Some(field),
                        "not_text",
                        format!("`starts_with` does not apply to field `{field}`"),
                    ));
                }
                Cond::StartsWith(col, value.clone())
            }
        })
    }

    /// The sort column, refusing fields that cannot be sorted on.
    pub(crate) fn sort_column(&self, name: &str) -> Result<Column> {
        let col = self.column(name)?;
        if !col.ty().is_sortable() {
            return Err(CrmError::invalid_query(
                Some(name),
                "not_sortable",
                format!("field `{name}` cannot be sorted on"),
            ));
        }
        Ok(col)
    }
}
