//! Field values and field types: the generic engine every entity, custom field, filter, audit diff and
//! binding goes through.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::error::{CrmError, Result};
use crate::id::RecordId;
use crate::money::{Currency, Money};
use crate::schema::EntityKind;

/// The type of a field, built-in or custom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FieldType {
    /// Free text.
    Text,
    /// An e-mail address, checked for syntax and stored lower-cased in the domain part.
    Email,
    /// A phone number, normalised to E.164 on write.
    Phone,
    /// An ISO 3166-1 alpha-2 country code (`IT`), upper-cased on write.
    Country,
    /// An ISO 4217 currency code (`EUR`).
    Currency,
    /// A 64-bit integer.
    Int,
    /// An exact decimal number (at most 4 decimal places when stored).
    Decimal,
    /// A decimal amount with a currency.
    Money,
    /// A calendar date.
    Date,
    /// An instant in UTC.
    Timestamp,
    /// True or false.
    Bool,
    /// One value out of a closed list.
    Choice {
        /// The allowed values.
        choices: Vec<String>,
    },
    /// Any number of values out of a closed list.
    MultiChoice {
        /// The allowed values.
        choices: Vec<String>,
    },
    /// The id of a record of another entity type.
    Reference {
        /// The entity type referred to.
        to: EntityKind,
    },
    /// The id of a record of any entity type (attachments, shares); another field names the type.
    AnyReference,
    /// Ids of any number of records of one entity type.
    MultiReference {
        /// The entity type referred to.
        to: EntityKind,
    },
    /// Line items of a quote or order.
    Lines,
    /// Structured configuration (JSON), used by configuration records.
    Json,
}

impl FieldType {
    /// A choice type from static strings.
    pub fn choice(choices: &[&str]) -> Self {
        FieldType::Choice {
            choices: choices.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    /// A multi-choice type from static strings.
    pub fn multi_choice(choices: &[&str]) -> Self {
        FieldType::MultiChoice {
            choices: choices.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    /// The short name of this type (`text`, `money`, …).
    pub fn name(&self) -> &'static str {
        match self {
            FieldType::Text => "text",
            FieldType::Email => "email",
            FieldType::Phone => "phone",
            FieldType::Country => "country",
            FieldType::Currency => "currency",
            FieldType::AnyReference => "any_reference",
            FieldType::Int => "int",
            FieldType::Decimal => "decimal",
            FieldType::Money => "money",
            FieldType::Date => "date",
            FieldType::Timestamp => "timestamp",
            FieldType::Bool => "bool",
            FieldType::Choice { .. } => "choice",
            FieldType::MultiChoice { .. } => "multi_choice",
            FieldType::Reference { .. } => "reference",
            FieldType::MultiReference { .. } => "multi_reference",
            FieldType::Lines => "lines",
            FieldType::Json => "json",
        }
    }

    /// Whether values of this type hold a list (filters use `contains` on them).
    pub fn is_multi(&self) -> bool {
        matches!(
            self,
            FieldType::MultiChoice { .. } | FieldType::MultiReference { .. }
        )
    }

    /// Whether values of this type can be compared and sorted.
    pub fn is_sortable(&self) -> bool {
        !matches!(
            self,
            FieldType::MultiChoice { .. }
                | FieldType::MultiReference { .. }
                | FieldType::Lines
                | FieldType::Json
        )
    }
}

/// One line of a quote or order. Amounts are in the currency of the quote or order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineItem {
    /// The product sold, when it is a catalogue product.
    #[serde(default)]
    pub product_id: Option<RecordId>,
    /// What is sold, as shown on the document.
    #[serde(default)]
    pub description: String,
    /// How many; not negative.
    pub quantity: Decimal,
    /// Price of one unit before discount and tax.
    pub unit_price: Decimal,
    /// Discount in percent, 0 to 100.
    #[serde(default)]
    pub discount_percent: Decimal,
    /// Tax rate in percent, 0 or more.
    #[serde(default)]
    pub tax_rate: Decimal,
    /// Cost of one unit (copied from the product when the line is written), for margin analytics.
    #[serde(default)]
    pub unit_cost: Option<Decimal>,
}

/// A value of a field.
///
/// Its serde form is tagged (`{"type": "money", "value": {...}}`) so it reads back without a schema;
/// [`Value::to_json`] gives the plain, untagged rendering for exports and display.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum Value {
    /// No value.
    Null,
    /// Text, e-mail, phone or choice values.
    Text(String),
    /// An integer.
    Int(i64),
    /// An exact decimal.
    Decimal(Decimal),
    /// An amount with its currency.
    Money(Money),
    /// A calendar date.
    Date(NaiveDate),
    /// An instant in UTC.
    Timestamp(DateTime<Utc>),
    /// True or false.
    Bool(bool),
    /// A record id.
    Ref(RecordId),
    /// Several texts (multi choice) or ids (multi reference, as text).
    List(Vec<String>),
    /// Line items.
    Lines(Vec<LineItem>),
    /// Structured configuration.
    Json(Json),
}

/// Field values by field name.
pub type Fields = BTreeMap<String, Value>;

impl Value {
    /// Whether this is `Null` (or an empty list).
    pub fn is_null(&self) -> bool {
        match self {
            Value::Null => true,
            Value::List(v) => v.is_empty(),
            _ => false,
        }
    }

    /// The text, if this is a text value.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    /// The id, if this is a reference.
    pub fn as_ref_id(&self) -> Option<RecordId> {
        match self {
            Value::Ref(id) => Some(*id),
            _ => None,
        }
    }

    /// The money, if this is a money value.
    pub fn as_money(&self) -> Option<Money> {
        match self {
            Value::Money(m) => Some(*m),
            _ => None,
        }
    }

    /// The decimal, if this is a decimal value.
    pub fn as_decimal(&self) -> Option<Decimal> {
        match self {
            Value::Decimal(d) => Some(*d),
            _ => None,
        }
    }

    /// The bool, if this is a bool value.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The list, if this is a list value.
    pub fn as_list(&self) -> Option<&[String]> {
        match self {
            Value::List(v) => Some(v),
            _ => None,
        }
    }

    /// The instant, if this is a timestamp value.
    pub fn as_timestamp(&self) -> Option<DateTime<Utc>> {
        match self {
            Value::Timestamp(t) => Some(*t),
            _ => None,
        }
    }

    /// The date, if this is a date value.
    pub fn as_date(&self) -> Option<NaiveDate> {
        match self {
            Value::Date(d) => Some(*d),
            _ => None,
        }
    }

    /// The integer, if this is an integer value.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// A JSON rendering: decimals and money amounts as strings (exact), instants as RFC 3339 UTC,
    /// dates as `YYYY-MM-DD`, ids as strings.
    pub fn to_json(&self) -> Json {
        match self {
            Value::Null => Json::Null,
            Value::Text(s) => Json::String(s.clone()),
            Value::Int(i) => Json::from(*i),
            Value::Decimal(d) => Json::String(d.to_string()),
            Value::Money(m) => {
                serde_json::json!({"amount": m.amount.to_string(), "currency": m.currency.code()})
            }
            Value::Date(d) => Json::String(d.format("%Y-%m-%d").to_string()),
            Value::Timestamp(t) => {
                Json::String(t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
            }
            Value::Bool(b) => Json::Bool(*b),
            Value::Ref(id) => Json::String(id.to_string()),
            Value::List(v) => Json::Array(v.iter().cloned().map(Json::String).collect()),
            Value::Lines(lines) => serde_json::to_value(lines).unwrap_or(Json::Null),
            Value::Json(j) => j.clone(),
        }
    }

    /// Reads a JSON value as a value of type `ty`; `field` names the field in errors. Checks the shape
    /// only (a date parses, a choice is one of the list); normalisation happens in validation.
    pub fn from_json(ty: &FieldType, json: &Json, field: &str) -> Result<Value> {
        if json.is_null() {
            return Ok(Value::Null);
        }
        let mismatch = || {
            CrmError::validation(
                field,
                "type",
                format!("expected a value of type `{}`", ty.name()),
            )
        };
        let text = || json.as_str().ok_or_else(mismatch);
        Ok(match ty {
            FieldType::Text
            | FieldType::Email
            | FieldType::Phone
            | FieldType::Country
            | FieldType::Currency => Value::Text(text()?.to_owned()),
            FieldType::Choice { .. } => Value::Text(text()?.to_owned()),
            FieldType::Int => Value::Int(json.as_i64().ok_or_else(mismatch)?),
            FieldType::Decimal => Value::Decimal(json_decimal(json).ok_or_else(mismatch)?),
            FieldType::Money => {
                let amount = json
                    .get("amount")
                    .and_then(json_decimal)
                    .ok_or_else(mismatch)?;
                let code = json
                    .get("currency")
                    .and_then(Json::as_str)
                    .ok_or_else(mismatch)?;
                Value::Money(Money::new(amount, Currency::parse_field(code, field)?))
            }
            FieldType::Date => {
                Value::Date(NaiveDate::parse_from_str(text()?, "%Y-%m-%d").map_err(|_| mismatch())?)
            }
            FieldType::Timestamp => Value::Timestamp(
                DateTime::parse_from_rfc3339(text()?)
                    .map_err(|_| mismatch())?
                    .with_timezone(&Utc),
            ),
            FieldType::Bool => Value::Bool(json.as_bool().ok_or_else(mismatch)?),
            FieldType::Reference { .. } | FieldType::AnyReference => {
                Value::Ref(RecordId::parse_field(text()?, field)?)
            }
            FieldType::MultiChoice { .. } | FieldType::MultiReference { .. } => {
                let arr = json.as_array().ok_or_else(mismatch)?;
                let mut out = Vec::with_capacity(arr.len());
                for item in arr {
                    out.push(item.as_str().ok_or_else(mismatch)?.to_owned());
                }
                Value::List(out)
            }
            FieldType::Lines => {
                Value::Lines(serde_json::from_value(json.clone()).map_err(|e| {
                    CrmError::validation(field, "type", format!("malformed line items: {e}"))
                })?)
            }
            FieldType::Json => Value::Json(json.clone()),
        })
    }

    /// Checks that this value fits `ty` and returns it in canonical form (texts trimmed, e-mails
    /// lower-cased in the domain, multi-reference ids checked). Phone normalisation is done by the
    /// validator, which knows the default country.
    pub fn coerce(self, ty: &FieldType, field: &str) -> Result<Value> {
        let mismatch = |v: &Value| {
            CrmError::validation(
                field,
                "type",
                format!(
                    "expected a value of type `{}`, got `{}`",
                    ty.name(),
                    v.type_name()
                ),
            )
        };
        Ok(match (ty, self) {
            (_, Value::Null) => Value::Null,
            (FieldType::Text | FieldType::Email | FieldType::Phone, Value::Text(s)) => {
                let t = s.trim();
                if t.is_empty() {
                    Value::Null
                } else {
                    Value::Text(t.to_owned())
                }
            }
            (FieldType::Choice { choices }, Value::Text(s)) => {
                if choices.contains(&s) {
                    Value::Text(s)
                } else {
                    return Err(CrmError::validation(
                        field,
                        "choice",
                        format!("`{s}` is not one of the allowed values"),
                    ));
                }
            }
            (FieldType::MultiChoice { choices }, Value::List(items)) => {
                let mut out: Vec<String> = Vec::with_capacity(items.len());
                for s in items {
                    if !choices.contains(&s) {
                        return Err(CrmError::validation(
                            field,
                            "choice",
                            format!("`{s}` is not one of the allowed values"),
                        ));
                    }
                    if !out.contains(&s) {
                        out.push(s);
                    }
                }
                Value::List(out)
            }
            (FieldType::MultiReference { .. }, Value::List(items)) => {
                let mut out: Vec<String> = Vec::with_capacity(items.len());
                for s in items {
                    let id = RecordId::parse_field(&s, field)?.to_string();
                    if !out.contains(&id) {
                        out.push(id);
                    }
                }
                Value::List(out)
            }
            (FieldType::Country, Value::Text(s)) => {
                let t = s.trim().to_ascii_uppercase();
                if t.len() == 2 && t.bytes().all(|b| b.is_ascii_uppercase()) {
                    Value::Text(t)
                } else {
                    return Err(CrmError::validation(
                        field,
                        "country_code",
                        "expected an ISO 3166-1 alpha-2 country code",
                    ));
                }
            }
            (FieldType::Currency, Value::Text(s)) => Value::Text(
                crate::money::Currency::parse_field(s.trim(), field)?
                    .code()
                    .to_owned(),
            ),
            (FieldType::Reference { .. } | FieldType::AnyReference, Value::Text(s)) => {
                Value::Ref(RecordId::parse_field(&s, field)?)
            }
            (FieldType::Reference { .. } | FieldType::AnyReference, v @ Value::Ref(_)) => v,
            (FieldType::Int, v @ Value::Int(_)) => v,
            (FieldType::Decimal, Value::Int(i)) => Value::Decimal(Decimal::from(i)),
            (FieldType::Decimal, v @ Value::Decimal(_)) => v,
            (FieldType::Decimal, Value::Text(s)) => {
                Value::Decimal(Decimal::from_str(s.trim()).map_err(|_| {
                    CrmError::validation(field, "decimal_syntax", "not a decimal number")
                })?)
            }
            (FieldType::Money, v @ Value::Money(_)) => v,
            (FieldType::Date, v @ Value::Date(_)) => v,
            (FieldType::Date, Value::Text(s)) => Value::Date(
                NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").map_err(|_| {
                    CrmError::validation(field, "date_syntax", "expected a date as YYYY-MM-DD")
                })?,
            ),
            (FieldType::Timestamp, v @ Value::Timestamp(_)) => v,
            (FieldType::Timestamp, Value::Text(s)) => Value::Timestamp(
                DateTime::parse_from_rfc3339(s.trim())
                    .map_err(|_| {
                        CrmError::validation(
                            field,
                            "timestamp_syntax",
                            "expected an RFC 3339 instant with an offset",
                        )
                    })?
                    .with_timezone(&Utc),
            ),
            (FieldType::Bool, v @ Value::Bool(_)) => v,
            (FieldType::Lines, v @ Value::Lines(_)) => v,
            (FieldType::Json, v @ Value::Json(_)) => v,
            (_, v) => return Err(mismatch(&v)),
        })
    }

    /// The name of this value's variant, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Text(_) => "text",
            Value::Int(_) => "int",
            Value::Decimal(_) => "decimal",
            Value::Money(_) => "money",
            Value::Date(_) => "date",
            Value::Timestamp(_) => "timestamp",
            Value::Bool(_) => "bool",
            Value::Ref(_) => "reference",
            Value::List(_) => "list",
            Value::Lines(_) => "lines",
            Value::Json(_) => "json",
        }
    }
}

fn json_decimal(j: &Json) -> Option<Decimal> {
    match j {
        Json::String(s) => Decimal::from_str(s.trim()).ok(),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                Some(Decimal::from(i))
            } else {
                // A JSON number with a fraction: read its decimal text, never through f64.
                Decimal::from_str(&n.to_string()).ok()
            }
        }
        _ => None,
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Text(s) => f.write_str(s),
            Value::Int(i) => write!(f, "{i}"),
            Value::Decimal(d) => write!(f, "{d}"),
            Value::Money(m) => write!(f, "{m}"),
            Value::Date(d) => write!(f, "{d}"),
            Value::Timestamp(t) => write!(
                f,
                "{}",
                t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Ref(id) => write!(f, "{id}"),
            Value::List(v) => write!(f, "[{}]", v.join(", ")),
            Value::Lines(l) => write!(f, "{} line(s)", l.len()),
            Value::Json(j) => write!(f, "{j}"),
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Text(s.to_owned())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Text(s)
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}
impl From<Decimal> for Value {
    fn from(d: Decimal) -> Self {
        Value::Decimal(d)
    }
}
impl From<Money> for Value {
    fn from(m: Money) -> Self {
        Value::Money(m)
    }
}
impl From<NaiveDate> for Value {
    fn from(d: NaiveDate) -> Self {
        Value::Date(d)
    }
}
impl From<DateTime<Utc>> for Value {
    fn from(t: DateTime<Utc>) -> Self {
        Value::Timestamp(t)
    }
}
impl From<RecordId> for Value {
    fn from(id: RecordId) -> Self {
        Value::Ref(id)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(o: Option<T>) -> Self {
        o.map(Into::into).unwrap_or(Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_keeps_decimals_exact() {
        let ty = FieldType::Money;
        let v = Value::from_json(
            &ty,
            &serde_json::json!({"amount": "0.10", "currency": "EUR"}),
            "x",
        )
        .unwrap();
        assert_eq!(
            v.to_json(),
            serde_json::json!({"amount": "0.10", "currency": "EUR"})
        );
        let d = Value::from_json(&FieldType::Decimal, &serde_json::json!(0.1), "x").unwrap();
        assert_eq!(d, Value::Decimal("0.1".parse().unwrap()));
    }

    #[test]
    fn coerce_rejects_wrong_types_and_choices() {
        let e = Value::Int(3).coerce(&FieldType::Text, "name").unwrap_err();
        assert_eq!(
            (e.field.as_deref(), e.rule.as_deref()),
            (Some("name"), Some("type"))
        );
        let e = Value::from("gold")
            .coerce(&FieldType::choice(&["a", "b"]), "tier")
            .unwrap_err();
        assert_eq!(e.rule.as_deref(), Some("choice"));
        assert_eq!(
            Value::from("  ").coerce(&FieldType::Text, "x").unwrap(),
            Value::Null
        );
    }
}
