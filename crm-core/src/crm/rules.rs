//! Rules particular to one entity type (validation beyond field types, and derived fields), applied
//! on every write after the caller's input is merged.

use crate::access::Policy;
use crate::custom_field;
use crate::error::{CrmError, Result};
use crate::record::Record;
use crate::schema::EntityKind;
use crate::validate::line_totals;
use crate::value::Value;

use super::door::Scoped;
use super::{Context, Engine, TenantCache};

/// Rules particular to one entity type, and derived fields.
pub(crate) fn kind_rules(
    crm: &Engine,
    tx: Scoped<'_>,
    cache: &TenantCache,
    ctx: &Context,
    r: &mut Record,
    old: Option<&Record>,
) -> Result<()> {
    let date_order = |r: &Record, a: &str, b: &str| -> Result<()> {
        let (x, y) = (r.get(a), r.get(b));
        let bad = match (x, y) {
            (Value::Date(x), Value::Date(y)) => x > y,
            (Value::Timestamp(x), Value::Timestamp(y)) => x > y,
            _ => false,
        };
        if bad {
            Err(CrmError::validation(
                b,
                "date_order",
                format!("`{b}` may not be before `{a}`"),
            ))
        } else {
            Ok(())
        }
    };
    match r.meta.kind {
        EntityKind::Quote | EntityKind::Order => {
            let currency = match r.get("currency") {
                Value::Text(c) => c.parse::<crate::money::Currency>()?,
                _ => {
                    return Err(CrmError::validation(
                        "currency",
                        "required",
                        "field `currency` is required",
                    ))
                }
            };
            let mut lines = match r.get("lines") {
                Value::Lines(l) => l.clone(),
                _ => Vec::new(),
            };
            // Every product a line newly names is one the writer may read: one out of their reach
            // is refused as a missing one is. Products the record already named stay (like any
            // reference left unchanged).
            let old_lines: Vec<crate::value::LineItem> = match old.map(|o| o.get("lines")) {
                Some(Value::Lines(l)) => l.clone(),
                _ => Vec::new(),
            };
            let known: Vec<crate::id::RecordId> =
                old_lines.iter().filter_map(|l| l.product_id).collect();
            // A line's cost is a copy of the product's cost: only a writer who may set the product
            // cost may type one in; for anyone else a line keeps the cost it had (same position,
            // same product) and any other cost they send is refused.
            let p = tx.who().p;
            let cost_rule = crate::access::field_access(p, EntityKind::Product, "unit_cost");
            let cost_open =
                cost_rule.is_none() || cost_rule == Some(crate::access::FieldAccess::Visible);
            for (i, l) in lines.iter_mut().enumerate() {
                if !cost_open {
                    let kept = old_lines
                        .get(i)
                        .filter(|o| o.product_id == l.product_id && o.product_id.is_some())
                        .and_then(|o| o.unit_cost);
                    if l.unit_cost.is_some() && l.unit_cost != kept {
                        return Err(CrmError::field_denied(
                            "update",
                            r.meta.kind.name(),
                            &format!("lines[{i}].unit_cost"),
                            "read_only_field",
                        ));
                    }
                    l.unit_cost = kept;
                }
                let Some(pid) = l.product_id else { continue };
                if !known.contains(&pid) {
                    tx.reference(EntityKind::Product, pid, &format!("lines[{i}].product_id"))?;
                }
                let prod = tx.find(EntityKind::Product, pid, crate::access::Action::Read)?;
                let Some(prod) = prod else { continue };
                if r.meta.kind == EntityKind::Order && l.unit_cost.is_none() {
                    // Keep the product's unit cost with each order line, for margin analytics —
                    // only when the writer may see that cost: a copy never carries what its source
                    // hides. Only a cost in the order's currency is meaningful for its margin; a
                    // line without one is reported by the analytics as "without cost".
                    let hidden = cost_rule == Some(crate::access::FieldAccess::Hidden);
                    if !hidden {
                        l.unit_cost = prod
                            .get("unit_cost")
                            .as_money()
                            .filter(|m| m.currency == currency)
                            .map(|m| m.amount);
                    }
                }
            }
            let t = line_totals(&lines, currency)?;
            if !lines.is_empty() {
                r.fields.insert("lines".into(), Value::Lines(lines));
            }
            r.fields.insert("subtotal".into(), Value::Money(t.subtotal));
            r.fields
                .insert("discount_total".into(), Value::Money(t.discount));
            r.fields.insert("tax_total".into(), Value::Money(t.tax));
            r.fields.insert("total".into(), Value::Money(t.total));
            if r.meta.kind == EntityKind::Order && r.get("ordered_at").is_null() {
                r.fields
                    .insert("ordered_at".into(), Value::Timestamp(r.meta.created_at));
            }
        }
        EntityKind::Product => {
            if let (Some(price), Some(cost)) = (
                r.get("list_price").as_money(),
                r.get("unit_cost").as_money(),
            ) {
                // Margins subtract one from the other: they must be in one currency.
                price.checked_sub(cost).map_err(|e| CrmError {
                    field: Some("unit_cost".into()),
                    ..e
                })?;
            }
        }
        EntityKind::Campaign => date_order(r, "starts_on", "ends_on")?,
        EntityKind::Case => date_order(r, "first_response_due", "resolution_due")?,
        EntityKind::Opportunity => {
            if let Value::Decimal(d) = r.get("probability") {
                if *d < 0.into() || *d > 100.into() {
                    return Err(CrmError::validation(
                        "probability",
                        "range",
                        "probability must be between 0 and 100",
                    ));
                }
            }
        }
        EntityKind::Activity => {
            if r.get("duration_seconds").as_int().is_some_and(|d| d < 0) {
                return Err(CrmError::validation(
                    "duration_seconds",
                    "non_negative",
                    "duration may not be negative",
                ));
            }
            if r.get("performed_by").is_null() {
                r.fields
                    .insert("performed_by".into(), Value::Ref(ctx.user_id));
            }
            if let Some(survey) = r.text("survey_type") {
                let (lo, hi) = if survey == "nps" { (0, 10) } else { (1, 5) };
                if r.text("activity_type") != Some("survey") {
                    return Err(CrmError::validation(
                        "survey_type",
                        "survey_only",
                        "only a survey activity has a survey type",
                    ));
                }
                if !r
                    .get("score")
                    .as_int()
                    .is_some_and(|s| (lo..=hi).contains(&s))
                {
                    return Err(CrmError::validation(
                        "score",
                        "range",
                        format!("a {survey} answer scores {lo} to {hi}"),
                    ));
                }
            }
        }
        EntityKind::Attachment => {
            if r.get("size_bytes").as_int().is_some_and(|d| d < 0) {
                return Err(CrmError::validation(
                    "size_bytes",
                    "non_negative",
                    "size may not be negative",
                ));
            }
            if let Some(c) = r.text("checksum") {
                if c.len() != 64 || !c.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(CrmError::validation(
                        "checksum",
                        "checksum_syntax",
                        "expected a SHA-256 checksum in hex",
                    ));
                }
            }
        }
        EntityKind::User => {
            if r.text("user_type") == Some("external") && r.get("partner_account_id").is_null() {
                return Err(CrmError::validation(
                    "partner_account_id",
                    "required",
                    "an external user belongs to a partner account",
                ));
            }
            if r.get("manager_id").as_ref_id() == Some(r.meta.id) {
                return Err(CrmError::validation(
                    "manager_id",
                    "manager_cycle",
                    "a user cannot manage themselves",
                ));
            }
        }
        EntityKind::Role => {
            if let Value::Json(j) = r.get("policy") {
                let policy = Policy::from_json(j)?;
                if let Some(keyed) = custom_rules_by_key(cache, &policy) {
                    r.fields
                        .insert("policy".into(), Value::Json(keyed.to_json()));
                }
            }
        }
        EntityKind::Share => {
            let n = ["grantee_user_id", "grantee_team_id", "grantee_account_id"]
                .iter()
                .filter(|f| !r.get(f).is_null())
                .count();
            if n != 1 {
                return Err(CrmError::validation(
                    "grantee",
                    "grantee",
                    "a share names exactly one user, team or partner account",
                ));
            }
        }
        EntityKind::CustomField => custom_field_rules(crm, cache, r, old)?,
        EntityKind::Segment => {
            let changed = |f: &str| old.is_none_or(|o| o.get(f) != r.get(f));
            if ["entity", "kind", "definition", "currency"]
                .iter()
                .any(|f| changed(f))
            {
                crm.check_segment(cache, ctx, r)?;
            }
        }
        EntityKind::AuditSetting => {
            let entity: EntityKind = r.text("entity").unwrap_or_default().parse()?;
            let off = r.get("enabled").as_bool() == Some(false);
            if off
                && (entity.is_configuration()
                    || entity.is_system_managed()
                    || entity == EntityKind::User)
            {
                return Err(CrmError::validation(
                    "enabled",
                    "always_audited",
                    format!("changes to {entity} are always audited"),
                ));
            }
        }
        _ => {}
    }
    Ok(())
}

fn custom_field_rules(
    _crm: &Engine,
    cache: &TenantCache,
    r: &mut Record,
    old: Option<&Record>,
) -> Result<()> {
    let name = r.text("name").unwrap_or_default().to_owned();
    custom_field::check_identifier(&name, "name")?;
    let entity: EntityKind = r.text("entity").unwrap_or_default().parse()?;
    if !entity.allows_custom_fields() {
        return Err(CrmError::validation(
            "entity",
            "custom_fields",
            format!("{entity} takes no custom fields"),
        ));
    }
    custom_field::type_of(r)?;
    if let Some(o) = old {
        for f in ["entity", "field_type", "reference_to"] {
            if o.get(f) != r.get(f) {
                return Err(CrmError::validation(
                    f,
                    "immutable",
                    format!("`{f}` of a custom field cannot change; define a new field"),
                ));
            }
        }
    }
    if entity.schema().field(&name).is_some() {
        return Err(CrmError::validation(
            "name",
            "name_taken",
            format!("{entity} has a built-in field `{name}`"),
        ));
    }
    let archived = r.get("archived").as_bool().unwrap_or(false);
    if !archived
        && cache
            .customs
            .all(entity)
            .iter()
            .any(|d| d.id != r.meta.id && !d.archived && d.name == name)
    {
        return Err(CrmError::validation(
            "name",
            "name_taken",
            format!("{entity} already has a custom field `{name}`"),
        ));
    }
    if old.is_none() {
        // The storage key is fixed now and never reused, so renames and archiving lose nothing.
        let taken = |k: &str| cache.customs.all(entity).iter().any(|d| d.key == k);
        let mut key = name.clone();
        let mut n = 2;
        while taken(&key) {
            key = format!("{name}_{n}");
            n += 1;
        }
        r.fields.insert("key".into(), Value::Text(key));
    }
    Ok(())
}

/// The policy with each custom-field rule keyed by the field's stable key, when a rule names a
/// field by a current name that is not its key (the field was renamed): rules follow a custom field
/// through renames because they are stored under its key. A name that is itself a key is left as
/// it is. `None` when nothing changes.
fn custom_rules_by_key(cache: &TenantCache, policy: &Policy) -> Option<Policy> {
    let mut out = policy.clone();
    out.fields.clear();
    let mut changed = false;
    for (rule, access) in &policy.fields {
        let keyed = rule.split_once(".custom.").and_then(|(entity, name)| {
            let kind: EntityKind = entity.parse().ok()?;
            if cache.customs.by_key(kind, name).is_some() {
                return None;
            }
            let def = cache.customs.by_name(kind, name)?;
            Some(format!("{entity}.custom.{}", def.key))
        });
        match keyed {
            Some(k) => {
                changed = true;
                out.fields.insert(k, *access);
            }
            None => {
                out.fields.insert(rule.clone(), *access);
            }
        }
    }
    changed.then_some(out)
}
