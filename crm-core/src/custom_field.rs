//! Custom fields defined at run time per entity type and tenant.
//!
//! A definition is a `custom_field` record. Values are stored under the field's **key**, fixed when the
//! field is created; the **name** callers use can be renamed without touching stored values. Archiving a
//! field hides it (and refuses new values) but keeps every stored value; un-archiving brings them back.
//! Changing a field's type is refused, because stored values would no longer fit it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{CrmError, Result};
use crate::id::RecordId;
use crate::query::CustomTypes;
use crate::record::Record;
use crate::schema::EntityKind;
use crate::value::{FieldType, Value};

/// A custom field as the facade uses it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomFieldDef {
    /// The definition record's id.
    pub id: RecordId,
    /// The entity type it belongs to.
    pub entity: EntityKind,
    /// The name callers use (`industry`; in filters `custom.industry`).
    pub name: String,
    /// The stable storage key.
    pub key: String,
    /// A label for screens.
    pub label: Option<String>,
    /// The value type.
    pub ty: FieldType,
    /// Whether records need a value.
    pub required: bool,
    /// Archived fields are hidden and take no new values; their stored values are kept.
    pub archived: bool,
}

/// Checks a custom field name or key: `[a-z][a-z0-9_]{0,62}`.
pub(crate) fn check_identifier(s: &str, field: &str) -> Result<()> {
    let mut chars = s.chars();
    let ok = s.len() <= 63
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(CrmError::validation(
            field,
            "identifier",
            "a custom field name has 1 to 63 characters from `a-z`, `0-9` and `_`, starting with a letter",
        ))
    }
}

/// The field type a definition record describes.
pub(crate) fn type_of(def: &Record) -> Result<FieldType> {
    let choices = || -> Result<Vec<String>> {
        let list: Vec<String> = match def.get("choices") {
            Value::Json(j) => serde_json::from_value(j.clone()).map_err(|_| {
                CrmError::validation("choices", "choices", "choices must be a list of texts")
            })?,
            Value::Null => Vec::new(),
            _ => {
                return Err(CrmError::validation(
                    "choices",
                    "choices",
                    "choices must be a list of texts",
                ))
            }
        };
        if list.is_empty() {
            return Err(CrmError::validation(
                "choices",
                "required",
                "a choice field needs choices",
            ));
        }
        Ok(list)
    };
    Ok(match def.text("field_type").unwrap_or_default() {
        "text" => FieldType::Text,
        "email" => FieldType::Email,
        "phone" => FieldType::Phone,
        "int" => FieldType::Int,
        "decimal" => FieldType::Decimal,
        "money" => FieldType::Money,
        "date" => FieldType::Date,
        "timestamp" => FieldType::Timestamp,
        "bool" => FieldType::Bool,
        "choice" => FieldType::Choice {
            choices: choices()?,
        },
        "multi_choice" => FieldType::MultiChoice {
            choices: choices()?,
        },
        "reference" => {
            let to = def.text("reference_to").ok_or_else(|| {
                CrmError::validation(
                    "reference_to",
                    "required",
                    "a reference field names the entity it refers to",
                )
            })?;
            FieldType::Reference { to: to.parse()? }
        }
        other => {
            return Err(CrmError::validation(
                "field_type",
                "choice",
                format!("`{other}` is not a custom field type"),
            ))
        }
    })
}

/// The custom fields of a tenant, by entity type.
#[derive(Debug, Default, Clone)]
pub(crate) struct CustomCatalog {
    by_kind: HashMap<EntityKind, Vec<CustomFieldDef>>,
    types: HashMap<EntityKind, Arc<CustomTypes>>,
}

impl CustomCatalog {
    /// Builds the catalog from definition records (unreadable definitions are skipped).
    pub(crate) fn build(defs: &[Record]) -> Self {
        let mut by_kind: HashMap<EntityKind, Vec<CustomFieldDef>> = HashMap::new();
        for d in defs.iter().filter(|d| d.meta.deleted_at.is_none()) {
            let (Some(entity), Some(name), Some(key), Ok(ty)) = (
                d.text("entity").and_then(|e| e.parse::<EntityKind>().ok()),
                d.text("name"),
                d.text("key"),
                type_of(d),
            ) else {
                continue;
            };
            by_kind.entry(entity).or_default().push(CustomFieldDef {
                id: d.meta.id,
                entity,
                name: name.to_owned(),
                key: key.to_owned(),
                label: d.text("label").map(str::to_owned),
                ty,
                required: d.get("required").as_bool().unwrap_or(false),
                archived: d.get("archived").as_bool().unwrap_or(false),
            });
        }
        let types = by_kind
            .iter()
            .map(|(k, defs)| {
                let t: BTreeMap<String, FieldType> =
                    defs.iter().map(|d| (d.key.clone(), d.ty.clone())).collect();
                (*k, Arc::new(t))
            })
            .collect();
        CustomCatalog { by_kind, types }
    }

    /// Every definition of `kind`, archived ones included.
    pub(crate) fn all(&self, kind: EntityKind) -> &[CustomFieldDef] {
        self.by_kind.get(&kind).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The live (not archived) field called `name`.
    pub(crate) fn by_name(&self, kind: EntityKind, name: &str) -> Option<&CustomFieldDef> {
        self.all(kind)
            .iter()
            .find(|d| !d.archived && d.name == name)
    }

    /// The field stored under `key`.
    pub(crate) fn by_key(&self, kind: EntityKind, key: &str) -> Option<&CustomFieldDef> {
        self.all(kind).iter().find(|d| d.key == key)
    }

    /// Types by storage key, for decoding.
    pub(crate) fn types(&self, kind: EntityKind) -> Arc<CustomTypes> {
        self.types.get(&kind).cloned().unwrap_or_default()
    }
}
