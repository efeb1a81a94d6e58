//! The one storage-neutral query language: lists, searches, segments, permission predicates and
//! analytic filters are all described with it, and each backend compiles it (values as bound parameters).
//!
//! Callers write [`Filter`]s with field *names*; the facade resolves them against the schema (built-in
//! and custom fields), refuses unknown and hidden fields, ANDs in the permission predicate, and hands the
//! backend a resolved [`Query`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{CrmError, Result};
use crate::id::{RecordId, TenantId};
use crate::schema::EntityKind;
use crate::value::{FieldType, Value};

/// How deep filters may nest (`and`/`or`/`not` and parentheses): deeper input is refused as
/// `InvalidQuery` with rule `too_deep`, before anything recurses over it.
pub const MAX_FILTER_DEPTH: usize = 32;
/// How many conditions one filter may hold in all (rule `too_large`): a flat `or` of them compiles
/// to an expression as deep as it is long, and SQLite parses at most 1 000 levels (the user's
/// permission predicate needs room beside it).
pub const MAX_FILTER_NODES: usize = 500;
/// How many values one filter may compare with in all, `in` lists included (rule `too_large`):
/// below what a database binds in one statement.
pub const MAX_FILTER_VALUES: usize = 30_000;
/// How long filter-language text may be, in bytes (rule `too_long`).
pub const MAX_FILTER_TEXT: usize = 16 * 1024;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Equal.
    Eq,
    /// Not equal (records without a value do not match).
    Ne,
    /// Less than.
    Lt,
    /// Less than or equal.
    Le,
    /// Greater than.
    Gt,
    /// Greater than or equal.
    Ge,
}

impl Op {
    /// The operator as written in the filter language (`=`, `!=`, `<`, …).
    pub fn symbol(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }
}

/// A filter over field names, as a caller writes it. Custom fields are named `custom.<name>`; the
/// bookkeeping fields `id`, `owner_id`, `created_at`, `created_by`, `updated_at`, `updated_by` and
/// `version` can be used too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Filter {
    /// Every sub-filter holds.
    And {
        /// The sub-filters.
        all: Vec<Filter>,
    },
    /// At least one sub-filter holds.
    Or {
        /// The sub-filters.
        any: Vec<Filter>,
    },
    /// The sub-filter does not hold.
    Not {
        /// The negated filter.
        not: Box<Filter>,
    },
    /// `field <op> value`.
    Compare {
        /// The field name.
        field: String,
        /// The operator.
        cmp: Op,
        /// The value compared with.
        value: Value,
    },
    /// The field equals one of the values.
    In {
        /// The field name.
        field: String,
        /// The candidate values.
        values: Vec<Value>,
    },
    /// The field has no value.
    IsNull {
        /// The field name.
        field: String,
    },
    /// A list field holds the value, or a text field contains it (case-insensitive).
    Contains {
        /// The field name.
        field: String,
        /// The value looked for.
        value: Value,
    },
    /// A text field starts with the value (case-sensitive, index-friendly).
    StartsWith {
        /// The field name.
        field: String,
        /// The prefix.
        value: String,
    },
}

impl Filter {
    /// Refuses a filter deeper than [`MAX_FILTER_DEPTH`], with more than [`MAX_FILTER_NODES`]
    /// conditions or more than [`MAX_FILTER_VALUES`] values, as `InvalidQuery` naming the limit.
    /// Walks the filter with an explicit stack, so any filter a caller can build is checked without
    /// recursion.
    pub fn check_limits(&self) -> Result<()> {
        let too = |rule: &str, what: String| CrmError::invalid_query(None, rule, what);
        let mut stack: Vec<(&Filter, usize)> = vec![(self, 1)];
        let (mut nodes, mut values) = (0usize, 0usize);
        while let Some((f, depth)) = stack.pop() {
            if depth > MAX_FILTER_DEPTH {
                return Err(too(
                    "too_deep",
                    format!("filters nest at most {MAX_FILTER_DEPTH} levels"),
                ));
            }
            nodes += 1;
            if nodes > MAX_FILTER_NODES {
                return Err(too(
                    "too_large",
                    format!("a filter holds at most {MAX_FILTER_NODES} conditions"),
                ));
            }
            match f {
                Filter::And { all: v } | Filter::Or { any: v } => {
                    stack.extend(v.iter().map(|g| (g, depth + 1)))
                }
                Filter::Not { not } => stack.push((not, depth + 1)),
                Filter::In { values: v, .. } => values += v.len(),
                _ => values += 1,
            }
            if values > MAX_FILTER_VALUES {
                return Err(too(
                    "too_large",
                    format!("a filter compares with at most {MAX_FILTER_VALUES} values"),
                ));
            }
        }
        Ok(())
    }
}

impl Filter {
    /// `field = value`.
    pub fn eq(field: &str, value: impl Into<Value>) -> Filter {
        Filter::cmp(field, Op::Eq, value)
    }

    /// `field <op> value`.
    pub fn cmp(field: &str, op: Op, value: impl Into<Value>) -> Filter {
        Filter::Compare {
            field: field.to_owned(),
            cmp: op,
            value: value.into(),
        }
    }

    /// `field in (values…)`.
    pub fn one_of(field: &str, values: impl IntoIterator<Item = impl Into<Value>>) -> Filter {
        Filter::In {
            field: field.to_owned(),
            values: values.into_iter().map(Into::into).collect(),
        }
    }

    /// `field is null`.
    pub fn is_null(field: &str) -> Filter {
        Filter::IsNull {
            field: field.to_owned(),
        }
    }

    /// A list field holds `value`, or a text field contains it.
    pub fn contains(field: &str, value: impl Into<Value>) -> Filter {
        Filter::Contains {
            field: field.to_owned(),
            value: value.into(),
        }
    }

    /// Both filters hold.
    pub fn and(self, other: Filter) -> Filter {
        match self {
            Filter::And { mut all } => {
                all.push(other);
                Filter::And { all }
            }
            f => Filter::And {
                all: vec![f, other],
            },
        }
    }

    /// Either filter holds.
    pub fn or(self, other: Filter) -> Filter {
        Filter::Or {
            any: vec![self, other],
        }
    }

    /// Every field name this filter mentions.
    pub fn fields(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect_fields(&mut out);
        out
    }

    fn collect_fields<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Filter::And { all: v } | Filter::Or { any: v } => {
                v.iter().for_each(|f| f.collect_fields(out))
            }
            Filter::Not { not } => not.collect_fields(out),
            Filter::Compare { field, .. }
            | Filter::In { field, .. }
            | Filter::IsNull { field }
            | Filter::Contains { field, .. }
            | Filter::StartsWith { field, .. } => out.push(field),
        }
    }
}

/// A sort key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sort {
    /// The field name.
    pub field: String,
    /// Largest first.
    #[serde(default)]
    pub descending: bool,
}

/// What a caller asks a list for.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ListRequest {
    /// Which records; `None` = all the user may read.
    pub filter: Option<Filter>,
    /// The order; records with equal keys are ordered by id. Default: by id (creation order).
    pub sort: Option<Sort>,
    /// The cursor from the previous page's [`Page::next`].
    pub after: Option<String>,
    /// Page size, 1 to 1 000; default 50.
    pub limit: Option<u32>,
    /// List the trash instead of live records.
    #[serde(default)]
    pub deleted: bool,
}

impl ListRequest {
    /// A request for records matching `filter`.
    pub fn filter(filter: Filter) -> Self {
        ListRequest {
            filter: Some(filter),
            ..Default::default()
        }
    }

    /// Sets the sort key.
    pub fn sort_by(mut self, field: &str, descending: bool) -> Self {
        self.sort = Some(Sort {
            field: field.to_owned(),
            descending,
        });
        self
    }

    /// Sets the page size.
    pub fn limit(mut self, n: u32) -> Self {
        self.limit = Some(n);
        self
    }

    /// Continues after the cursor of a previous page.
    pub fn after(mut self, cursor: Option<String>) -> Self {
        self.after = cursor;
        self
    }
}

/// One page of records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page<T> {
    /// The records of this page.
    pub items: Vec<T>,
    /// The cursor for the next page, or `None` on the last page.
    pub next: Option<String>,
}

/// A bookkeeping column every record has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetaColumn {
    /// The record id.
    Id,
    /// The owner.
    OwnerId,
    /// Creation instant.
    CreatedAt,
    /// Creator.
    CreatedBy,
    /// Last change instant.
    UpdatedAt,
    /// Last changer.
    UpdatedBy,
    /// Version number.
    Version,
    /// Trash instant.
    DeletedAt,
}

impl MetaColumn {
    /// The column's name (also its name in filters).
    pub fn name(self) -> &'static str {
        match self {
            MetaColumn::Id => "id",
            MetaColumn::OwnerId => "owner_id",
            MetaColumn::CreatedAt => "created_at",
            MetaColumn::CreatedBy => "created_by",
            MetaColumn::UpdatedAt => "updated_at",
            MetaColumn::UpdatedBy => "updated_by",
            MetaColumn::Version => "version",
            MetaColumn::DeletedAt => "deleted_at",
        }
    }

    /// The column's value type.
    pub fn ty(self) -> FieldType {
        match self {
            MetaColumn::Id
            | MetaColumn::OwnerId
            | MetaColumn::CreatedBy
            | MetaColumn::UpdatedBy => FieldType::Reference {
                to: EntityKind::User,
            },
            MetaColumn::CreatedAt | MetaColumn::UpdatedAt | MetaColumn::DeletedAt => {
                FieldType::Timestamp
            }
            MetaColumn::Version => FieldType::Int,
        }
    }

    /// Looks a bookkeeping column up by name.
    pub fn from_name(s: &str) -> Option<MetaColumn> {
        Some(match s {
            "id" => MetaColumn::Id,
            "owner_id" => MetaColumn::OwnerId,
            "created_at" => MetaColumn::CreatedAt,
            "created_by" => MetaColumn::CreatedBy,
            "updated_at" => MetaColumn::UpdatedAt,
            "updated_by" => MetaColumn::UpdatedBy,
            "version" => MetaColumn::Version,
            _ => return None,
        })
    }
}

/// A resolved column: where a field lives and what type its values have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Column {
    /// A bookkeeping column.
    Meta(MetaColumn),
    /// A built-in field (its name is a column of the entity's table).
    Builtin {
        /// The field name, from the static schema.
        name: &'static str,
        /// Its type.
        ty: FieldType,
    },
    /// A custom field, by its stable storage key.
    Custom {
        /// The storage key (`[a-z][a-z0-9_]*`, checked when the field was defined).
        key: String,
        /// Its type.
        ty: FieldType,
    },
}

impl Column {
    /// The type of values in this column.
    pub fn ty(&self) -> FieldType {
        match self {
            Column::Meta(m) => m.ty(),
            Column::Builtin { ty, .. } | Column::Custom { ty, .. } => ty.clone(),
        }
    }
}

/// A resolved condition that a backend compiles. Values are already of the column's type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cond {
    /// Always true.
    True,
    /// Always false.
    False,
    /// All hold.
    And(Vec<Cond>),
    /// Any holds.
    Or(Vec<Cond>),
    /// Does not hold.
    Not(Box<Cond>),
    /// `column <op> value` (the value is never `Null`).
    Compare(Column, Op, Value),
    /// `column in (values)`.
    In(Column, Vec<Value>),
    /// `column is null` (or an empty list).
    IsNull(Column),
    /// A list column holds the value.
    ListContains(Column, Value),
    /// A text column contains the text, case-insensitively.
    TextContains(Column, String),
    /// A text column starts with the text.
    StartsWith(Column, String),
    /// The record's owner is one of these users.
    OwnerIn(Vec<RecordId>),
    /// The record's account (the record itself for accounts, else its `account_id`) lies in one of
    /// these territories.
    AccountInTerritories {
        /// The field holding the account id, or `None` when the record is the account.
        link: Option<&'static str>,
        /// The territories.
        territories: Vec<RecordId>,
    },
    /// A live share grants the record to one of these principals (users, teams, partner accounts).
    SharedWith {
        /// Users, teams and partner accounts.
        principals: Vec<RecordId>,
        /// Only shares that grant editing.
        edit: bool,
        /// Shares expiring before this instant are ignored.
        at: DateTime<Utc>,
    },
}

impl Cond {
    /// `a AND b`, simplified.
    pub fn and(self, other: Cond) -> Cond {
        match (self, other) {
            (Cond::True, c) | (c, Cond::True) => c,
            (Cond::False, _) | (_, Cond::False) => Cond::False,
            (Cond::And(mut a), Cond::And(b)) => {
                a.extend(b);
                Cond::And(a)
            }
            (Cond::And(mut a), c) => {
                a.push(c);
                Cond::And(a)
            }
            (a, b) => Cond::And(vec![a, b]),
        }
    }

    /// `a OR b`, simplified.
    pub fn or(self, other: Cond) -> Cond {
        match (self, other) {
            (Cond::False, c) | (c, Cond::False) => c,
            (Cond::True, _) | (_, Cond::True) => Cond::True,
            (Cond::Or(mut a), Cond::Or(b)) => {
                a.extend(b);
                Cond::Or(a)
            }
            (Cond::Or(mut a), c) => {
                a.push(c);
                Cond::Or(a)
            }
            (a, b) => Cond::Or(vec![a, b]),
        }
    }
}

/// Which records by trash state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Liveness {
    /// Records not in the trash.
    #[default]
    Live,
    /// Records in the trash.
    Deleted,
    /// Both.
    Any,
}

/// The keyset position after which a page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyset {
    /// The sort column's value of the last row seen (`Null` allowed).
    pub value: Value,
    /// The id of the last row seen.
    pub id: RecordId,
}

/// The custom fields of one entity type in one tenant, by storage key, archived ones included: what a
/// backend needs to decode stored custom values.
pub type CustomTypes = std::collections::BTreeMap<String, FieldType>;

/// A resolved query that a backend compiles: tenant, type, condition, order and keyset page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// The entity type.
    pub kind: EntityKind,
    /// The tenant: backends add `tenant = ?` themselves to every statement.
    pub tenant: TenantId,
    /// The condition (user filter AND permission predicate).
    pub cond: Cond,
    /// The sort column and direction; rows with equal keys are ordered by id in the same direction.
    /// `None` orders by id ascending.
    pub sort: Option<(Column, bool)>,
    /// Start after this position.
    pub after: Option<Keyset>,
    /// At most this many rows (`None` = no limit, for counts and exports).
    pub limit: Option<u32>,
    /// Trash state.
    pub liveness: Liveness,
    /// Types of the custom fields, to decode them.
    pub custom_types: std::sync::Arc<CustomTypes>,
    /// Only these built-in fields are read (with the meta columns and custom values); `None` reads
    /// every field. Aggregates over many rows ask for the few they use.
    pub fields: Option<Vec<&'static str>>,
}

impl Query {
    /// All live records of `kind` in `tenant`.
    pub fn all(kind: EntityKind, tenant: TenantId) -> Self {
        Query {
            kind,
            tenant,
            cond: Cond::True,
            sort: None,
            after: None,
            limit: None,
            liveness: Liveness::Live,
            fields: None,
            custom_types: Default::default(),
        }
    }

    /// Adds a condition.
    pub fn and(mut self, c: Cond) -> Self {
        self.cond = std::mem::replace(&mut self.cond, Cond::True).and(c);
        self
    }
}

/// The opaque cursor string of a page: it names the sort it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CursorToken {
    pub(crate) sort: String,
    pub(crate) desc: bool,
    pub(crate) value: Value,
    pub(crate) id: RecordId,
}

impl CursorToken {
    pub(crate) fn encode(&self) -> String {
        hex::encode(serde_json::to_vec(self).unwrap_or_default())
    }

    pub(crate) fn decode(s: &str) -> Result<Self> {
        let bad = || CrmError::invalid_query(None, "cursor", "the page cursor is not valid");
        let bytes = hex::decode(s).map_err(|_| bad())?;
        serde_json::from_slice(&bytes).map_err(|_| bad())
    }
}
