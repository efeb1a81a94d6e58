//! The door holds on every public method of [`crm_core::Session`].
//!
//! Each test builds one organisation of restricted principals — reps with record scope `own`,
//! `team`, `subordinates` and `territory`, an external partner user, a role with hidden fields, one
//! with a read-only field, one that may only read, and another tenant's administrator — with
//! records each of them may not read, may read but not change, and may change, and proves for one
//! method (or a small family of methods) that
//!
//! - a record the caller cannot read answers `NotFound`, exactly as a random id does;
//! - a record the caller can read but not change, or an action the role lacks, answers
//!   `PermissionDenied`;
//! - nothing the caller may not see comes back: no unreadable record (found by its id or by a
//!   marker planted in its fields) and no hidden field value, also in derived values (an account's
//!   maintained totals, order lines' unit costs, profit, stored segment members);
//! - linking a new record to an unreadable one fails as linking to a random id does, and leaves the
//!   unreadable record (and its derived totals) as it was.
//!
//! Every test collects all its failures before failing, so one leak does not hide another.
//! `every_public_session_method_has_a_door_test` parses `crm-core/src/crm/session.rs` and fails
//! when a public method of the session or of one of its sub-handles has no entry in `COVERED`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failures should be loud

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::sync::Mutex;

use crm_core::analytics::{Lifecycle, LifecycleThresholds};
use crm_core::chrono::{DateTime, Duration, Utc};
use crm_core::EntityKind as K;
use crm_core::{
    fields, Action, Context, ConvertLead, CrmError, Decimal, EmailMessage, EntityKind, ErpFacts,
    ErpFactsRow, ErrorKind, FieldAccess, Fields, Filter, FunnelOptions, Grantee, LineItem,
    ListRequest, Mailer, Money, NewRecord, ObjectRule, Origin, Policy, ProfitDimension,
    ProfitOptions, Record, RecordId, Result, RfmOptions, Scope, Session, TenantId, Value,
    ValueOptions,
};
use crm_tests::{ids, world, World};

// ------------------------------------------------------------------------------------------------
// Coverage: every public method of the session and its sub-handles names the test proving its door.
// ------------------------------------------------------------------------------------------------

/// `handle.method` → the test that proves the door on it.
const COVERED: &[(&str, &str)] = &[
    // Session itself.
    ("session.context", "session_identity_is_the_callers_own"),
    ("session.tenant", "session_identity_is_the_callers_own"),
    ("session.user_id", "session_identity_is_the_callers_own"),
    ("session.principal", "session_identity_is_the_callers_own"),
    ("session.now", "session_identity_is_the_callers_own"),
    ("session.with_origin", "session_identity_is_the_callers_own"),
    (
        "session.is_administrator",
        "session_identity_is_the_callers_own",
    ),
    (
        "session.transaction",
        "session_transaction_checks_every_call",
    ),
    (
        "session.owned_transaction",
        "session_owned_transaction_checks_every_call",
    ),
    (
        "session.records",
        "session_sub_handles_act_as_the_session_user",
    ),
    (
        "session.sales",
        "session_sub_handles_act_as_the_session_user",
    ),
    (
        "session.service",
        "session_sub_handles_act_as_the_session_user",
    ),
    (
        "session.analytics",
        "session_sub_handles_act_as_the_session_user",
    ),
    (
        "session.segments",
        "session_sub_handles_act_as_the_session_user",
    ),
    (
        "session.audit",
        "session_sub_handles_act_as_the_session_user",
    ),
    (
        "session.access",
        "session_sub_handles_act_as_the_session_user",
    ),
    (
        "session.outbox",
        "session_sub_handles_act_as_the_session_user",
    ),
    // Records.
    ("records.get", "records_get_unreadable_is_not_found"),
    (
        "records.list",
        "records_list_and_count_show_only_readable_records",
    ),
    (
        "records.count",
        "records_list_and_count_show_only_readable_records",
    ),
    (
        "records.find_by_phone",
        "records_find_by_phone_finds_only_readable_records",
    ),
    (
        "records.export",
        "records_export_exports_only_readable_records_and_fields",
    ),
    (
        "records.create",
        "records_create_cannot_link_to_unreadable_records",
    ),
    (
        "records.create_many",
        "records_create_many_cannot_link_to_unreadable_records",
    ),
    ("records.update", "records_update_is_checked"),
    ("records.delete", "records_delete_restore_purge_are_checked"),
    (
        "records.restore",
        "records_delete_restore_purge_are_checked",
    ),
    ("records.purge", "records_delete_restore_purge_are_checked"),
    ("records.merge", "records_merge_is_checked"),
    (
        "records.follow",
        "records_follow_unfollow_followers_are_checked",
    ),
    (
        "records.unfollow",
        "records_follow_unfollow_followers_are_checked",
    ),
    (
        "records.followers",
        "records_follow_unfollow_followers_are_checked",
    ),
    // Sales.
    (
        "sales.transition_lead",
        "sales_lead_transitions_are_checked",
    ),
    (
        "sales.disqualify_lead",
        "sales_lead_transitions_are_checked",
    ),
    ("sales.convert_lead", "sales_convert_lead_is_checked"),
    (
        "sales.move_opportunity",
        "sales_move_opportunity_is_checked",
    ),
    ("sales.submit_quote", "sales_quote_transitions_are_checked"),
    ("sales.approve_quote", "sales_quote_transitions_are_checked"),
    ("sales.send_quote", "sales_quote_transitions_are_checked"),
    ("sales.reject_quote", "sales_quote_transitions_are_checked"),
    ("sales.accept_quote", "sales_quote_transitions_are_checked"),
    ("sales.expire_quote", "sales_quote_transitions_are_checked"),
    (
        "sales.forecast",
        "sales_forecast_counts_only_readable_opportunities",
    ),
    (
        "sales.funnel",
        "sales_funnel_counts_only_readable_opportunities",
    ),
    // Service.
    (
        "service.transition_case",
        "service_transition_case_is_checked",
    ),
    (
        "service.check_slas",
        "service_check_slas_marks_only_writable_cases",
    ),
    (
        "service.due_tasks",
        "service_due_tasks_lists_only_readable_tasks",
    ),
    (
        "service.fire_reminders",
        "service_fire_reminders_only_for_writable_tasks",
    ),
    // Analytics.
    ("analytics.rfm", "analytics_rfm_scores_only_readable_orders"),
    (
        "analytics.lifecycles",
        "analytics_lifecycles_use_only_readable_orders",
    ),
    (
        "analytics.profit",
        "analytics_profit_uses_only_readable_orders_and_costs",
    ),
    (
        "analytics.kpis",
        "analytics_kpis_count_only_readable_records",
    ),
    (
        "analytics.team_kpis",
        "analytics_team_kpis_count_only_readable_records",
    ),
    (
        "analytics.screen_pop",
        "analytics_screen_pop_shows_only_readable_records",
    ),
    ("analytics.cross_sell", "analytics_cross_sell_is_checked"),
    (
        "analytics.customer_values",
        "analytics_customer_values_use_only_readable_records",
    ),
    // Segments.
    ("segments.parse", "segments_parse_refuses_hidden_fields"),
    ("segments.filter", "segments_filter_is_checked"),
    ("segments.count", "segments_count_and_members_are_checked"),
    ("segments.members", "segments_count_and_members_are_checked"),
    ("segments.refresh", "segments_refresh_is_checked"),
    // Audit.
    ("audit.history", "audit_history_is_checked"),
    ("audit.as_of", "audit_as_of_version_diff_are_checked"),
    ("audit.version", "audit_as_of_version_diff_are_checked"),
    (
        "audit.diff_versions",
        "audit_as_of_version_diff_are_checked",
    ),
    ("audit.restore_version", "audit_restore_version_is_checked"),
    (
        "audit.user_activity",
        "audit_user_activity_shows_only_readable_records",
    ),
    ("audit.verify", "audit_verify_is_for_administrators"),
    ("audit.stage_history", "audit_stage_history_is_checked"),
    // Access administration.
    ("access.share", "access_share_is_checked"),
    ("access.unshare", "access_unshare_is_checked"),
    ("access.explain", "access_explain_is_checked"),
    ("access.who_can_read", "access_who_can_read_is_checked"),
    (
        "access.roles_reading_field",
        "access_roles_reading_field_is_for_administrators",
    ),
    // Outbox.
    ("outbox.pending", "outbox_is_for_integration_users"),
    ("outbox.ack", "outbox_is_for_integration_users"),
    ("outbox.deliver_emails", "outbox_is_for_integration_users"),
];

/// A token of Rust source: an identifier (or number) or one punctuation character.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    Punct(char),
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// `src` with comments, string literals and char literals blanked (newlines kept), so braces and
/// `pub fn` are only seen where they are code.
fn code_only(src: &str) -> Vec<char> {
    let b: Vec<char> = src.chars().collect();
    let mut out: Vec<char> = Vec::with_capacity(b.len());
    let blank = |out: &mut Vec<char>, from: &[char]| {
        out.extend(from.iter().map(|c| if *c == '\n' { '\n' } else { ' ' }));
    };
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            let mut j = i;
            while j < b.len() && b[j] != '\n' {
                j += 1;
            }
            blank(&mut out, &b[i..j]);
            i = j;
        } else if c == '/' && next == Some('*') {
            // Block comments nest in Rust.
            let mut j = i;
            let mut depth = 0usize;
            while j < b.len() {
                if b[j] == '/' && b.get(j + 1) == Some(&'*') {
                    depth += 1;
                    j += 2;
                } else if b[j] == '*' && b.get(j + 1) == Some(&'/') {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            let j = j.min(b.len());
            blank(&mut out, &b[i..j]);
            i = j;
        } else if c == 'r'
            && matches!(next, Some('"') | Some('#'))
            && (i == 0
                || !is_ident_char(b[i - 1])
                || (b[i - 1] == 'b' && (i < 2 || !is_ident_char(b[i - 2]))))
        {
            // A raw string r"…" / r#"…"# (else a raw identifier r#name: plain code).
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            while j < b.len() {
                if b[j] == '"' && (0..hashes).all(|k| b.get(j + 1 + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            let j = j.min(b.len());
            blank(&mut out, &b[i..j]);
            i = j;
        } else if c == '"' {
            let mut j = i + 1;
            while j < b.len() && b[j] != '"' {
                if b[j] == '\\' {
                    j += 1;
                }
                j += 1;
            }
            let j = (j + 1).min(b.len());
            blank(&mut out, &b[i..j]);
            i = j;
        } else if c == '\'' {
            if next == Some('\\') {
                // An escaped char literal: '\n', '\'', '\u{1F600}'.
                let mut j = i + 3;
                while j < b.len() && b[j] != '\'' {
                    j += 1;
                }
                let j = (j + 1).min(b.len());
                blank(&mut out, &b[i..j]);
                i = j;
            } else if b.get(i + 2) == Some(&'\'') {
                blank(&mut out, &b[i..i + 3]);
                i += 3;
            } else {
                // A lifetime ('_, 'static): code.
                out.push(c);
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn tokens(src: &str) -> Vec<Tok> {
    let code = code_only(src);
    let mut out = Vec::new();
    let mut i = 0;
    while i < code.len() {
        let c = code[i];
        if is_ident_char(c) {
            let start = i;
            while i < code.len() && is_ident_char(code[i]) {
                i += 1;
            }
            out.push(Tok::Ident(code[start..i].iter().collect()));
        } else {
            if !c.is_whitespace() {
                out.push(Tok::Punct(c));
            }
            i += 1;
        }
    }
    out
}

fn ident(t: Option<&Tok>) -> Option<&str> {
    match t {
        Some(Tok::Ident(s)) => Some(s.as_str()),
        _ => None,
    }
}

/// The index of the brace closing the one opened at `open`.
fn closing(toks: &[Tok], open: usize) -> usize {
    let mut depth = 0usize;
    for (k, t) in toks.iter().enumerate().skip(open) {
        match t {
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => {
                depth -= 1;
                if depth == 0 {
                    return k;
                }
            }
            _ => {}
        }
    }
    toks.len()
}

/// One inherent `impl` block at the top level: its self type, whether it is written `Type<'_>`,
/// and its `pub fn`s with their signatures (tokens from `fn` to the body).
struct ImplBlock {
    self_type: String,
    elided_lifetime: bool,
    methods: Vec<(String, Vec<Tok>)>,
}

fn impl_blocks(src: &str) -> Vec<ImplBlock> {
    let toks = tokens(src);
    let mut blocks = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < toks.len() {
        match &toks[i] {
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => depth = depth.saturating_sub(1),
            Tok::Ident(w) if w == "impl" && depth == 0 => {
                let Some(open) = toks[i..]
                    .iter()
                    .position(|t| *t == Tok::Punct('{'))
                    .map(|p| p + i)
                else {
                    break;
                };
                let close = closing(&toks, open);
                let header = &toks[i + 1..open];
                let body = &toks[(open + 1).min(close)..close];
                i = close + 1;
                if header.iter().any(|t| *t == Tok::Ident("for".into())) {
                    continue; // a trait impl
                }
                // Skip the impl's own generics: impl<'a, T> …
                let mut h = 0;
                if header.first() == Some(&Tok::Punct('<')) {
                    let mut angle = 0i32;
                    while h < header.len() {
                        match header[h] {
                            Tok::Punct('<') => angle += 1,
                            Tok::Punct('>') => angle -= 1,
                            _ => {}
                        }
                        h += 1;
                        if angle == 0 {
                            break;
                        }
                    }
                }
                // The self type: the last segment of a path a::b::Type.
                let mut name = None;
                while let Some(seg) = ident(header.get(h)) {
                    name = Some(seg.to_owned());
                    if header.get(h + 1) == Some(&Tok::Punct(':'))
                        && header.get(h + 2) == Some(&Tok::Punct(':'))
                    {
                        h += 3;
                    } else {
                        h += 1;
                        break;
                    }
                }
                let Some(self_type) = name else { continue };
                let elided_lifetime = header.get(h..h + 4)
                    == Some(
                        &[
                            Tok::Punct('<'),
                            Tok::Punct('\''),
                            Tok::Ident("_".into()),
                            Tok::Punct('>'),
                        ][..],
                    );
                blocks.push(ImplBlock {
                    self_type,
                    elided_lifetime,
                    methods: pub_fns(body),
                });
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    blocks
}

/// The `pub fn`s declared directly in an impl body (not `pub(crate)`, not nested in a method).
fn pub_fns(body: &[Tok]) -> Vec<(String, Vec<Tok>)> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < body.len() {
        match &body[i] {
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => depth = depth.saturating_sub(1),
            Tok::Ident(w) if w == "pub" && depth == 0 => {
                let mut j = i + 1;
                while matches!(
                    ident(body.get(j)),
                    Some("const" | "async" | "unsafe" | "extern")
                ) {
                    j += 1;
                }
                if ident(body.get(j)) == Some("fn") {
                    if let Some(name) = ident(body.get(j + 1)) {
                        let end = body[j..]
                            .iter()
                            .position(|t| matches!(t, Tok::Punct('{') | Tok::Punct(';')))
                            .map(|p| p + j)
                            .unwrap_or(body.len());
                        out.push((name.to_owned(), body[j..end].to_vec()));
                        i = end;
                        continue;
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// The type `X` of a signature ending `-> X<'_>`, if it does.
fn returned_handle(sig: &[Tok]) -> Option<String> {
    let arrow = sig
        .windows(2)
        .position(|w| w == [Tok::Punct('-'), Tok::Punct('>')])?;
    let rest = &sig[arrow + 2..];
    match rest {
        [Tok::Ident(t), Tok::Punct('<'), Tok::Punct('\''), Tok::Ident(u), Tok::Punct('>')]
            if u == "_" =>
        {
            Some(t.clone())
        }
        _ => None,
    }
}

/// Every public method of the session (`session.NAME`) and of its sub-handles (`records.NAME`, …):
/// the `pub fn`s of `impl Session` and of every inherent `impl X<'_>` block, `X` named by the
/// accessor of `impl Session` returning it (its lowercase name when none does). `impl Crm` is the
/// host's and left out.
fn public_methods(src: &str) -> BTreeSet<String> {
    let blocks = impl_blocks(src);
    let mut handle_of: BTreeMap<String, String> = BTreeMap::new();
    for b in blocks.iter().filter(|b| b.self_type == "Session") {
        for (name, sig) in &b.methods {
            if let Some(t) = returned_handle(sig) {
                handle_of.insert(t, name.clone());
            }
        }
    }
    let mut out = BTreeSet::new();
    for b in &blocks {
        let handle = if b.self_type == "Session" {
            "session".to_owned()
        } else if b.elided_lifetime && b.self_type != "Crm" {
            handle_of
                .get(&b.self_type)
                .cloned()
                .unwrap_or_else(|| b.self_type.to_lowercase())
        } else {
            continue;
        };
        for (name, _) in &b.methods {
            out.insert(format!("{handle}.{name}"));
        }
    }
    out
}

/// The names of the `#[test]` functions of `src`.
fn test_names(src: &str) -> BTreeSet<String> {
    let toks = tokens(src);
    let mut out = BTreeSet::new();
    for (i, w) in toks.windows(4).enumerate() {
        if w == [
            Tok::Punct('#'),
            Tok::Punct('['),
            Tok::Ident("test".into()),
            Tok::Punct(']'),
        ] {
            if let Some(f) = toks[i + 4..]
                .iter()
                .position(|t| *t == Tok::Ident("fn".into()))
            {
                if let Some(name) = ident(toks.get(i + 4 + f + 1)) {
                    out.insert(name.to_owned());
                }
            }
        }
    }
    out
}

#[test]
fn every_public_session_method_has_a_door_test() {
    let found = public_methods(include_str!("../../crm-core/src/crm/session.rs"));
    // The parse itself must have worked: every sub-handle, and the methods every session has.
    let handles: BTreeSet<&str> = found.iter().filter_map(|m| m.split('.').next()).collect();
    for h in [
        "session",
        "records",
        "sales",
        "service",
        "analytics",
        "segments",
        "audit",
        "access",
        "outbox",
    ] {
        assert!(
            handles.contains(h),
            "the parse of session.rs found no method of `{h}` (found: {found:?})"
        );
    }
    for m in ["records.get", "session.transaction", "outbox.pending"] {
        assert!(found.contains(m), "the parse of session.rs missed `{m}`");
    }
    assert!(
        !found.iter().any(|m| m.starts_with("crm.")),
        "host-only `impl Crm` methods were taken for session methods: {found:?}"
    );
    let mut covered: BTreeMap<&str, &str> = BTreeMap::new();
    let mut duplicated = Vec::new();
    for (m, t) in COVERED {
        if covered.insert(m, t).is_some() {
            duplicated.push(*m);
        }
    }
    let uncovered: Vec<&String> = found
        .iter()
        .filter(|m| !covered.contains_key(m.as_str()))
        .collect();
    let stale: Vec<&&str> = covered.keys().filter(|m| !found.contains(**m)).collect();
    let tests = test_names(include_str!("door.rs"));
    let missing_tests: Vec<(&&str, &&str)> = covered
        .iter()
        .filter(|(_, t)| !tests.contains(**t))
        .collect();
    assert!(
        uncovered.is_empty()
            && stale.is_empty()
            && missing_tests.is_empty()
            && duplicated.is_empty(),
        "the door test table is out of date:\n  public session methods without a permission test \
         (add a test and an entry in COVERED): {uncovered:?}\n  COVERED entries for methods the \
         session no longer has: {stale:?}\n  COVERED entries naming a test that does not exist: \
         {missing_tests:?}\n  methods listed twice: {duplicated:?}"
    );
}

#[test]
fn coverage_parser_handles_comments_strings_and_nesting() {
    let sample = r####"
/// Docs: impl Records<'_> { pub fn fake(&self) {} }
impl Crm { pub fn host_only(&self) {} }
impl std::fmt::Debug for Session { fn fmt(&self) { let s = "pub fn not_me() {"; } }
impl Session {
    pub(crate) fn engine(&self) {}
    pub fn records(&self) -> Records<'_> { Records { session: self } }
    pub fn thing(&self) -> Result<()> { let c = '{'; let e = '\''; let l: &'static str = "}\""; /* pub fn nope() { /* nested } */ */ Ok(()) }
}
impl Records<'_> {
    pub fn get(&self) { if true { pub fn inner() {} } }
    // pub fn commented(&self) {}
    pub const fn konst(&self) {}
    pub fn raw(&self) -> &str { r#"pub fn in_raw() { "# }
}
impl<'a> Generic<'a> { pub fn not_a_handle(&self) {} }
impl Lonely<'_> { pub fn alone(&self) {} }
fn free(x: impl Sized) { }
"####;
    let got = public_methods(sample);
    let want: BTreeSet<String> = [
        "session.records",
        "session.thing",
        "records.get",
        "records.konst",
        "records.raw",
        "lonely.alone",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(got, want);
    let tests = test_names("#[test]\nfn a() {}\n#[test]\n#[ignore]\nfn b() {}\nfn c() {}");
    assert_eq!(
        tests,
        ["a", "b"]
            .iter()
            .map(|s| s.to_string())
            .collect::<BTreeSet<_>>()
    );
}

// ------------------------------------------------------------------------------------------------
// The organisation.
// ------------------------------------------------------------------------------------------------

/// Planted in every text of the records no rep may read.
const M_TEXT: &str = "ZQX";
/// The unit price (and total) of the orders no rep may read.
const M_ORDER: &str = "987654.32";
/// The amount of the opportunities no rep may read.
const M_OPP: &str = "876543.21";
/// In every account's `vat_number` (hidden from the role `hidden fields`).
const M_VAT: &str = "HVAT";
/// The product's `unit_cost` (hidden from the role `hidden fields`), copied into order lines.
const M_COST: &str = "4242.42";
/// The amount of the reps' own opportunities (`amount` is hidden from the role `hidden fields`).
const M_AMOUNT: &str = "5353.53";

/// The entity types of the reps' work.
const BUSINESS: &[EntityKind] = &[
    K::Account,
    K::Contact,
    K::Lead,
    K::Opportunity,
    K::Quote,
    K::Order,
    K::Case,
    K::Activity,
    K::Segment,
];
/// What the role `read only` may read (and nothing else: no orders at all).
const NOPERM_READS: &[EntityKind] = &[
    K::Account,
    K::Contact,
    K::Lead,
    K::Opportunity,
    K::Quote,
    K::Case,
    K::Activity,
    K::Segment,
];
const CRUDX: &[Action] = &[
    Action::Create,
    Action::Read,
    Action::Update,
    Action::Delete,
    Action::Export,
];

const SECRET_ACC_PHONE: &str = "+39 02 8000 0001";
const SECRET_CONTACT_PHONE: &str = "+39 02 8000 0002";

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn eur(s: &str) -> Value {
    Value::Money(Money::parse(s, "EUR").unwrap())
}

/// A quote line with the product cost written on it (hidden from the role `hidden fields`).
fn costed_line(price: &str) -> LineItem {
    LineItem {
        unit_cost: Some(dec(M_COST)),
        ..line(None, price)
    }
}

fn line(product: Option<RecordId>, price: &str) -> LineItem {
    LineItem {
        product_id: product,
        description: "Item".into(),
        quantity: dec("1"),
        unit_price: dec(price),
        discount_percent: dec("0"),
        tax_rate: dec("0"),
        unit_cost: None,
    }
}

/// Full rights (but configuration) on the business types with these scopes; products readable.
fn business(read: &[Scope], write: &[Scope]) -> Policy {
    let mut p = Policy::default();
    for k in BUSINESS {
        p = p.allow(*k, ObjectRule::new(CRUDX, read, write));
    }
    p.allow(K::Attachment, ObjectRule::new(CRUDX, read, write))
        .allow(K::AccountContact, ObjectRule::new(CRUDX, read, write))
        .allow(
            K::Product,
            ObjectRule::new(&[Action::Read], &[Scope::All], &[]),
        )
}

/// `p` with every field open. External users' field rules default to an allow-list (nothing shown
/// until granted); the partner user here is about record scope, so its role opts out. Written as
/// JSON so the key is simply ignored by a core without field modes.
fn open_fields(p: Policy) -> Policy {
    let mut j = p.to_json();
    if let Some(m) = j.as_object_mut() {
        m.insert("field_mode".into(), serde_json::json!("open"));
    }
    Policy::from_json(&j).unwrap()
}

fn noperm_policy() -> Policy {
    let mut p = Policy::default();
    for k in NOPERM_READS {
        p = p.allow(*k, ObjectRule::new(&[Action::Read], &[Scope::All], &[]));
    }
    p
}

/// A restricted rep and their records.
struct Rep {
    name: &'static str,
    role: &'static str,
    ctx: Context,
    /// Owned by the rep; its only order, opportunity and case belong to someone else and are
    /// unreadable to the rep.
    acc: RecordId,
    acc_phone: String,
    /// Owned by the rep, with the rep's own order, opportunity, case, task, lead and contact.
    acc2: RecordId,
    acc2_phone: String,
    order2: RecordId,
    opp2: RecordId,
    case2: RecordId,
    task2: RecordId,
    lead2: RecordId,
    contact2: RecordId,
    /// One record per business type the rep may read but not change.
    ro: BTreeMap<EntityKind, RecordId>,
}

impl Rep {
    fn own_records(&self) -> Vec<(&'static str, RecordId)> {
        vec![
            ("an account", self.acc),
            ("an account", self.acc2),
            ("an order", self.order2),
            ("an opportunity", self.opp2),
            ("a case", self.case2),
            ("a task", self.task2),
            ("a lead", self.lead2),
            ("a contact", self.contact2),
        ]
    }
}

struct Org {
    w: World,
    start: DateTime<Utc>,
    admin_role: RecordId,
    /// Role name → (id, policy).
    roles: BTreeMap<&'static str, (RecordId, Policy)>,
    t1: RecordId,
    team_a: RecordId,
    outsider: Context,
    mate: Context,
    sub: Context,
    partner_acc: RecordId,
    widget: RecordId,
    gadget: RecordId,
    reps: Vec<Rep>,
    hidden: Context,
    readonly: Context,
    noperm: Context,
    /// The administrator of tenant `other` (same Crm, same database).
    other: Context,
    other_account: RecordId,
    /// One record per business type that no rep may read (owned by `outsider`, in territory
    /// South, shared with nobody).
    secret: BTreeMap<EntityKind, RecordId>,
    /// An unreadable account in the trash.
    trashed: RecordId,
    /// Every record no rep may read, with its type and a label.
    unreadable: Vec<(String, EntityKind, RecordId)>,
    /// The shares the administrator made: (rep, type, share id).
    shares: Vec<(&'static str, EntityKind, RecordId)>,
}

/// Who looks, and what must never reach them.
struct Viewer {
    name: String,
    ctx: Context,
    forbidden: Vec<(String, String)>,
}

fn org() -> Org {
    let w = world();
    let start = w.crm.now();
    let a = w.admin_session();
    let mk = |kind: EntityKind, owner: RecordId, fields: Fields| -> RecordId {
        a.records()
            .create(
                kind,
                NewRecord {
                    fields,
                    owner_id: Some(owner),
                },
            )
            .unwrap_or_else(|e| panic!("fixture {kind}: {e}"))
            .meta
            .id
    };
    let stages = serde_json::json!([
        {"name": "prospecting", "probability": 10},
        {"name": "negotiation", "probability": 60},
        {"name": "won", "probability": 100, "outcome": "won"},
        {"name": "lost", "probability": 0, "outcome": "lost"}
    ]);
    a.records()
        .create(
            K::Pipeline,
            fields! { "name" => "Default", "stages" => Value::Json(stages), "is_default" => true },
        )
        .unwrap();
    let t1 = w.territory("North");
    let t2 = w.territory("South");
    let team_a = w.team("A");
    let team_b = w.team("B");
    let mut roles: BTreeMap<&'static str, (RecordId, Policy)> = BTreeMap::new();
    let mut role = |name: &'static str, p: Policy| {
        let id = w.role(name, &p);
        roles.insert(name, (id, p));
        id
    };
    let plain = role("plain", business(&[Scope::Own], &[Scope::Own]));
    let r_own = role("scope own", business(&[Scope::Own], &[Scope::Own]));
    let r_team = role("scope team", business(&[Scope::Team], &[Scope::Own]));
    let r_subs = role(
        "scope subordinates",
        business(&[Scope::Subordinates], &[Scope::Own]),
    );
    let r_terr = role(
        "scope territory",
        business(&[Scope::Territory], &[Scope::Own]),
    );
    let r_partner = role(
        "partner",
        open_fields(business(&[Scope::All], &[Scope::All])),
    );
    let r_hidden = role(
        "hidden fields",
        business(&[Scope::All], &[Scope::Own])
            .field(K::Account, "vat_number", FieldAccess::Hidden)
            .field(K::Product, "unit_cost", FieldAccess::Hidden)
            .field(K::Opportunity, "amount", FieldAccess::Hidden),
    );
    let r_readonly = role(
        "read-only field",
        business(&[Scope::All], &[Scope::Own]).field(K::Account, "industry", FieldAccess::ReadOnly),
    );
    let r_noperm = role("read only", noperm_policy());
    let outsider = w.user(
        "outsider",
        plain,
        fields! { "team_ids" => ids(&[team_b]), "territory_ids" => ids(&[t2]) },
    );
    let mate = w.user("mate", plain, fields! { "team_ids" => ids(&[team_a]) });
    let own = w.user("own", r_own, fields! {});
    let team = w.user("team", r_team, fields! { "team_ids" => ids(&[team_a]) });
    let subs = w.user("subs", r_subs, fields! {});
    let sub = w.user("sub", plain, fields! { "manager_id" => subs.user_id });
    let terr = w.user("terr", r_terr, fields! { "territory_ids" => ids(&[t1]) });
    let partner_acc = mk(
        K::Account,
        w.admin.user_id,
        fields! { "name" => "Partner SRL", "roles" => Value::List(vec!["partner".into()]) },
    );
    let partner = w.user(
        "partner",
        r_partner,
        fields! { "user_type" => "external", "partner_account_id" => partner_acc },
    );
    let hidden = w.user("hidden", r_hidden, fields! {});
    let readonly = w.user("readonly", r_readonly, fields! {});
    let noperm = w.user("noperm", r_noperm, fields! {});
    let admin_role = a
        .records()
        .get(K::User, w.admin.user_id)
        .unwrap()
        .reference("role_id")
        .unwrap();
    let widget = mk(
        K::Product,
        w.admin.user_id,
        fields! { "sku" => "W-1", "name" => "Widget", "list_price" => eur("10.00"), "unit_cost" => eur(M_COST) },
    );
    let gadget = mk(
        K::Product,
        w.admin.user_id,
        fields! { "sku" => "G-1", "name" => "Gadget", "list_price" => eur("1.00") },
    );

    // The partner organisation sees the catalogue product it sells (external users reach only
    // what is shared with them).
    a.access()
        .share(
            K::Product,
            widget,
            Grantee::Partner(partner_acc),
            false,
            None,
        )
        .unwrap();

    // What no rep may read: owned by `outsider` (team B, territory South), accounts in South.
    let out = outsider.user_id;
    let s_acc = mk(
        K::Account,
        out,
        fields! {
            "name" => "ZQX secret account", "country" => "IT", "territory_id" => t2,
            "vat_number" => "HVAT-ZQX", "industry" => "ZQX industry", "phone" => SECRET_ACC_PHONE,
        },
    );
    let s_contact = mk(
        K::Contact,
        out,
        fields! {
            "last_name" => "ZQX contact", "account_id" => s_acc, "phone" => SECRET_CONTACT_PHONE,
            "email" => "zqx@example.com",
        },
    );
    let s_lead = mk(
        K::Lead,
        out,
        fields! { "last_name" => "ZQX lead", "company" => "ZQX company" },
    );
    a.sales()
        .transition_lead(s_lead, 1, "contacted", None)
        .unwrap();
    let s_opp = mk(
        K::Opportunity,
        out,
        fields! { "name" => "ZQX opportunity", "account_id" => s_acc, "amount" => eur(M_OPP) },
    );
    let s_quote = mk(
        K::Quote,
        out,
        fields! {
            "account_id" => s_acc, "currency" => "EUR", "number" => "ZQX-Q1",
            "email_to" => "zqx@example.com", "lines" => Value::Lines(vec![costed_line(M_ORDER)]),
        },
    );
    // Approved at once and sent (an `email.requested` event).
    a.sales().submit_quote(s_quote, 1, None).unwrap();
    let s_order = mk(
        K::Order,
        out,
        fields! {
            "account_id" => s_acc, "currency" => "EUR", "number" => "ZQX-O1",
            "lines" => Value::Lines(vec![line(Some(widget), M_ORDER), line(Some(gadget), "1.00")]),
        },
    );
    let s_case = mk(
        K::Case,
        out,
        fields! { "subject" => "ZQX case", "account_id" => s_acc, "priority" => "high" },
    );
    let s_task = mk(
        K::Activity,
        out,
        fields! {
            "activity_type" => "task", "subject" => "ZQX task", "account_id" => s_acc,
            "due_at" => start - Duration::hours(1),
        },
    );
    let s_seg = mk(
        K::Segment,
        out,
        fields! { "name" => "ZQX segment", "entity" => "account", "definition" => "country = \"IT\"" },
    );
    // A custom reference from opportunities to accounts (links must be checked there too).
    a.records()
        .create(
            K::CustomField,
            fields! { "entity" => "opportunity", "name" => "referrer", "field_type" => "reference", "reference_to" => "account" },
        )
        .unwrap();
    let trashed = mk(
        K::Account,
        out,
        fields! { "name" => "ZQX trashed account", "country" => "IT" },
    );
    a.records().delete(K::Account, trashed, None).unwrap();
    let secret: BTreeMap<EntityKind, RecordId> = [
        (K::Account, s_acc),
        (K::Contact, s_contact),
        (K::Lead, s_lead),
        (K::Opportunity, s_opp),
        (K::Quote, s_quote),
        (K::Order, s_order),
        (K::Case, s_case),
        (K::Activity, s_task),
        (K::Segment, s_seg),
    ]
    .into_iter()
    .collect();
    let mut unreadable: Vec<(String, EntityKind, RecordId)> = secret
        .iter()
        .map(|(k, id)| (format!("the unreadable {k}"), *k, *id))
        .collect();
    unreadable.push((
        "the unreadable account in the trash".into(),
        K::Account,
        trashed,
    ));

    let mut shares: Vec<(&'static str, EntityKind, RecordId)> = Vec::new();
    let mut reps = Vec::new();
    let specs: [(&'static str, &'static str, Context); 5] = [
        ("own", "scope own", own),
        ("team", "scope team", team),
        ("subordinates", "scope subordinates", subs),
        ("territory", "scope territory", terr),
        ("partner", "partner", partner),
    ];
    for (i, (name, role_name, ctx)) in specs.into_iter().enumerate() {
        let me = ctx.user_id;
        let acc_phone = format!("+39 02 81{i:02} 0001");
        let acc = mk(
            K::Account,
            me,
            fields! {
                "name" => format!("{name} account"), "country" => "IT", "territory_id" => t2,
                "vat_number" => format!("HVAT-{name}"), "phone" => acc_phone.clone(),
            },
        );
        unreadable.push((
            format!("the unreadable order on `{name}`'s account"),
            K::Order,
            mk(
                K::Order,
                out,
                fields! { "account_id" => acc, "currency" => "EUR", "lines" => Value::Lines(vec![line(Some(widget), M_ORDER)]) },
            ),
        ));
        unreadable.push((
            format!("the unreadable opportunity on `{name}`'s account"),
            K::Opportunity,
            mk(
                K::Opportunity,
                out,
                fields! { "name" => "ZQX opportunity on a visible account", "account_id" => acc, "amount" => eur(M_OPP) },
            ),
        ));
        unreadable.push((
            format!("the unreadable case on `{name}`'s account"),
            K::Case,
            mk(
                K::Case,
                out,
                fields! { "subject" => "ZQX case on a visible account", "account_id" => acc },
            ),
        ));
        let acc2_phone = format!("+39 02 82{i:02} 0001");
        let acc2 = mk(
            K::Account,
            me,
            fields! {
                "name" => format!("{name} second account"), "country" => "IT", "territory_id" => t2,
                "vat_number" => format!("HVAT-{name}-2"), "phone" => acc2_phone.clone(),
            },
        );
        let order2 = mk(
            K::Order,
            me,
            fields! {
                "account_id" => acc2, "currency" => "EUR", "number" => format!("{name}-O1"),
                "lines" => Value::Lines(vec![line(Some(widget), "100.00")]),
            },
        );
        let opp2 = mk(
            K::Opportunity,
            me,
            fields! { "name" => format!("{name} deal"), "account_id" => acc2, "amount" => eur(M_AMOUNT) },
        );
        let case2 = mk(
            K::Case,
            me,
            fields! { "subject" => format!("{name} case"), "account_id" => acc2, "priority" => "high" },
        );
        let task2 = mk(
            K::Activity,
            me,
            fields! {
                "activity_type" => "task", "subject" => format!("{name} task"), "account_id" => acc2,
                "due_at" => start - Duration::hours(1),
            },
        );
        let lead2 = mk(
            K::Lead,
            me,
            fields! { "last_name" => format!("{name} lead"), "company" => format!("{name} prospect") },
        );
        let contact2 = mk(
            K::Contact,
            me,
            fields! { "last_name" => format!("{name} contact"), "account_id" => acc2 },
        );
        // Readable, not writable: through the rep's read scope, or a read share.
        let (ro_owner, grant) = match name {
            "own" => (out, Some(Grantee::User(me))),
            "team" => (mate.user_id, None),
            "subordinates" => (sub.user_id, None),
            "territory" => (out, None),
            _ => (out, Some(Grantee::Partner(partner_acc))),
        };
        let mut ro = BTreeMap::new();
        let ro_territory = if name == "territory" { t1 } else { t2 };
        let ro_acc = mk(
            K::Account,
            ro_owner,
            fields! { "name" => format!("readable account of {name}"), "country" => "IT", "territory_id" => ro_territory },
        );
        ro.insert(K::Account, ro_acc);
        let ro_fields: [(EntityKind, Fields); 8] = [
            (
                K::Contact,
                fields! { "last_name" => format!("readable contact of {name}"), "account_id" => ro_acc },
            ),
            (
                K::Lead,
                fields! { "last_name" => format!("readable lead of {name}"), "company" => "Readable" },
            ),
            (
                K::Opportunity,
                fields! { "name" => format!("readable deal of {name}"), "account_id" => ro_acc, "amount" => eur("30.00") },
            ),
            (
                K::Quote,
                fields! { "account_id" => ro_acc, "currency" => "EUR", "lines" => Value::Lines(vec![costed_line("20.00")]) },
            ),
            (
                K::Order,
                fields! { "account_id" => ro_acc, "currency" => "EUR", "lines" => Value::Lines(vec![line(Some(widget), "20.00")]) },
            ),
            (
                K::Case,
                fields! { "subject" => format!("readable case of {name}"), "account_id" => ro_acc, "priority" => "high" },
            ),
            (
                K::Activity,
                fields! {
                    "activity_type" => "task", "subject" => format!("readable task of {name}"),
                    "account_id" => ro_acc, "due_at" => start - Duration::hours(1),
                },
            ),
            (
                K::Segment,
                fields! { "name" => format!("readable segment of {name}"), "entity" => "account", "definition" => "country = \"IT\"" },
            ),
        ];
        for (k, f) in ro_fields {
            ro.insert(k, mk(k, ro_owner, f));
        }
        for (k, id) in &ro {
            // The territory scope does not reach types without an account link: share those.
            let g = match (name, k) {
                ("territory", K::Lead | K::Segment) => Some(Grantee::User(me)),
                _ => grant,
            };
            if let Some(g) = g {
                let s = a.access().share(*k, *id, g, false, None).unwrap();
                shares.push((name, *k, s.meta.id));
            }
        }
        reps.push(Rep {
            name,
            role: role_name,
            ctx,
            acc,
            acc_phone,
            acc2,
            acc2_phone,
            order2,
            opp2,
            case2,
            task2,
            lead2,
            contact2,
            ro,
        });
    }
    let other = w
        .crm
        .bootstrap(
            &TenantId::new("other").unwrap(),
            "admin2",
            Default::default(),
        )
        .unwrap();
    let other_account = w
        .on(&other)
        .records()
        .create(
            K::Account,
            fields! { "name" => "Other tenant account", "phone" => SECRET_ACC_PHONE },
        )
        .unwrap()
        .meta
        .id;
    drop(a);
    Org {
        start,
        admin_role,
        roles,
        t1,
        team_a,
        outsider,
        mate,
        sub,
        partner_acc,
        widget,
        gadget,
        reps,
        hidden,
        readonly,
        noperm,
        other,
        other_account,
        secret,
        trashed,
        unreadable,
        shares,
        w,
    }
}

impl Org {
    fn admin(&self) -> Session {
        self.w.admin_session()
    }

    fn on(&self, ctx: &Context) -> Session {
        self.w.on(ctx)
    }

    fn random(&self) -> RecordId {
        RecordId::new_at(self.w.crm.now())
    }

    /// A record as the administrator sees it.
    fn admin_get(&self, kind: EntityKind, id: RecordId) -> Record {
        self.admin()
            .records()
            .get(kind, id)
            .unwrap_or_else(|e| panic!("admin get {kind} {id}: {e}"))
    }

    /// Every unreadable record as the administrator sees it now.
    fn unreadable_now(&self) -> Vec<Record> {
        self.unreadable
            .iter()
            .map(|(_, k, id)| self.admin_get(*k, *id))
            .collect()
    }

    fn rep(&self, name: &str) -> &Rep {
        self.reps.iter().find(|r| r.name == name).unwrap()
    }

    /// What a rep may never see: the planted markers, every unreadable record's id, the other reps'
    /// records and the other tenant's.
    fn rep_forbidden(&self, rep: &Rep) -> Vec<(String, String)> {
        let mut f: Vec<(String, String)> = vec![
            ("text planted in unreadable records".into(), M_TEXT.into()),
            (
                "the e-mail of the unreadable contact".into(),
                "zqx@example.com".into(),
            ),
            ("the total of an unreadable order".into(), M_ORDER.into()),
            (
                "the amount of an unreadable opportunity".into(),
                M_OPP.into(),
            ),
            (
                "the id of another tenant's account".into(),
                self.other_account.to_string(),
            ),
        ];
        for (label, _, id) in &self.unreadable {
            f.push((format!("the id of {label}"), id.to_string()));
        }
        for r in self.reps.iter().filter(|r| r.name != rep.name) {
            for (what, id) in r.own_records() {
                f.push((
                    format!("the id of {what} owned by `{}`", r.name),
                    id.to_string(),
                ));
            }
        }
        f
    }

    /// What the role `hidden fields` may never see.
    fn hidden_forbidden(&self) -> Vec<(String, String)> {
        vec![
            ("hidden account.vat_number".into(), M_VAT.into()),
            (
                "hidden product.unit_cost (e.g. copied into order lines)".into(),
                M_COST.into(),
            ),
            (
                "hidden opportunity.amount (of the unreadable opportunities)".into(),
                M_OPP.into(),
            ),
            (
                "hidden opportunity.amount (of the reps' opportunities)".into(),
                M_AMOUNT.into(),
            ),
            (
                "the id of another tenant's account".into(),
                self.other_account.to_string(),
            ),
        ]
    }

    /// What the other tenant's administrator may never see: anything of this tenant.
    fn other_forbidden(&self) -> Vec<(String, String)> {
        let mut f: Vec<(String, String)> = vec![
            ("this tenant's text marker".into(), M_TEXT.into()),
            ("this tenant's order total".into(), M_ORDER.into()),
            ("this tenant's opportunity amount".into(), M_OPP.into()),
            ("this tenant's opportunity amount".into(), M_AMOUNT.into()),
            ("this tenant's vat numbers".into(), M_VAT.into()),
            ("this tenant's product cost".into(), M_COST.into()),
        ];
        for (label, _, id) in &self.unreadable {
            f.push((format!("the id of this tenant's {label}"), id.to_string()));
        }
        for r in &self.reps {
            for (what, id) in r.own_records() {
                f.push((
                    format!("the id of this tenant's {what} of `{}`", r.name),
                    id.to_string(),
                ));
            }
            for (k, id) in &r.ro {
                f.push((format!("the id of this tenant's {k}"), id.to_string()));
            }
        }
        f
    }

    fn viewers(&self) -> Vec<Viewer> {
        let mut v: Vec<Viewer> = self
            .reps
            .iter()
            .map(|r| Viewer {
                name: r.name.to_owned(),
                ctx: r.ctx.clone(),
                forbidden: self.rep_forbidden(r),
            })
            .collect();
        v.push(Viewer {
            name: "hidden fields".into(),
            ctx: self.hidden.clone(),
            forbidden: self.hidden_forbidden(),
        });
        v.push(Viewer {
            name: "another tenant's administrator".into(),
            ctx: self.other.clone(),
            forbidden: self.other_forbidden(),
        });
        v
    }
}

/// Every record of `kind` the session may read (the fixture has fewer than 1 000 of each).
fn all(s: &Session, kind: EntityKind) -> Result<Vec<Record>> {
    Ok(s.records()
        .list(kind, &ListRequest::default().limit(1000))?
        .items)
}

// ------------------------------------------------------------------------------------------------
// Checks that collect every failure of a test.
// ------------------------------------------------------------------------------------------------

#[derive(Default)]
struct Checks(Vec<String>);

fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

fn show<T: Debug>(r: &Result<T>) -> String {
    match r {
        Ok(v) => cut(&format!("Ok({v:?})"), 300),
        Err(e) => format!(
            "Err({:?}, rule {:?}, field {:?}: {})",
            e.kind, e.rule, e.field, e.message
        ),
    }
}

type Shape = (
    ErrorKind,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

fn shape(e: &CrmError) -> Shape {
    (
        e.kind,
        e.rule.clone(),
        e.field.clone(),
        e.action.clone(),
        e.entity.clone(),
    )
}

impl Checks {
    fn check(&mut self, ok: bool, msg: impl FnOnce() -> String) {
        if !ok {
            self.0.push(msg());
        }
    }

    fn fail(&mut self, msg: String) {
        self.0.push(msg);
    }

    fn kind<T: Debug>(&mut self, what: &str, r: &Result<T>, want: ErrorKind) {
        match r {
            Err(e) if e.kind == want => {}
            _ => self
                .0
                .push(format!("{what}: expected {want:?}, got {}", show(r))),
        }
    }

    fn denied<T: Debug>(&mut self, what: &str, r: &Result<T>) {
        self.kind(what, r, ErrorKind::PermissionDenied);
    }

    /// A call on an unreadable record answers `NotFound`, exactly as on a random id.
    fn like_random<T: Debug>(&mut self, what: &str, unreadable: &Result<T>, random: &Result<T>) {
        self.kind(
            &format!("{what} (unreadable id)"),
            unreadable,
            ErrorKind::NotFound,
        );
        self.kind(&format!("{what} (random id)"), random, ErrorKind::NotFound);
        if let (Err(a), Err(b)) = (unreadable, random) {
            if a.kind == ErrorKind::NotFound
                && b.kind == ErrorKind::NotFound
                && shape(a) != shape(b)
            {
                self.0.push(format!(
                    "{what}: the unreadable id answers {:?}, a random id {:?}",
                    shape(a),
                    shape(b)
                ));
            }
        }
    }

    /// A link (in `field`) to an unreadable record fails exactly as a link to a random id; the
    /// random id's failure must name `field`, else the probe did not reach the link.
    fn same_failure<T: Debug>(
        &mut self,
        field: &str,
        what: &str,
        unreadable: &Result<T>,
        random: &Result<T>,
    ) {
        match (unreadable, random) {
            (Err(a), Err(b)) if (a.kind, &a.rule, &a.field) == (b.kind, &b.rule, &b.field) => {}
            _ => self.0.push(format!(
                "{what}: must fail as with a random id; with the unreadable id: {}; with a random id: {}",
                show(unreadable),
                show(random)
            )),
        }
        if let Err(b) = random {
            if b.field.as_deref() != Some(field) {
                self.0.push(format!(
                    "{what}: the probe did not reach `{field}`: with a random id it fails with {}",
                    show(random)
                ));
            }
        }
    }

    /// Nothing of `forbidden` is in what came back.
    fn no_leak<T: Debug>(&mut self, what: &str, shown: &T, forbidden: &[(String, String)]) {
        let s = format!("{shown:?}");
        let hits: BTreeSet<&str> = forbidden
            .iter()
            .filter(|(_, n)| s.contains(n.as_str()))
            .map(|(l, _)| l.as_str())
            .collect();
        if let Some((_, needle)) = forbidden.iter().find(|(_, n)| s.contains(n.as_str())) {
            let at = s.find(needle.as_str()).unwrap_or(0);
            let mut lo = at.saturating_sub(100);
            while !s.is_char_boundary(lo) {
                lo -= 1;
            }
            let mut hi = (at + needle.len() + 60).min(s.len());
            while !s.is_char_boundary(hi) {
                hi += 1;
            }
            self.0
                .push(format!("{what}: leaks {hits:?} — …{}…", &s[lo..hi]));
        }
    }

    /// An answer (not an error) without anything of `forbidden`.
    fn ok_no_leak<T: Debug>(&mut self, what: &str, r: &Result<T>, forbidden: &[(String, String)]) {
        match r {
            Ok(v) => self.no_leak(what, v, forbidden),
            Err(_) => self
                .0
                .push(format!("{what}: expected an answer, got {}", show(r))),
        }
    }

    /// An answer without anything of `forbidden`, or a refusal (`PermissionDenied`, e.g. naming a
    /// field the aggregate needs and the user may not see): the answer, if any.
    fn answer_or_refusal<'r, T: Debug>(
        &mut self,
        what: &str,
        r: &'r Result<T>,
        forbidden: &[(String, String)],
    ) -> Option<&'r T> {
        match r {
            Ok(v) => {
                self.no_leak(what, v, forbidden);
                Some(v)
            }
            Err(e) if e.kind == ErrorKind::PermissionDenied => {
                self.no_leak(what, e, forbidden);
                None
            }
            Err(_) => {
                self.0.push(format!(
                    "{what}: expected an answer or PermissionDenied, got {}",
                    show(r)
                ));
                None
            }
        }
    }

    fn finish(self) {
        assert!(
            self.0.is_empty(),
            "{} door failure(s):\n  - {}",
            self.0.len(),
            self.0.join("\n  - ")
        );
    }
}

/// On an account whose only order, opportunity and case the reader may not read, the maintained
/// totals the reader sees are empty.
fn clean_totals(c: &mut Checks, what: &str, acc: &Record) {
    for f in [
        "order_count",
        "open_opportunities",
        "open_cases",
        "other_currency_orders",
    ] {
        let v = acc.get(f);
        c.check(matches!(v, Value::Null | Value::Int(0)), || {
            format!("{what}: `{f}` = {v:?} counts records the reader may not read")
        });
    }
    for f in [
        "lifetime_value",
        "average_order_value",
        "open_opportunity_value",
    ] {
        let v = acc.get(f);
        let empty = match v {
            Value::Null => true,
            Value::Money(m) => m.amount.is_zero(),
            _ => false,
        };
        c.check(empty, || {
            format!("{what}: `{f}` = {v:?} adds up records the reader may not read")
        });
    }
    for f in ["first_order_at", "last_order_at"] {
        let v = acc.get(f);
        c.check(v.is_null(), || {
            format!("{what}: `{f}` = {v:?} comes from an order the reader may not read")
        });
    }
}

/// How a call on a record id must be refused.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Door {
    /// A read: it answers on a readable record.
    Read,
    /// A change (or an action only some roles have): refused on a record the caller may read but
    /// not change.
    Change,
}

/// The door on a call taking the id of a record of `kind`, for every principal:
/// - each rep, on the unreadable record: `NotFound` like a random id, and the record unchanged;
///   on a record they may read but not change: `PermissionDenied` ([`Door::Change`]) or an answer
///   ([`Door::Read`]);
/// - another tenant's administrator, on this tenant's record: `NotFound` like a random id;
/// - the role `read only`: `PermissionDenied` for a change of a type it reads, `NotFound` like a
///   random id on a type it may not read at all.
fn door<T: Debug>(
    o: &Org,
    c: &mut Checks,
    what: &str,
    kind: EntityKind,
    door: Door,
    call: &dyn Fn(&Session, RecordId, i64) -> Result<T>,
) {
    let secret = o.secret[&kind];
    for rep in &o.reps {
        let s = o.on(&rep.ctx);
        let before = o.admin_get(kind, secret);
        let random = call(&s, o.random(), 1);
        let hidden = call(&s, secret, before.meta.version);
        c.like_random(
            &format!("{what}: `{}` on an unreadable {kind}", rep.name),
            &hidden,
            &random,
        );
        c.check(o.admin_get(kind, secret) == before, || {
            format!("{what}: `{}` changed an unreadable {kind}", rep.name)
        });
        let ro = rep.ro[&kind];
        let before = o.admin_get(kind, ro);
        let r = call(&s, ro, before.meta.version);
        match door {
            Door::Change => {
                c.denied(
                    &format!(
                        "{what}: `{}` on a {kind} they may read but not change",
                        rep.name
                    ),
                    &r,
                );
                c.check(o.admin_get(kind, ro) == before, || {
                    format!("{what}: `{}` changed a {kind} they may only read", rep.name)
                });
            }
            Door::Read => c.check(r.is_ok(), || {
                format!(
                    "{what}: `{}` on a {kind} they may read: expected an answer, got {}",
                    rep.name,
                    show(&r)
                )
            }),
        }
    }
    let s = o.on(&o.other);
    let before = o.admin_get(kind, secret);
    let hidden = call(&s, secret, before.meta.version);
    let random = call(&s, o.random(), 1);
    c.like_random(
        &format!("{what}: another tenant's administrator on this tenant's {kind}"),
        &hidden,
        &random,
    );
    c.check(o.admin_get(kind, secret) == before, || {
        format!("{what}: another tenant's administrator changed this tenant's {kind}")
    });
    let s = o.on(&o.noperm);
    let before = o.admin_get(kind, secret);
    if NOPERM_READS.contains(&kind) {
        if door == Door::Change {
            let r = call(&s, secret, before.meta.version);
            c.denied(&format!("{what}: a role that may only read {kind}"), &r);
        }
    } else {
        let hidden = call(&s, secret, before.meta.version);
        let random = call(&s, o.random(), 1);
        c.like_random(
            &format!("{what}: a role without any permission on {kind}"),
            &hidden,
            &random,
        );
    }
    c.check(o.admin_get(kind, secret) == before, || {
        format!("{what}: the role `read only` changed a {kind}")
    });
}

/// A harmless change of a record of `kind`.
fn touch(kind: EntityKind) -> Fields {
    match kind {
        K::Account => fields! { "city" => "Bari" },
        K::Contact => fields! { "job_title" => "Buyer" },
        K::Lead => fields! { "description" => "probe" },
        K::Opportunity => fields! { "name" => "probe" },
        K::Quote => fields! { "email_to" => "probe@example.com" },
        K::Order => fields! { "number" => "probe" },
        K::Case => fields! { "description" => "probe" },
        K::Activity => fields! { "body" => "probe" },
        K::Segment => fields! { "name" => "probe" },
        _ => fields! {},
    }
}

// ------------------------------------------------------------------------------------------------
// Session.
// ------------------------------------------------------------------------------------------------

#[test]
fn session_identity_is_the_callers_own() {
    let o = org();
    let mut c = Checks::default();
    let mut who: Vec<(String, Context, &str)> = o
        .reps
        .iter()
        .map(|r| (r.name.to_owned(), r.ctx.clone(), r.role))
        .collect();
    who.push(("hidden".into(), o.hidden.clone(), "hidden fields"));
    who.push(("readonly".into(), o.readonly.clone(), "read-only field"));
    who.push(("noperm".into(), o.noperm.clone(), "read only"));
    let secret = o.secret[&K::Account];
    for (name, ctx, role) in &who {
        let s = o.on(ctx);
        c.check(s.context() == ctx, || {
            format!("session.context of `{name}` is {:?}", s.context())
        });
        c.check(s.tenant() == &ctx.tenant, || {
            format!("session.tenant of `{name}` is {:?}", s.tenant())
        });
        c.check(s.user_id() == ctx.user_id, || {
            format!("session.user_id of `{name}` is {}", s.user_id())
        });
        c.check(s.now() == o.w.crm.now(), || {
            format!("session.now of `{name}` is not the CRM's clock")
        });
        c.check(matches!(s.is_administrator(), Ok(false)), || {
            format!("session.is_administrator of `{name}` is not false")
        });
        match s.principal() {
            Ok(p) => {
                c.check(p.user_id == ctx.user_id, || {
                    format!("session.principal of `{name}` is user {}", p.user_id)
                });
                c.check(
                    p.role.as_ref().map(|r| r.1.as_str()) == Some(*role)
                        && *p.policy == o.roles[role].1,
                    || format!("session.principal of `{name}` has role {:?}", p.role),
                );
                c.check(*p.policy != Policy::admin(), || {
                    format!("session.principal of `{name}` has the administrator's policy")
                });
            }
            Err(e) => c.fail(format!("session.principal of `{name}`: {e}")),
        }
        let elsewhere = s.with_origin(Origin {
            client: Some("elsewhere".into()),
            address: Some("10.0.0.1".into()),
            location: None,
        });
        c.check(
            elsewhere.user_id() == ctx.user_id
                && elsewhere.tenant() == &ctx.tenant
                && elsewhere.context().origin.client.as_deref() == Some("elsewhere"),
            || {
                format!(
                    "session.with_origin of `{name}` acts as {:?}",
                    elsewhere.context()
                )
            },
        );
        if o.reps.iter().any(|r| r.name == name) {
            c.like_random(
                &format!("session.with_origin: `{name}` reading an unreadable account"),
                &elsewhere.records().get(K::Account, secret),
                &elsewhere.records().get(K::Account, o.random()),
            );
            let ro = o.rep(name).ro[&K::Account];
            c.denied(
                &format!("session.with_origin: `{name}` changing an account they may only read"),
                &elsewhere
                    .records()
                    .update(K::Account, ro, 1, fields! { "city" => "Bari" }),
            );
        }
    }
    let s = o.on(&o.other);
    c.check(s.tenant().as_str() == "other", || {
        format!(
            "session.tenant of another tenant's administrator is {:?}",
            s.tenant()
        )
    });
    c.like_random(
        "session of another tenant's administrator reading this tenant's account",
        &s.records().get(K::Account, secret),
        &s.records().get(K::Account, o.random()),
    );
    // Contexts mixing tenants open no session.
    let forged = Context::new(o.w.tenant.clone(), o.other.user_id);
    c.denied(
        "Crm::session for this tenant with another tenant's user",
        &o.w.crm.session(&forged),
    );
    let forged = Context::new(o.other.tenant.clone(), o.reps[0].ctx.user_id);
    c.denied(
        "Crm::session for another tenant with this tenant's user",
        &o.w.crm.session(&forged),
    );
    c.finish();
}

#[test]
fn session_sub_handles_act_as_the_session_user() {
    let o = org();
    let mut c = Checks::default();
    let sec = |k: EntityKind| o.secret[&k];
    for rep in &o.reps {
        let s = o.on(&rep.ctx);
        let n = rep.name;
        c.like_random(
            &format!("session.records of `{n}`"),
            &s.records().get(K::Account, sec(K::Account)),
            &s.records().get(K::Account, o.random()),
        );
        c.like_random(
            &format!("session.sales of `{n}`"),
            &s.sales()
                .transition_lead(sec(K::Lead), 2, "qualified", None),
            &s.sales().transition_lead(o.random(), 2, "qualified", None),
        );
        c.like_random(
            &format!("session.service of `{n}`"),
            &s.service()
                .transition_case(sec(K::Case), 1, "in_progress", None),
            &s.service()
                .transition_case(o.random(), 1, "in_progress", None),
        );
        c.like_random(
            &format!("session.segments of `{n}`"),
            &s.segments().count(sec(K::Segment)),
            &s.segments().count(o.random()),
        );
        c.like_random(
            &format!("session.audit of `{n}`"),
            &s.audit().history(K::Account, sec(K::Account), None, None),
            &s.audit().history(K::Account, o.random(), None, None),
        );
        c.like_random(
            &format!("session.access of `{n}`"),
            &s.access().share(
                K::Account,
                sec(K::Account),
                Grantee::User(rep.ctx.user_id),
                false,
                None,
            ),
            &s.access().share(
                K::Account,
                o.random(),
                Grantee::User(rep.ctx.user_id),
                false,
                None,
            ),
        );
        c.denied(
            &format!("session.outbox of `{n}`"),
            &s.outbox().pending(0, 10),
        );
        // The analytics handle counts what the session's user may read.
        let from = o.start - Duration::days(1);
        let to = o.start + Duration::days(1);
        match (s.analytics().kpis(from, to, None), all(&s, K::Order)) {
            (Ok(rows), Ok(orders)) => {
                let counted: u64 = rows.iter().map(|k| k.orders).sum();
                c.check(counted == orders.len() as u64, || {
                    format!(
                        "session.analytics of `{n}`: kpis count {counted} orders, the user may read {}",
                        orders.len()
                    )
                });
            }
            (a, b) => c.fail(format!(
                "session.analytics of `{n}`: {} / {}",
                show(&a),
                show(&b)
            )),
        }
        // A record created through a handle belongs to the session's user.
        match s
            .records()
            .create(K::Account, fields! { "name" => "handle probe" })
        {
            Ok(r) => c.check(r.meta.owner_id == rep.ctx.user_id, || {
                format!(
                    "session.records of `{n}` created a record owned by {}",
                    r.meta.owner_id
                )
            }),
            Err(e) => c.fail(format!("session.records of `{n}` cannot create: {e}")),
        }
    }
    c.finish();
}

/// The calls of a transaction are checked like the facade's: reads, writes and links.
#[test]
fn session_transaction_checks_every_call() {
    let o = org();
    let mut c = Checks::default();
    let sa = o.secret[&K::Account];
    let before = o.unreadable_now();
    for rep in &o.reps {
        let n = rep.name;
        let forbidden = o.rep_forbidden(rep);
        let s = o.on(&rep.ctx);
        let count = s.records().count(K::Account, None).unwrap();
        let ro = rep.ro[&K::Account];
        let mut tx = match s.transaction() {
            Ok(tx) => tx,
            Err(e) => {
                c.fail(format!("session.transaction of `{n}`: {e}"));
                continue;
            }
        };
        let mut gets = Vec::new();
        for &k in BUSINESS {
            gets.push((
                k,
                tx.get(k, o.secret[&k]),
                tx.get(k, RecordId::new_at(o.start)),
            ));
        }
        let listed = tx.list(K::Account, &ListRequest::default().limit(1000));
        let counted = tx.count(K::Account, None);
        let upd_ro = tx.update(K::Account, ro, 1, fields! { "city" => "Bari" });
        let upd_s = tx.update(K::Account, sa, 1, fields! { "city" => "Bari" });
        let upd_r = tx.update(
            K::Account,
            RecordId::new_at(o.start),
            1,
            fields! { "city" => "Bari" },
        );
        let del_s = tx.delete(K::Account, sa, None);
        let del_r = tx.delete(K::Account, RecordId::new_at(o.start), None);
        let res_s = tx.restore(K::Account, o.trashed);
        let res_r = tx.restore(K::Account, RecordId::new_at(o.start));
        let pur_s = tx.purge(K::Account, o.trashed, "gone");
        let pur_r = tx.purge(K::Account, RecordId::new_at(o.start), "gone");
        let link = |id: RecordId| fields! { "name" => "tx probe", "account_id" => id, "amount" => eur("1.00") };
        let cr_r = tx.create(K::Opportunity, link(RecordId::new_at(o.start)));
        let cr_s = tx.create(K::Opportunity, link(sa));
        let many_r = tx.create_many(
            K::Opportunity,
            vec![
                link(rep.acc2).into(),
                link(RecordId::new_at(o.start)).into(),
            ],
        );
        let many_s = tx.create_many(K::Opportunity, vec![link(rep.acc2).into(), link(sa).into()]);
        let commit = tx.commit();
        for (k, hid, rnd) in &gets {
            c.like_random(
                &format!("transaction.get by `{n}` of an unreadable {k}"),
                hid,
                rnd,
            );
        }
        c.ok_no_leak(&format!("transaction.list by `{n}`"), &listed, &forbidden);
        c.check(matches!(counted, Ok(x) if x == count), || {
            format!(
                "transaction.count by `{n}`: {} (the facade counts {count})",
                show(&counted)
            )
        });
        c.denied(
            &format!("transaction.update by `{n}` of an account they may only read"),
            &upd_ro,
        );
        c.like_random(&format!("transaction.update by `{n}`"), &upd_s, &upd_r);
        c.like_random(&format!("transaction.delete by `{n}`"), &del_s, &del_r);
        c.like_random(&format!("transaction.restore by `{n}`"), &res_s, &res_r);
        c.like_random(&format!("transaction.purge by `{n}`"), &pur_s, &pur_r);
        c.same_failure(
            "account_id",
            &format!("transaction.create by `{n}` of an opportunity on an unreadable account"),
            &cr_s,
            &cr_r,
        );
        c.same_failure(
            "rows[1].account_id",
            &format!(
                "transaction.create_many by `{n}` with an opportunity on an unreadable account"
            ),
            &many_s,
            &many_r,
        );
        c.check(commit.is_ok(), || {
            format!("transaction.commit by `{n}`: {}", show(&commit))
        });
    }
    c.check(o.unreadable_now() == before, || {
        "session.transaction: unreadable records (or their totals) changed".into()
    });
    // Another tenant's administrator.
    let s = o.on(&o.other);
    let mut tx = s.transaction().unwrap();
    let hid = tx.get(K::Account, sa);
    let rnd = tx.get(K::Account, RecordId::new_at(o.start));
    let upd = tx.update(K::Account, sa, 1, fields! { "city" => "Bari" });
    let upd_r = tx.update(
        K::Account,
        RecordId::new_at(o.start),
        1,
        fields! { "city" => "Bari" },
    );
    let listed = tx.list(K::Account, &ListRequest::default().limit(1000));
    tx.rollback();
    c.like_random(
        "transaction.get by another tenant's administrator",
        &hid,
        &rnd,
    );
    c.like_random(
        "transaction.update by another tenant's administrator",
        &upd,
        &upd_r,
    );
    c.ok_no_leak(
        "transaction.list by another tenant's administrator",
        &listed,
        &o.other_forbidden(),
    );
    c.finish();
}

#[test]
fn session_owned_transaction_checks_every_call() {
    let o = org();
    let mut c = Checks::default();
    let sa = o.secret[&K::Account];
    let before = o.unreadable_now();
    let start = o.start;
    for rep in &o.reps {
        let n = rep.name;
        let s = o.on(&rep.ctx);
        let ro = rep.ro[&K::Account];
        let acc2 = rep.acc2;
        let tx = match s.owned_transaction() {
            Ok(tx) => tx,
            Err(e) => {
                c.fail(format!("session.owned_transaction of `{n}`: {e}"));
                continue;
            }
        };
        let get_s = tx.run(move |tx| tx.get(K::Account, sa));
        let get_r = tx.run(move |tx| tx.get(K::Account, RecordId::new_at(start)));
        let listed = tx.run(|tx| tx.list(K::Account, &ListRequest::default().limit(1000)));
        let upd_ro = tx.run(move |tx| tx.update(K::Account, ro, 1, fields! { "city" => "Bari" }));
        let upd_s = tx.run(move |tx| tx.update(K::Account, sa, 1, fields! { "city" => "Bari" }));
        let upd_r = tx.run(move |tx| {
            tx.update(
                K::Account,
                RecordId::new_at(start),
                1,
                fields! { "city" => "Bari" },
            )
        });
        let cr_r = tx.run(move |tx| {
            tx.create(
                K::Opportunity,
                fields! { "name" => "probe", "account_id" => RecordId::new_at(start) },
            )
        });
        let cr_s = tx.run(move |tx| {
            tx.create(
                K::Opportunity,
                fields! { "name" => "probe", "account_id" => sa },
            )
        });
        let ok = tx.run(move |tx| {
            tx.create(
                K::Opportunity,
                fields! { "name" => "probe", "account_id" => acc2 },
            )
        });
        let commit = tx.commit();
        c.like_random(&format!("owned_transaction get by `{n}`"), &get_s, &get_r);
        c.ok_no_leak(
            &format!("owned_transaction list by `{n}`"),
            &listed,
            &o.rep_forbidden(rep),
        );
        c.denied(
            &format!("owned_transaction update by `{n}` of an account they may only read"),
            &upd_ro,
        );
        c.like_random(
            &format!("owned_transaction update by `{n}`"),
            &upd_s,
            &upd_r,
        );
        c.same_failure(
            "account_id",
            &format!(
                "owned_transaction create by `{n}` of an opportunity on an unreadable account"
            ),
            &cr_s,
            &cr_r,
        );
        c.check(ok.is_ok() && commit.is_ok(), || {
            format!(
                "owned_transaction of `{n}`: {} / {}",
                show(&ok),
                show(&commit)
            )
        });
    }
    c.check(o.unreadable_now() == before, || {
        "session.owned_transaction: unreadable records (or their totals) changed".into()
    });
    c.finish();
}

// ------------------------------------------------------------------------------------------------
// Records.
// ------------------------------------------------------------------------------------------------

#[test]
fn records_get_unreadable_is_not_found() {
    let o = org();
    let mut c = Checks::default();
    for &k in BUSINESS {
        door(&o, &mut c, "records.get", k, Door::Read, &|s, id, _| {
            s.records().get(k, id)
        });
    }
    for rep in &o.reps {
        let s = o.on(&rep.ctx);
        c.like_random(
            &format!(
                "records.get: `{}` on an unreadable account in the trash",
                rep.name
            ),
            &s.records().get(K::Account, o.trashed),
            &s.records().get(K::Account, o.random()),
        );
        c.like_random(
            &format!("records.get: `{}` on another tenant's account", rep.name),
            &s.records().get(K::Account, o.other_account),
            &s.records().get(K::Account, o.random()),
        );
    }
    c.finish();
}

/// What `get` returns holds no hidden field and no total of unreadable records.
#[test]
fn records_get_reveals_no_hidden_or_derived_value() {
    let o = org();
    let mut c = Checks::default();
    for rep in &o.reps {
        let s = o.on(&rep.ctx);
        let what = format!("records.get by `{}` of their account", rep.name);
        let r = s.records().get(K::Account, rep.acc);
        c.ok_no_leak(&what, &r, &o.rep_forbidden(rep));
        if let Ok(acc) = &r {
            clean_totals(&mut c, &what, acc);
        }
    }
    let s = o.on(&o.hidden);
    let f = o.hidden_forbidden();
    for rep in &o.reps {
        for (k, id) in [
            (K::Account, rep.acc),
            (K::Account, rep.acc2),
            (K::Order, rep.order2),
            (K::Opportunity, rep.opp2),
            (K::Quote, rep.ro[&K::Quote]),
        ] {
            c.ok_no_leak(
                &format!(
                    "records.get of `{}`'s {k} by the role `hidden fields`",
                    rep.name
                ),
                &s.records().get(k, id),
                &f,
            );
        }
    }
    for (k, id) in [
        (K::Account, o.secret[&K::Account]),
        (K::Order, o.secret[&K::Order]),
        (K::Quote, o.secret[&K::Quote]),
        (K::Opportunity, o.secret[&K::Opportunity]),
        (K::Product, o.widget),
    ] {
        c.ok_no_leak(
            &format!("records.get of a {k} by the role `hidden fields`"),
            &s.records().get(k, id),
            &f,
        );
    }
    // What the role's own writes return: an order line copies the product's hidden cost.
    let acc = s
        .records()
        .create(K::Account, fields! { "name" => "hidden's account" })
        .unwrap()
        .meta
        .id;
    let order = s.records().create(
        K::Order,
        fields! { "account_id" => acc, "currency" => "EUR", "lines" => Value::Lines(vec![line(Some(o.widget), "10.00")]) },
    );
    c.ok_no_leak(
        "records.create of an order by the role `hidden fields`",
        &order,
        &f,
    );
    if let Ok(order) = &order {
        c.ok_no_leak(
            "records.update of an order by the role `hidden fields`",
            &s.records().update(
                K::Order,
                order.meta.id,
                order.meta.version,
                fields! { "number" => "H-1" },
            ),
            &f,
        );
    }
    c.finish();
}

#[test]
fn records_list_and_count_show_only_readable_records() {
    let o = org();
    let mut c = Checks::default();
    for v in o.viewers() {
        let s = o.on(&v.ctx);
        for &k in BUSINESS {
            let page = s.records().list(k, &ListRequest::default().limit(1000));
            c.ok_no_leak(
                &format!("records.list({k}) by `{}`", v.name),
                &page,
                &v.forbidden,
            );
            let trash = s.records().list(
                k,
                &ListRequest {
                    deleted: true,
                    limit: Some(1000),
                    ..Default::default()
                },
            );
            c.ok_no_leak(
                &format!("records.list({k}, trash) by `{}`", v.name),
                &trash,
                &v.forbidden,
            );
            let n = s.records().count(k, None);
            match (&page, &n) {
                (Ok(p), Ok(n)) => c.check(p.items.len() as u64 == *n, || {
                    format!(
                        "records.count({k}) by `{}` is {n}, the list has {}",
                        v.name,
                        p.items.len()
                    )
                }),
                _ => c.fail(format!("records.count({k}) by `{}`: {}", v.name, show(&n))),
            }
        }
    }
    for rep in &o.reps {
        let s = o.on(&rep.ctx);
        let what = format!("records.list(account) by `{}`: their account", rep.name);
        match all(&s, K::Account) {
            Ok(items) => match items.iter().find(|r| r.meta.id == rep.acc) {
                Some(acc) => clean_totals(&mut c, &what, acc),
                None => c.fail(format!("{what} is not listed")),
            },
            Err(e) => c.fail(format!("{what}: {e}")),
        }
        // Filtering on a maintained total must not reveal unreadable records either.
        for f in ["order_count", "open_opportunities", "open_cases"] {
            let filter = Filter::eq("id", rep.acc).and(Filter::eq(f, 1_i64));
            let n = s.records().count(K::Account, Some(&filter));
            // Refusing the filter (the total is hidden from them) is as good as counting nothing.
            let refused = matches!(&n, Err(e) if e.kind == ErrorKind::PermissionDenied);
            c.check(matches!(n, Ok(0)) || refused, || {
                format!(
                    "records.count by `{}` of their account with `{f}` = 1 is {}: the filter sees records they may not read",
                    rep.name,
                    show(&n)
                )
            });
        }
    }
    // Sorting on a maintained total must not order by what the rep may not read: the account whose
    // only order is unreadable has no lifetime value for them, so it sorts after their account with
    // a readable order (empty values sort last when descending).
    for rep in &o.reps {
        let s = o.on(&rep.ctx);
        let what = format!("records.list by `{}` sorted on lifetime_value", rep.name);
        let r = s.records().list(
            K::Account,
            &ListRequest::default()
                .sort_by("lifetime_value", true)
                .limit(1000),
        );
        if let Some(page) = c.answer_or_refusal(&what, &r, &o.rep_forbidden(rep)) {
            let at = |id: RecordId| page.items.iter().position(|r| r.meta.id == id);
            c.check(at(rep.acc) > at(rep.acc2), || {
                format!(
                    "{what}: their account whose only order is unreadable sorts at {:?}, before their account with a readable order at {:?}",
                    at(rep.acc),
                    at(rep.acc2)
                )
            });
        }
    }
    // The role `read only` may not read orders at all.
    let s = o.on(&o.noperm);
    c.denied(
        "records.list(order) by a role without the permission",
        &s.records().list(K::Order, &ListRequest::default()),
    );
    c.denied(
        "records.count(order) by a role without the permission",
        &s.records().count(K::Order, None),
    );
    // Hidden fields may not be filtered or sorted on.
    let s = o.on(&o.hidden);
    c.denied(
        "records.count by the role `hidden fields` filtering on vat_number",
        &s.records()
            .count(K::Account, Some(&Filter::eq("vat_number", "HVAT-own"))),
    );
    c.denied(
        "records.list by the role `hidden fields` sorted on vat_number",
        &s.records().list(
            K::Account,
            &ListRequest::default().sort_by("vat_number", false),
        ),
    );
    c.denied(
        "records.count by the role `hidden fields` filtering on product.unit_cost",
        &s.records().count(
            K::Product,
            Some(&Filter::eq(
                "unit_cost",
                Money::parse(M_COST, "EUR").unwrap(),
            )),
        ),
    );
    c.finish();
}

#[test]
fn records_find_by_phone_finds_only_readable_records() {
    let o = org();
    let mut c = Checks::default();
    for v in o.viewers() {
        let s = o.on(&v.ctx);
        for (k, phone) in [
            (K::Account, SECRET_ACC_PHONE),
            (K::Contact, SECRET_CONTACT_PHONE),
        ] {
            c.ok_no_leak(
                &format!(
                    "records.find_by_phone({k}, the unreadable {k}'s phone) by `{}`",
                    v.name
                ),
                &s.records().find_by_phone(k, phone),
                &v.forbidden,
            );
        }
    }
    for rep in &o.reps {
        let s = o.on(&rep.ctx);
        let what = format!("records.find_by_phone by `{}` of their account", rep.name);
        let r = s.records().find_by_phone(K::Account, &rep.acc_phone);
        c.ok_no_leak(&what, &r, &o.rep_forbidden(rep));
        match &r {
            Ok(found) if found.len() == 1 && found[0].meta.id == rep.acc => {
                clean_totals(&mut c, &what, &found[0])
            }
            _ => c.fail(format!("{what}: expected their account, got {}", show(&r))),
        }
    }
    let s = o.on(&o.hidden);
    for rep in &o.reps {
        c.ok_no_leak(
            &format!(
                "records.find_by_phone by the role `hidden fields` of `{}`'s account",
                rep.name
            ),
            &s.records().find_by_phone(K::Account, &rep.acc2_phone),
            &o.hidden_forbidden(),
        );
    }
    let s = o.on(&o.other);
    let r = s.records().find_by_phone(K::Account, SECRET_ACC_PHONE);
    c.check(
        matches!(&r, Ok(v) if v.len() == 1 && v[0].meta.id == o.other_account),
        || {
            format!(
                "records.find_by_phone by another tenant's administrator: {}",
                show(&r)
            )
        },
    );
    c.finish();
}

#[test]
fn records_export_exports_only_readable_records_and_fields() {
    let o = org();
    let mut c = Checks::default();
    for v in o.viewers() {
        let s = o.on(&v.ctx);
        for &k in BUSINESS {
            let mut got: Vec<Record> = Vec::new();
            let n = s.records().export(k, None, None, &mut |r| {
                got.push(r);
                Ok(())
            });
            let what = format!("records.export({k}) by `{}`", v.name);
            c.no_leak(&what, &got, &v.forbidden);
            let count = s.records().count(k, None);
            c.check(
                matches!((&n, &count), (Ok(n), Ok(m)) if *n == got.len() as u64 && *n == *m),
                || {
                    format!(
                        "{what}: {} exported, {} records passed, count {}",
                        show(&n),
                        got.len(),
                        show(&count)
                    )
                },
            );
            if let Some(rep) = o.reps.iter().find(|r| r.name == v.name) {
                if k == K::Account {
                    match got.iter().find(|r| r.meta.id == rep.acc) {
                        Some(acc) => clean_totals(&mut c, &format!("{what}: their account"), acc),
                        None => c.fail(format!("{what}: their account is not exported")),
                    }
                }
            }
        }
    }
    let s = o.on(&o.hidden);
    let mut sink = |_r: Record| Ok(());
    c.denied(
        "records.export by the role `hidden fields` asking for vat_number",
        &s.records()
            .export(K::Account, None, Some(&["name", "vat_number"]), &mut sink),
    );
    c.denied(
        "records.export by the role `hidden fields` asking for product.unit_cost",
        &s.records()
            .export(K::Product, None, Some(&["name", "unit_cost"]), &mut sink),
    );
    c.denied(
        "records.export by the role `hidden fields` filtering on vat_number",
        &s.records().export(
            K::Account,
            Some(&Filter::eq("vat_number", "HVAT-own")),
            None,
            &mut sink,
        ),
    );
    let s = o.on(&o.noperm);
    c.denied(
        "records.export(account) by a role without the export permission",
        &s.records().export(K::Account, None, None, &mut sink),
    );
    c.denied(
        "records.export(order) by a role without any permission on orders",
        &s.records().export(K::Order, None, None, &mut sink),
    );
    c.finish();
}

/// New records of every kind linking to each kind of unreadable record.
fn link_cases(
    o: &Org,
    rep: &Rep,
) -> Vec<(EntityKind, Fields, &'static str, RecordId, &'static str)> {
    let s = |k: EntityKind| o.secret[&k];
    let note = || fields! { "activity_type" => "note" };
    vec![
        (
            K::Opportunity,
            fields! { "name" => "probe", "amount" => eur("1.00") },
            "account_id",
            s(K::Account),
            "an unreadable account",
        ),
        (
            K::Order,
            fields! { "currency" => "EUR", "lines" => Value::Lines(vec![line(None, "1.00")]) },
            "account_id",
            s(K::Account),
            "an unreadable account",
        ),
        (
            K::Quote,
            fields! { "currency" => "EUR" },
            "account_id",
            s(K::Account),
            "an unreadable account",
        ),
        (
            K::Activity,
            fields! { "activity_type" => "call" },
            "account_id",
            s(K::Account),
            "an unreadable account",
        ),
        (
            K::Contact,
            fields! { "last_name" => "probe" },
            "account_id",
            s(K::Account),
            "an unreadable account",
        ),
        (
            K::Case,
            fields! { "subject" => "probe" },
            "account_id",
            s(K::Account),
            "an unreadable account",
        ),
        (
            K::Account,
            fields! { "name" => "probe" },
            "parent_id",
            s(K::Account),
            "an unreadable account",
        ),
        (
            K::Opportunity,
            fields! { "name" => "probe", "account_id" => rep.acc2 },
            "contact_id",
            s(K::Contact),
            "an unreadable contact",
        ),
        (
            K::Opportunity,
            fields! { "name" => "probe", "account_id" => rep.acc2 },
            "lead_id",
            s(K::Lead),
            "an unreadable lead",
        ),
        (
            K::Activity,
            note(),
            "opportunity_id",
            s(K::Opportunity),
            "an unreadable opportunity",
        ),
        (
            K::Activity,
            note(),
            "case_id",
            s(K::Case),
            "an unreadable case",
        ),
        (
            K::Activity,
            note(),
            "lead_id",
            s(K::Lead),
            "an unreadable lead",
        ),
        (
            K::Activity,
            note(),
            "quote_id",
            s(K::Quote),
            "an unreadable quote",
        ),
        (
            K::Activity,
            note(),
            "contact_id",
            s(K::Contact),
            "an unreadable contact",
        ),
        (
            K::Quote,
            fields! { "currency" => "EUR", "account_id" => rep.acc2 },
            "opportunity_id",
            s(K::Opportunity),
            "an unreadable opportunity",
        ),
        (
            K::Order,
            fields! { "currency" => "EUR", "account_id" => rep.acc2 },
            "quote_id",
            s(K::Quote),
            "an unreadable quote",
        ),
        (
            K::Case,
            fields! { "subject" => "probe" },
            "contact_id",
            s(K::Contact),
            "an unreadable contact",
        ),
        (
            K::Opportunity,
            fields! { "name" => "probe", "account_id" => rep.acc2 },
            "custom.referrer",
            s(K::Account),
            "an unreadable account",
        ),
        (
            K::Attachment,
            fields! { "record_kind" => "account", "name" => "x.pdf", "media_type" => "application/pdf", "size_bytes" => 1_i64 },
            "record_id",
            s(K::Account),
            "an unreadable account",
        ),
        (
            K::Attachment,
            fields! { "record_kind" => "order", "name" => "x.pdf", "media_type" => "application/pdf", "size_bytes" => 1_i64 },
            "record_id",
            s(K::Order),
            "an unreadable order",
        ),
        (
            K::AccountContact,
            fields! { "account_id" => rep.acc2 },
            "contact_id",
            s(K::Contact),
            "an unreadable contact",
        ),
        (
            K::AccountContact,
            fields! { "contact_id" => rep.contact2 },
            "account_id",
            s(K::Account),
            "an unreadable account",
        ),
        (
            K::Opportunity,
            fields! { "name" => "probe", "amount" => eur("1.00") },
            "account_id",
            o.other_account,
            "another tenant's account",
        ),
    ]
}

#[test]
fn records_create_cannot_link_to_unreadable_records() {
    let o = org();
    let mut c = Checks::default();
    let before = o.unreadable_now();
    for rep in &o.reps {
        let s = o.on(&rep.ctx);
        for (kind, base, field, target, label) in link_cases(&o, rep) {
            let mut rnd = base.clone();
            rnd.insert(field.into(), Value::Ref(o.random()));
            let mut hid = base;
            hid.insert(field.into(), Value::Ref(target));
            let r_rnd = s.records().create(kind, rnd);
            let r_hid = s.records().create(kind, hid);
            c.same_failure(
                field,
                &format!(
                    "records.create({kind}) by `{}` with `{field}` = {label}",
                    rep.name
                ),
                &r_hid,
                &r_rnd,
            );
        }
        // Linking to a record the rep may read (but not change) is allowed.
        let ro_acc = rep.ro[&K::Account];
        for (kind, f) in [
            (
                K::Opportunity,
                fields! { "name" => "probe", "account_id" => ro_acc },
            ),
            (
                K::Activity,
                fields! { "activity_type" => "call", "account_id" => ro_acc, "case_id" => rep.ro[&K::Case] },
            ),
            (
                K::Contact,
                fields! { "last_name" => "probe", "account_id" => ro_acc },
            ),
        ] {
            let r = s.records().create(kind, f);
            c.check(r.is_ok(), || {
                format!(
                    "records.create({kind}) by `{}` linking to records they may read is refused: {}",
                    rep.name,
                    show(&r)
                )
            });
        }
    }
    let after = o.unreadable_now();
    for (b, a) in before.iter().zip(&after) {
        c.check(a == b, || {
            format!(
                "records.create: linking changed the unreadable {} {} (now {:?})",
                b.meta.kind, b.meta.id, a.fields
            )
        });
    }
    c.finish();
}

/// Creating is refused for hidden and read-only fields, foreign owners, and without permission.
#[test]
fn records_create_refuses_hidden_read_only_and_missing_permission() {
    let o = org();
    let mut c = Checks::default();
    c.denied(
        "records.create by the role `hidden fields` setting vat_number",
        &o.on(&o.hidden)
            .records()
            .create(K::Account, fields! { "name" => "x", "vat_number" => "IT1" }),
    );
    c.denied(
        "records.create by the role `read-only field` setting industry",
        &o.on(&o.readonly).records().create(
            K::Account,
            fields! { "name" => "x", "industry" => "Retail" },
        ),
    );
    let s = o.on(&o.noperm);
    c.denied(
        "records.create(account) by a role that may only read accounts",
        &s.records().create(K::Account, fields! { "name" => "x" }),
    );
    c.denied(
        "records.create(order) by a role without permission on orders",
        &s.records().create(
            K::Order,
            fields! { "account_id" => o.reps[0].acc2, "currency" => "EUR" },
        ),
    );
    for rep in &o.reps {
        c.denied(
            &format!("records.create by `{}` for another owner", rep.name),
            &o.on(&rep.ctx).records().create(
                K::Account,
                NewRecord {
                    fields: fields! { "name" => "x" },
                    owner_id: Some(o.outsider.user_id),
                },
            ),
        );
    }
    // Another tenant's administrator naming one of this tenant's users as owner.
    let s = o.on(&o.other);
    let owned_by = |u: RecordId| NewRecord {
        fields: fields! { "name" => "x" },
        owner_id: Some(u),
    };
    c.same_failure(
        "owner_id",
        "records.create by another tenant's administrator owned by this tenant's user",
        &s.records()
            .create(K::Account, owned_by(o.reps[0].ctx.user_id)),
        &s.records().create(K::Account, owned_by(o.random())),
    );
    c.finish();
}

#[test]
fn records_create_many_cannot_link_to_unreadable_records() {
    let o = org();
    let mut c = Checks::default();
    let before = o.unreadable_now();
    let admin_count = || o.admin().records().count(K::Opportunity, None).unwrap();
    for rep in &o.reps {
        let s = o.on(&rep.ctx);
        let row = |account: RecordId| -> NewRecord {
            fields! { "name" => "batch probe", "account_id" => account }.into()
        };
        let n0 = admin_count();
        let rnd = s
            .records()
            .create_many(K::Opportunity, vec![row(rep.acc2), row(o.random())]);
        let hid = s.records().create_many(
            K::Opportunity,
            vec![row(rep.acc2), row(o.secret[&K::Account])],
        );
        c.same_failure(
            "rows[1].account_id",
            &format!(
                "records.create_many by `{}` with a row on an unreadable account",
                rep.name
            ),
            &hid,
            &rnd,
        );
        c.check(admin_count() == n0, || {
            format!(
                "records.create_many by `{}`: a refused batch created records",
                rep.name
            )
        });
        let other = s
            .records()
            .create_many(K::Opportunity, vec![row(rep.acc2), row(o.other_account)]);
        c.same_failure(
            "rows[1].account_id",
            &format!(
                "records.create_many by `{}` with a row on another tenant's account",
                rep.name
            ),
            &other,
            &rnd,
        );
    }
    c.check(o.unreadable_now() == before, || {
        "records.create_many: unreadable records (or their totals) changed".into()
    });
    c.finish();
}

#[test]
fn records_update_is_checked() {
    let o = org();
    let mut c = Checks::default();
    for &k in BUSINESS {
        door(
            &o,
            &mut c,
            "records.update",
            k,
            Door::Change,
            &|s, id, v| s.records().update(k, id, v, touch(k)),
        );
    }
    c.finish();
}

/// Updates writing hidden or read-only fields are refused.
#[test]
fn records_update_respects_field_rules() {
    let o = org();
    let mut c = Checks::default();
    let a = o.admin();
    let mine = |ctx: &Context| {
        a.records()
            .create(
                K::Account,
                NewRecord {
                    fields: fields! { "name" => "field rules" },
                    owner_id: Some(ctx.user_id),
                },
            )
            .unwrap()
            .meta
            .id
    };
    let acc = mine(&o.readonly);
    let s = o.on(&o.readonly);
    c.denied(
        "records.update by the role `read-only field` writing industry",
        &s.records()
            .update(K::Account, acc, 1, fields! { "industry" => "Retail" }),
    );
    c.check(
        s.records()
            .update(K::Account, acc, 1, fields! { "city" => "Bari" })
            .is_ok(),
        || "records.update by the role `read-only field` of another field is refused".into(),
    );
    let acc = mine(&o.hidden);
    let s = o.on(&o.hidden);
    c.denied(
        "records.update by the role `hidden fields` writing vat_number",
        &s.records()
            .update(K::Account, acc, 1, fields! { "vat_number" => "IT1" }),
    );
    c.check(
        o.admin_get(K::Account, acc).get("vat_number").is_null(),
        || "records.update by the role `hidden fields` wrote vat_number".into(),
    );
    c.finish();
}

#[test]
fn records_update_cannot_link_to_unreadable_records() {
    let o = org();
    let mut c = Checks::default();
    let before = o.unreadable_now();
    let sec = |k: EntityKind| o.secret[&k];
    for rep in &o.reps {
        let s = o.on(&rep.ctx);
        for (kind, id, field, target, label) in [
            (
                K::Opportunity,
                rep.opp2,
                "account_id",
                sec(K::Account),
                "an unreadable account",
            ),
            (
                K::Opportunity,
                rep.opp2,
                "contact_id",
                sec(K::Contact),
                "an unreadable contact",
            ),
            (
                K::Order,
                rep.order2,
                "account_id",
                sec(K::Account),
                "an unreadable account",
            ),
            (
                K::Case,
                rep.case2,
                "account_id",
                sec(K::Account),
                "an unreadable account",
            ),
            (
                K::Contact,
                rep.contact2,
                "account_id",
                sec(K::Account),
                "an unreadable account",
            ),
            (
                K::Activity,
                rep.task2,
                "case_id",
                sec(K::Case),
                "an unreadable case",
            ),
            (
                K::Account,
                rep.acc2,
                "parent_id",
                sec(K::Account),
                "an unreadable account",
            ),
            (
                K::Opportunity,
                rep.opp2,
                "custom.referrer",
                sec(K::Account),
                "an unreadable account",
            ),
            (
                K::Opportunity,
                rep.opp2,
                "account_id",
                o.other_account,
                "another tenant's account",
            ),
        ] {
            let v = o.admin_get(kind, id).meta.version;
            let rnd = s
                .records()
                .update(kind, id, v, fields! { field => o.random() });
            let hid = s.records().update(kind, id, v, fields! { field => target });
            c.same_failure(
                field,
                &format!(
                    "records.update({kind}) by `{}` setting `{field}` to {label}",
                    rep.name
                ),
                &hid,
                &rnd,
            );
        }
    }
    c.check(o.unreadable_now() == before, || {
        "records.update: linking changed unreadable records (or their totals)".into()
    });
    // An order line holding a product the partner may not read (the gadget is not shared with
    // them) does not block other changes of their own order.
    let partner = o.rep("partner");
    let order = o
        .admin()
        .records()
        .create(
            K::Order,
            NewRecord {
                fields: fields! { "account_id" => partner.acc2, "currency" => "EUR", "lines" => Value::Lines(vec![line(Some(o.gadget), "1.00")]) },
                owner_id: Some(partner.ctx.user_id),
            },
        )
        .unwrap()
        .meta
        .id;
    let r = o
        .on(&partner.ctx)
        .records()
        .update(K::Order, order, 1, fields! { "number" => "P-9" });
    c.check(r.is_ok(), || {
        format!(
            "records.update by `partner` of their order's number, a line holding a product they may not read: {}",
            show(&r)
        )
    });
    // A reference set by someone else to a record the rep may not read does not block the rep's
    // other changes of their own record.
    for rep in &o.reps {
        let contact = o
            .admin()
            .records()
            .create(
                K::Contact,
                NewRecord {
                    fields: fields! { "last_name" => "linked by the admin", "account_id" => o.secret[&K::Account] },
                    owner_id: Some(rep.ctx.user_id),
                },
            )
            .unwrap()
            .meta
            .id;
        let r = o.on(&rep.ctx).records().update(
            K::Contact,
            contact,
            1,
            fields! { "job_title" => "Buyer" },
        );
        c.check(r.is_ok(), || {
            format!(
                "records.update by `{}` of their contact that the admin linked to an account they may not read: {}",
                rep.name,
                show(&r)
            )
        });
    }
    c.finish();
}

#[test]
fn records_delete_restore_purge_are_checked() {
    let o = org();
    let mut c = Checks::default();
    for &k in BUSINESS {
        door(
            &o,
            &mut c,
            "records.delete",
            k,
            Door::Change,
            &|s, id, v| s.records().delete(k, id, Some(v)),
        );
        door(
            &o,
            &mut c,
            "records.restore",
            k,
            Door::Change,
            &|s, id, _| s.records().restore(k, id),
        );
        door(&o, &mut c, "records.purge", k, Door::Change, &|s, id, _| {
            s.records().purge(k, id, "door test")
        });
    }
    let before = o.admin_get(K::Account, o.trashed);
    for rep in &o.reps {
        let s = o.on(&rep.ctx);
        c.like_random(
            &format!(
                "records.restore by `{}` of an unreadable account in the trash",
                rep.name
            ),
            &s.records().restore(K::Account, o.trashed),
            &s.records().restore(K::Account, o.random()),
        );
        c.like_random(
            &format!(
                "records.purge by `{}` of an unreadable account in the trash",
                rep.name
            ),
            &s.records().purge(K::Account, o.trashed, "x"),
            &s.records().purge(K::Account, o.random(), "x"),
        );
    }
    c.check(o.admin_get(K::Account, o.trashed) == before, || {
        "records.restore/purge: a rep changed an unreadable account in the trash".into()
    });
    c.finish();
}

#[test]
fn records_merge_is_checked() {
    let o = org();
    let mut c = Checks::default();
    let a = o.admin();
    let owned = |kind: EntityKind, owner: RecordId, label: &str| -> RecordId {
        let f = match kind {
            K::Account => fields! { "name" => label },
            _ => fields! { "last_name" => label },
        };
        a.records()
            .create(
                kind,
                NewRecord {
                    fields: f,
                    owner_id: Some(owner),
                },
            )
            .unwrap()
            .meta
            .id
    };
    for kind in [K::Account, K::Contact, K::Lead] {
        let secret = o.secret[&kind];
        for rep in &o.reps {
            let s = o.on(&rep.ctx);
            let n = rep.name;
            let mine = owned(kind, rep.ctx.user_id, "merge keep");
            let dup = owned(kind, rep.ctx.user_id, "merge duplicate");
            let sv = o.admin_get(kind, secret);
            c.like_random(
                &format!("records.merge({kind}) by `{n}` keeping an unreadable record"),
                &s.records().merge(kind, secret, sv.meta.version, dup),
                &s.records().merge(kind, o.random(), 1, dup),
            );
            c.like_random(
                &format!("records.merge({kind}) by `{n}` of an unreadable duplicate"),
                &s.records().merge(kind, mine, 1, secret),
                &s.records().merge(kind, mine, 1, o.random()),
            );
            c.check(o.admin_get(kind, secret) == sv, || {
                format!("records.merge({kind}) by `{n}` changed an unreadable record")
            });
            let ro = rep.ro[&kind];
            c.denied(
                &format!("records.merge({kind}) by `{n}` keeping a record they may only read"),
                &s.records().merge(kind, ro, 1, dup),
            );
            c.denied(
                &format!("records.merge({kind}) by `{n}` of a duplicate they may only read"),
                &s.records().merge(kind, mine, 1, ro),
            );
            c.check(o.admin_get(kind, ro).meta.deleted_at.is_none(), || {
                format!("records.merge({kind}) by `{n}` trashed a record they may only read")
            });
        }
        let s = o.on(&o.other);
        let theirs = s
            .records()
            .create(
                kind,
                match kind {
                    K::Account => fields! { "name" => "other keep" },
                    _ => fields! { "last_name" => "other keep" },
                },
            )
            .unwrap()
            .meta
            .id;
        c.like_random(
            &format!("records.merge({kind}) by another tenant's administrator keeping this tenant's record"),
            &s.records().merge(kind, secret, o.admin_get(kind, secret).meta.version, theirs),
            &s.records().merge(kind, o.random(), 1, theirs),
        );
        c.like_random(
            &format!("records.merge({kind}) by another tenant's administrator of this tenant's duplicate"),
            &s.records().merge(kind, theirs, 1, secret),
            &s.records().merge(kind, theirs, 1, o.random()),
        );
        let s = o.on(&o.noperm);
        let other_secret = owned(kind, o.outsider.user_id, "noperm duplicate");
        c.denied(
            &format!("records.merge({kind}) by a role that may only read"),
            &s.records().merge(
                kind,
                secret,
                o.admin_get(kind, secret).meta.version,
                other_secret,
            ),
        );
    }
    c.finish();
}

/// A merge moves references from records the user may not read, but its outcome does not name
/// them, and the kept record shows no totals of them.
#[test]
fn records_merge_reveals_no_unreadable_reference() {
    let o = org();
    let mut c = Checks::default();
    let a = o.admin();
    for rep in &o.reps {
        let keep = a
            .records()
            .create(
                K::Account,
                NewRecord {
                    fields: fields! { "name" => "keep" },
                    owner_id: Some(rep.ctx.user_id),
                },
            )
            .unwrap()
            .meta
            .id;
        let dup = a
            .records()
            .create(
                K::Account,
                NewRecord {
                    fields: fields! { "name" => "duplicate" },
                    owner_id: Some(rep.ctx.user_id),
                },
            )
            .unwrap()
            .meta
            .id;
        let hidden_opp = a
            .records()
            .create(
                K::Opportunity,
                NewRecord {
                    fields: fields! { "name" => "ZQX on the duplicate", "account_id" => dup, "amount" => eur(M_OPP) },
                    owner_id: Some(o.outsider.user_id),
                },
            )
            .unwrap()
            .meta
            .id;
        let mut forbidden = o.rep_forbidden(rep);
        forbidden.push((
            "the id of an unreadable opportunity on the duplicate".into(),
            hidden_opp.to_string(),
        ));
        let what = format!(
            "records.merge by `{}` of accounts an unreadable opportunity refers to",
            rep.name
        );
        let r = o.on(&rep.ctx).records().merge(K::Account, keep, 1, dup);
        c.ok_no_leak(&what, &r, &forbidden);
        if let Ok(out) = &r {
            clean_totals(&mut c, &format!("{what}: the kept account"), &out.kept);
        }
    }
    c.finish();
}

#[test]
fn records_merge_respects_read_only_fields() {
    let o = org();
    let mut c = Checks::default();
    let a = o.admin();
    let owned = |f: Fields| {
        a.records()
            .create(
                K::Account,
                NewRecord {
                    fields: f,
                    owner_id: Some(o.readonly.user_id),
                },
            )
            .unwrap()
            .meta
            .id
    };
    let keep = owned(fields! { "name" => "keep" });
    let dup = owned(fields! { "name" => "dup", "industry" => "Retail" });
    let r = o.on(&o.readonly).records().merge(K::Account, keep, 1, dup);
    c.denied(
        "records.merge by the role `read-only field` filling industry from the duplicate",
        &r,
    );
    c.check(
        o.admin_get(K::Account, keep).get("industry").is_null(),
        || "records.merge wrote a field that is read-only for the user".into(),
    );
    c.finish();
}

#[test]
fn records_follow_unfollow_followers_are_checked() {
    let o = org();
    let mut c = Checks::default();
    for &k in BUSINESS {
        door(&o, &mut c, "records.follow", k, Door::Read, &|s, id, _| {
            s.records().follow(k, id)
        });
        door(
            &o,
            &mut c,
            "records.followers",
            k,
            Door::Read,
            &|s, id, _| s.records().followers(k, id),
        );
        door(
            &o,
            &mut c,
            "records.unfollow",
            k,
            Door::Read,
            &|s, id, _| s.records().unfollow(k, id),
        );
    }
    // What came back of a readable record holds nothing unreadable.
    for rep in &o.reps {
        let s = o.on(&rep.ctx);
        c.ok_no_leak(
            &format!("records.followers by `{}` of their account", rep.name),
            &s.records().followers(K::Account, rep.acc),
            &o.rep_forbidden(rep),
        );
    }
    c.finish();
}

/// A user who followed a record stops being notified of its changes once they may no longer read
/// it.
#[test]
fn follow_notifications_stop_when_the_record_becomes_unreadable() {
    let o = org();
    let mut c = Checks::default();
    let a = o.admin();
    for name in ["own", "partner"] {
        let rep = o.rep(name);
        let acc = rep.ro[&K::Account];
        let me = rep.ctx.user_id.to_string();
        let notes = || -> usize {
            a.outbox()
                .pending(0, 10_000)
                .unwrap()
                .iter()
                .filter(|e| {
                    e.event_type == "notification"
                        && e.record_id == acc
                        && e.payload.get("user_id").and_then(|u| u.as_str()) == Some(me.as_str())
                })
                .count()
        };
        if let Err(e) = o.on(&rep.ctx).records().follow(K::Account, acc) {
            c.fail(format!("`{name}` cannot follow a shared account: {e}"));
            continue;
        }
        let v = o.admin_get(K::Account, acc).meta.version;
        a.records()
            .update(K::Account, acc, v, fields! { "city" => "Roma" })
            .unwrap();
        let while_shared = notes();
        c.check(while_shared == 1, || {
            format!("`{name}` following a shared account got {while_shared} notifications of a change (precondition)")
        });
        let share = o
            .shares
            .iter()
            .find(|(r, k, _)| *r == name && *k == K::Account)
            .unwrap()
            .2;
        a.access().unshare(share).unwrap();
        let v = o.admin_get(K::Account, acc).meta.version;
        a.records()
            .update(K::Account, acc, v, fields! { "city" => "ZQX Milano" })
            .unwrap();
        let after = notes();
        c.check(after == while_shared, || {
            format!(
                "`{name}` was notified of a change of an account no longer shared with them ({} new notification event(s))",
                after - while_shared
            )
        });
    }
    c.finish();
}

// ------------------------------------------------------------------------------------------------
// Sales.
// ------------------------------------------------------------------------------------------------

#[test]
fn sales_lead_transitions_are_checked() {
    let o = org();
    let mut c = Checks::default();
    door(
        &o,
        &mut c,
        "sales.transition_lead",
        K::Lead,
        Door::Change,
        &|s, id, v| s.sales().transition_lead(id, v, "qualified", None),
    );
    door(
        &o,
        &mut c,
        "sales.disqualify_lead",
        K::Lead,
        Door::Change,
        &|s, id, v| s.sales().disqualify_lead(id, v, "no budget"),
    );
    c.finish();
}

#[test]
fn sales_convert_lead_is_checked() {
    let o = org();
    let mut c = Checks::default();
    door(
        &o,
        &mut c,
        "sales.convert_lead",
        K::Lead,
        Door::Change,
        &|s, id, v| s.sales().convert_lead(id, v, ConvertLead::default()),
    );
    // Converting into an account the user may not read fails as with a random account.
    let before = o.unreadable_now();
    for rep in &o.reps {
        let s = o.on(&rep.ctx);
        let lead = match s.sales().transition_lead(rep.lead2, 1, "qualified", None) {
            Ok(l) => l,
            Err(e) => {
                c.fail(format!("`{}` cannot qualify their lead: {e}", rep.name));
                continue;
            }
        };
        let v = lead.meta.version;
        let into = |account| ConvertLead {
            account_id: Some(account),
            ..Default::default()
        };
        let rnd = s.sales().convert_lead(rep.lead2, v, into(o.random()));
        let hid = s
            .sales()
            .convert_lead(rep.lead2, v, into(o.secret[&K::Account]));
        c.like_random(
            &format!(
                "sales.convert_lead by `{}` into an unreadable account",
                rep.name
            ),
            &hid,
            &rnd,
        );
        let oth = s.sales().convert_lead(rep.lead2, v, into(o.other_account));
        c.like_random(
            &format!(
                "sales.convert_lead by `{}` into another tenant's account",
                rep.name
            ),
            &oth,
            &rnd,
        );
        c.check(
            o.admin_get(K::Lead, rep.lead2).text("status") == Some("qualified"),
            || {
                format!(
                    "sales.convert_lead by `{}` converted into an unreadable account",
                    rep.name
                )
            },
        );
        // The conversion itself (a new account) shows nothing unreadable.
        c.ok_no_leak(
            &format!("sales.convert_lead by `{}`", rep.name),
            &s.sales().convert_lead(rep.lead2, v, ConvertLead::default()),
            &o.rep_forbidden(rep),
        );
    }
    c.check(o.unreadable_now() == before, || {
        "sales.convert_lead changed unreadable records (or their totals)".into()
    });
    c.finish();
}

#[test]
fn sales_move_opportunity_is_checked() {
    let o = org();
    let mut c = Checks::default();
    door(
        &o,
        &mut c,
        "sales.move_opportunity",
        K::Opportunity,
        Door::Change,
        &|s, id, v| s.sales().move_opportunity(id, v, "negotiation", None, None),
    );
    c.finish();
}

#[test]
fn sales_quote_transitions_are_checked() {
    let o = org();
    let mut c = Checks::default();
    door(
        &o,
        &mut c,
        "sales.submit_quote",
        K::Quote,
        Door::Change,
        &|s, id, v| s.sales().submit_quote(id, v, None),
    );
    door(
        &o,
        &mut c,
        "sales.approve_quote",
        K::Quote,
        Door::Change,
        &|s, id, v| s.sales().approve_quote(id, v, None),
    );
    door(
        &o,
        &mut c,
        "sales.send_quote",
        K::Quote,
        Door::Change,
        &|s, id, v| s.sales().send_quote(id, v),
    );
    door(
        &o,
        &mut c,
        "sales.reject_quote",
        K::Quote,
        Door::Change,
        &|s, id, v| s.sales().reject_quote(id, v, "too expensive"),
    );
    door(
        &o,
        &mut c,
        "sales.accept_quote",
        K::Quote,
        Door::Change,
        &|s, id, v| s.sales().accept_quote(id, v, true),
    );
    door(
        &o,
        &mut c,
        "sales.expire_quote",
        K::Quote,
        Door::Change,
        &|s, id, v| s.sales().expire_quote(id, v),
    );
    c.finish();
}

/// A quote sent to "its contact's e-mail" must not reveal the e-mail of a contact the sender may
/// not read.
#[test]
fn sales_send_quote_reveals_no_unreadable_address() {
    let o = org();
    let mut c = Checks::default();
    let a = o.admin();
    let contact = o.secret[&K::Contact].to_string();
    for rep in &o.reps {
        let s = o.on(&rep.ctx);
        let n = rep.name;
        // The quote's own `contact_id` names the contact: that reference is theirs to see.
        let forbidden: Vec<(String, String)> = o
            .rep_forbidden(rep)
            .into_iter()
            .filter(|(_, x)| *x != contact)
            .collect();
        let quote = |auto_send: bool| {
            a.records()
                .create(
                    K::Quote,
                    NewRecord {
                        fields: fields! {
                            "account_id" => rep.acc2, "contact_id" => o.secret[&K::Contact],
                            "currency" => "EUR", "auto_send" => auto_send,
                            "lines" => Value::Lines(vec![line(None, "10.00")]),
                        },
                        owner_id: Some(rep.ctx.user_id),
                    },
                )
                .unwrap()
                .meta
                .id
        };
        let q = quote(true);
        c.no_leak(
            &format!("sales.submit_quote by `{n}` (auto-send to the contact)"),
            &s.sales().submit_quote(q, 1, None),
            &forbidden,
        );
        c.ok_no_leak(
            &format!("records.get by `{n}` of their auto-sent quote"),
            &s.records().get(K::Quote, q),
            &forbidden,
        );
        let q = quote(false);
        let submitted = s.sales().submit_quote(q, 1, None);
        c.check(submitted.is_ok(), || {
            format!(
                "sales.submit_quote by `{n}` of their quote: {} (precondition)",
                show(&submitted)
            )
        });
        let v = o.admin_get(K::Quote, q).meta.version;
        c.no_leak(
            &format!("sales.send_quote by `{n}` to the contact"),
            &s.sales().send_quote(q, v),
            &forbidden,
        );
        c.ok_no_leak(
            &format!("records.get by `{n}` of their sent quote"),
            &s.records().get(K::Quote, q),
            &forbidden,
        );
    }
    c.finish();
}

#[test]
fn sales_forecast_counts_only_readable_opportunities() {
    let o = org();
    let mut c = Checks::default();
    for v in o.viewers() {
        let s = o.on(&v.ctx);
        let what = format!("sales.forecast by `{}`", v.name);
        let r = s.sales().forecast(None);
        if v.ctx == o.hidden {
            // The amounts are hidden: refused, naming the field.
            c.denied(&what, &r);
            c.no_leak(&what, &r, &v.forbidden);
            continue;
        }
        c.ok_no_leak(&what, &r, &v.forbidden);
        let open = s
            .records()
            .count(K::Opportunity, Some(&Filter::is_null("closed_at")));
        if let (Ok(rows), Ok(open)) = (&r, &open) {
            let counted: u64 = rows.iter().map(|x| x.count).sum();
            c.check(v.ctx == o.other || *open > 0, || {
                format!("{what}: the user may read no open opportunity (precondition)")
            });
            c.check(counted == *open, || {
                format!("{what} counts {counted} open opportunities, the user may read {open}")
            });
        }
    }
    c.finish();
}

#[test]
fn sales_funnel_counts_only_readable_opportunities() {
    let o = org();
    let mut c = Checks::default();
    for rep in &o.reps {
        let s = o.on(&rep.ctx);
        let what = format!("sales.funnel by `{}`", rep.name);
        let r = s.sales().funnel(&FunnelOptions::default());
        c.ok_no_leak(&what, &r, &o.rep_forbidden(rep));
        let n = s
            .records()
            .count(K::Opportunity, Some(&Filter::eq("pipeline", "Default")));
        if let (Ok(f), Ok(n)) = (&r, &n) {
            c.check(*n > 0, || {
                format!("{what}: the user may read no opportunity of the pipeline (precondition)")
            });
            c.check(f.opportunities == *n, || {
                format!(
                    "{what} follows {} opportunities, the user may read {n}",
                    f.opportunities
                )
            });
            let reached: u64 = f.stages.first().map(|s| s.reached).unwrap_or(0);
            c.check(reached <= *n, || {
                format!("{what}: {reached} reached the first stage, the user may read {n}")
            });
        }
    }
    // Another tenant has no pipeline: this tenant's is not used.
    let s = o.on(&o.other);
    let r = s.sales().funnel(&FunnelOptions::default());
    c.kind(
        "sales.funnel by another tenant's administrator (no pipeline of theirs)",
        &r,
        ErrorKind::Validation,
    );
    let r = s.sales().funnel(&FunnelOptions {
        pipeline: Some("Default".into()),
        ..Default::default()
    });
    c.kind(
        "sales.funnel by another tenant's administrator naming this tenant's pipeline",
        &r,
        ErrorKind::Validation,
    );
    c.finish();
}

// ------------------------------------------------------------------------------------------------
// Service.
// ------------------------------------------------------------------------------------------------

#[test]
fn service_transition_case_is_checked() {
    let o = org();
    let mut c = Checks::default();
    door(
        &o,
        &mut c,
        "service.transition_case",
        K::Case,
        Door::Change,
        &|s, id, v| s.service().transition_case(id, v, "in_progress", None),
    );
    c.finish();
}

#[test]
fn service_check_slas_marks_only_writable_cases() {
    let o = org();
    let mut c = Checks::default();
    o.w.clock.advance(Duration::days(30));
    let breached =
        |id: RecordId| o.admin_get(K::Case, id).get("sla_breached").as_bool() == Some(true);
    let s = o.on(&o.other);
    c.ok_no_leak(
        "service.check_slas by another tenant's administrator",
        &s.service().check_slas(),
        &o.other_forbidden(),
    );
    for rep in &o.reps {
        let s = o.on(&rep.ctx);
        let what = format!("service.check_slas by `{}`", rep.name);
        let r = s.service().check_slas();
        c.ok_no_leak(&what, &r, &o.rep_forbidden(rep));
        if let Ok(ids) = &r {
            c.check(ids.contains(&rep.case2), || {
                format!("{what} did not mark their own overdue case (precondition)")
            });
            c.check(!ids.contains(&rep.ro[&K::Case]), || {
                format!("{what} marked a case they may only read")
            });
        }
        c.check(!breached(rep.ro[&K::Case]), || {
            format!("{what} changed a case they may only read")
        });
    }
    for (label, kind, id) in &o.unreadable {
        if *kind == K::Case {
            c.check(!breached(*id), || {
                format!("service.check_slas: {label} was marked by someone who may not read it")
            });
        }
    }
    c.denied(
        "service.check_slas by a role that may only read cases",
        &o.on(&o.noperm).service().check_slas(),
    );
    c.finish();
}

#[test]
fn service_due_tasks_lists_only_readable_tasks() {
    let o = org();
    let mut c = Checks::default();
    let until = o.start + Duration::days(365);
    for v in o.viewers() {
        let s = o.on(&v.ctx);
        let what = format!("service.due_tasks by `{}`", v.name);
        let r = s.service().due_tasks(until);
        c.ok_no_leak(&what, &r, &v.forbidden);
        if let Ok(tasks) = &r {
            if let Some(rep) = o.reps.iter().find(|r| r.name == v.name) {
                c.check(tasks.iter().any(|t| t.meta.id == rep.task2), || {
                    format!("{what} misses their own due task (precondition)")
                });
            }
            for t in tasks {
                c.check(s.records().get(K::Activity, t.meta.id).is_ok(), || {
                    format!("{what} lists task {} the user may not read", t.meta.id)
                });
            }
        }
    }
    c.finish();
}

#[test]
fn service_fire_reminders_only_for_writable_tasks() {
    let o = org();
    let mut c = Checks::default();
    let reminded = |id: RecordId| !o.admin_get(K::Activity, id).get("reminded_at").is_null();
    let r = o.on(&o.other).service().fire_reminders();
    c.check(matches!(r, Ok(0)), || {
        format!(
            "service.fire_reminders by another tenant's administrator: {}",
            show(&r)
        )
    });
    for rep in &o.reps {
        let s = o.on(&rep.ctx);
        let what = format!("service.fire_reminders by `{}`", rep.name);
        let r = s.service().fire_reminders();
        c.check(matches!(r, Ok(1)), || {
            format!(
                "{what}: {} (only their own task is due and theirs to change)",
                show(&r)
            )
        });
        c.check(reminded(rep.task2), || {
            format!("{what} did not remind their own task (precondition)")
        });
        c.check(!reminded(rep.ro[&K::Activity]), || {
            format!("{what} reminded a task they may only read")
        });
    }
    c.check(!reminded(o.secret[&K::Activity]), || {
        "service.fire_reminders reminded an unreadable task".into()
    });
    c.denied(
        "service.fire_reminders by a role that may only read activities",
        &o.on(&o.noperm).service().fire_reminders(),
    );
    c.finish();
}

// ------------------------------------------------------------------------------------------------
// Analytics.
// ------------------------------------------------------------------------------------------------

#[test]
fn analytics_rfm_scores_only_readable_orders() {
    let o = org();
    let mut c = Checks::default();
    for v in o.viewers() {
        let s = o.on(&v.ctx);
        for (label, opts) in [
            ("all history", RfmOptions::default()),
            (
                "a window",
                RfmOptions {
                    window_days: Some(365),
                    ..Default::default()
                },
            ),
        ] {
            let what = format!("analytics.rfm ({label}) by `{}`", v.name);
            let r = s.analytics().rfm(&opts);
            let rows = c.answer_or_refusal(&what, &r, &v.forbidden);
            if let (Some(rows), Some(rep)) = (rows, o.reps.iter().find(|r| r.name == v.name)) {
                c.check(!rows.iter().any(|x| x.account_id == rep.acc), || {
                    format!("{what} scores their account, whose only order they may not read")
                });
            }
        }
    }
    c.finish();
}

#[test]
fn analytics_lifecycles_use_only_readable_orders() {
    let o = org();
    let mut c = Checks::default();
    for v in o.viewers() {
        let s = o.on(&v.ctx);
        let what = format!("analytics.lifecycles by `{}`", v.name);
        let r = s
            .analytics()
            .lifecycles(None, &LifecycleThresholds::default());
        c.ok_no_leak(&what, &r, &v.forbidden);
        if let (Ok(rows), Some(rep)) = (&r, o.reps.iter().find(|r| r.name == v.name)) {
            let got = rows.iter().find(|(id, _)| *id == rep.acc).map(|x| x.1);
            c.check(got == Some(Lifecycle::Prospect), || {
                format!(
                    "{what}: their account, whose only order they may not read, is {got:?} (a prospect as far as they may know)"
                )
            });
        }
    }
    c.finish();
}

#[test]
fn analytics_profit_uses_only_readable_orders_and_costs() {
    let o = org();
    let mut c = Checks::default();
    let opts = |by| ProfitOptions {
        from: o.start - Duration::days(1),
        to: o.start + Duration::days(1),
        by,
        rates: None,
        rfm: RfmOptions::default(),
    };
    for v in o.viewers() {
        let s = o.on(&v.ctx);
        for (label, by) in [
            ("by lifecycle", ProfitDimension::Lifecycle),
            ("by rfm", ProfitDimension::Rfm),
        ] {
            let what = format!("analytics.profit ({label}) by `{}`", v.name);
            let r = s.analytics().profit(&opts(by));
            let rows = c.answer_or_refusal(&what, &r, &v.forbidden);
            if let (Some(rows), true) = (rows, v.ctx == o.hidden) {
                // Sums of several lines hide the marker: the costs themselves must be unknown.
                let costed: Vec<String> = rows
                    .iter()
                    .filter(|x| !x.cost.amount.is_zero())
                    .map(|x| format!("{} {}", x.product, x.cost))
                    .collect();
                c.check(costed.is_empty(), || {
                    format!("{what}: costs computed from the hidden product.unit_cost: {costed:?}")
                });
            }
            if let (Some(rows), Ok(orders)) = (rows, all(&s, K::Order)) {
                let revenue: Decimal = rows.iter().map(|x| x.revenue.amount).sum();
                let readable: Decimal = orders
                    .iter()
                    .filter(|o| o.text("status") != Some("cancelled"))
                    .filter_map(|o| match o.get("lines") {
                        Value::Lines(l) => {
                            Some(l.iter().map(|l| l.quantity * l.unit_price).sum::<Decimal>())
                        }
                        _ => None,
                    })
                    .sum();
                c.check(v.ctx == o.other || !readable.is_zero(), || {
                    format!("{what}: the user may read no order (precondition)")
                });
                c.check(revenue == readable, || {
                    format!("{what}: revenue {revenue}, the orders the user may read add up to {readable}")
                });
            }
        }
    }
    c.denied(
        "analytics.profit by the role `hidden fields` grouped by vat_number",
        &o.on(&o.hidden)
            .analytics()
            .profit(&opts(ProfitDimension::Field {
                field: "vat_number".into(),
            })),
    );
    c.finish();
}

/// Per owner: (activities, leads, orders not cancelled, open cases) among the records `s` may read.
fn tallies(s: &Session) -> BTreeMap<RecordId, (u64, u64, u64, u64)> {
    let mut by: BTreeMap<RecordId, (u64, u64, u64, u64)> = BTreeMap::new();
    for r in all(s, K::Activity).unwrap_or_default() {
        by.entry(r.meta.owner_id).or_default().0 += 1;
    }
    for r in all(s, K::Lead).unwrap_or_default() {
        by.entry(r.meta.owner_id).or_default().1 += 1;
    }
    for r in all(s, K::Order).unwrap_or_default() {
        if r.text("status") != Some("cancelled") {
            by.entry(r.meta.owner_id).or_default().2 += 1;
        }
    }
    for r in all(s, K::Case).unwrap_or_default() {
        if !matches!(r.text("status"), Some("resolved" | "closed")) {
            by.entry(r.meta.owner_id).or_default().3 += 1;
        }
    }
    by.retain(|_, t| *t != (0, 0, 0, 0));
    by
}

#[test]
fn analytics_kpis_count_only_readable_records() {
    let o = org();
    let mut c = Checks::default();
    let (from, to) = (o.start - Duration::days(1), o.start + Duration::days(1));
    // Won deals: a rep's own (its amount is hidden from the role `hidden fields`) and an unreadable
    // one (its amount is the marker no rep may see).
    for id in [o.reps[0].opp2, o.secret[&K::Opportunity]] {
        let v = o.admin_get(K::Opportunity, id).meta.version;
        o.admin()
            .sales()
            .move_opportunity(id, v, "won", None, None)
            .unwrap();
    }
    for v in o.viewers() {
        let s = o.on(&v.ctx);
        let what = format!("analytics.kpis by `{}`", v.name);
        let r = s.analytics().kpis(from, to, None);
        c.ok_no_leak(&what, &r, &v.forbidden);
        if let (Ok(rows), true) = (&r, v.ctx == o.hidden) {
            let revealed: Vec<String> = rows
                .iter()
                .filter(|k| k.revenue_closed.is_some() || k.average_deal_size.is_some())
                .map(|k| format!("{:?}: {:?}", k.user_id, k.revenue_closed))
                .collect();
            c.check(revealed.is_empty(), || {
                format!("{what}: revenue closed from the hidden opportunity.amount: {revealed:?}")
            });
        }
        if let Ok(rows) = &r {
            let mut got: BTreeMap<RecordId, (u64, u64, u64, u64)> = rows
                .iter()
                .filter_map(|k| {
                    k.user_id
                        .map(|u| (u, (k.activities, k.leads, k.orders, k.open_cases)))
                })
                .collect();
            got.retain(|_, t| *t != (0, 0, 0, 0));
            let want = tallies(&s);
            c.check(v.ctx == o.other || want.contains_key(&v.ctx.user_id) || v.ctx == o.hidden, || {
                format!("{what}: the user's own records are missing from what they may read (precondition)")
            });
            c.check(got == want, || {
                format!("{what}: per owner (activities, leads, orders, open cases) {got:?}; the records the user may read give {want:?}")
            });
        }
    }
    c.finish();
}

#[test]
fn analytics_team_kpis_count_only_readable_records() {
    let o = org();
    let mut c = Checks::default();
    let (from, to) = (o.start - Duration::days(1), o.start + Duration::days(1));
    let teams_of = |u: RecordId| -> Vec<RecordId> {
        o.admin()
            .records()
            .get(K::User, u)
            .ok()
            .and_then(|r| {
                r.get("team_ids")
                    .as_list()
                    .map(|l| l.iter().filter_map(|s| s.parse().ok()).collect())
            })
            .unwrap_or_default()
    };
    for v in o.viewers() {
        let s = o.on(&v.ctx);
        let what = format!("analytics.team_kpis by `{}`", v.name);
        let r = s.analytics().team_kpis(from, to, None);
        c.ok_no_leak(&what, &r, &v.forbidden);
        if let Ok(rows) = &r {
            let mut got: BTreeMap<RecordId, (u64, u64, u64, u64)> = rows
                .iter()
                .filter_map(|k| {
                    k.team_id
                        .map(|t| (t, (k.activities, k.leads, k.orders, k.open_cases)))
                })
                .collect();
            got.retain(|_, t| *t != (0, 0, 0, 0));
            let mut want: BTreeMap<RecordId, (u64, u64, u64, u64)> = BTreeMap::new();
            for (owner, t) in tallies(&s) {
                for team in teams_of(owner) {
                    let e = want.entry(team).or_default();
                    e.0 += t.0;
                    e.1 += t.1;
                    e.2 += t.2;
                    e.3 += t.3;
                }
            }
            c.check(v.name != "team" || !want.is_empty(), || {
                format!("{what}: nothing the user may read belongs to a team member (precondition)")
            });
            c.check(got == want, || {
                format!("{what}: per team {got:?}; the records the user may read give {want:?}")
            });
        }
    }
    c.finish();
}

/// Records which accounts the screen pop asked the ERP about.
#[derive(Default)]
struct FactsSpy(Mutex<Vec<RecordId>>);

impl ErpFacts for FactsSpy {
    fn facts(&self, account_id: RecordId) -> Result<ErpFactsRow> {
        self.0.lock().unwrap().push(account_id);
        Ok(ErpFactsRow::default())
    }
}

#[test]
fn analytics_screen_pop_shows_only_readable_records() {
    let o = org();
    let mut c = Checks::default();
    let a = o.admin();
    for (i, rep) in o.reps.iter().enumerate() {
        let s = o.on(&rep.ctx);
        let n = rep.name;
        let forbidden = o.rep_forbidden(rep);
        let spy = FactsSpy::default();
        for (label, phone) in [
            ("the unreadable account's phone", SECRET_ACC_PHONE),
            ("the unreadable contact's phone", SECRET_CONTACT_PHONE),
        ] {
            let what = format!("analytics.screen_pop by `{n}` of {label}");
            let r = s.analytics().screen_pop(phone, Some(&spy));
            c.ok_no_leak(&what, &r, &forbidden);
            if let Ok(p) = &r {
                c.check(p.candidates.is_empty() && p.account.is_none(), || {
                    format!("{what} found {} candidate(s)", p.candidates.len())
                });
            }
        }
        // Their account: its orders, opportunity and case are someone else's.
        let what = format!("analytics.screen_pop by `{n}` of their account's phone");
        let r = s.analytics().screen_pop(&rep.acc_phone, Some(&spy));
        c.ok_no_leak(&what, &r, &forbidden);
        match &r {
            Ok(p) => match &p.account {
                Some(acc) if acc.meta.id == rep.acc => {
                    clean_totals(&mut c, &what, acc);
                    c.check(p.rfm_segment.is_none(), || {
                        format!(
                            "{what}: RFM segment {:?} from orders the user may not read",
                            p.rfm_segment
                        )
                    });
                    c.check(p.lifecycle == Some(Lifecycle::Prospect), || {
                        format!(
                            "{what}: lifecycle {:?} from orders the user may not read",
                            p.lifecycle
                        )
                    });
                }
                other => c.fail(format!("{what}: expected their account, got {other:?}")),
            },
            Err(e) => c.fail(format!("{what}: {e}")),
        }
        // Their contact on an unreadable account.
        let phone = format!("+39 02 83{i:02} 0001");
        a.records()
            .create(
                K::Contact,
                NewRecord {
                    fields: fields! { "last_name" => "on a hidden account", "account_id" => o.secret[&K::Account], "phone" => phone.as_str() },
                    owner_id: Some(rep.ctx.user_id),
                },
            )
            .unwrap();
        let what =
            format!("analytics.screen_pop by `{n}` of their contact on an unreadable account");
        let r = s.analytics().screen_pop(&phone, Some(&spy));
        // Their own contact's `account_id` names the account: that reference is theirs to see.
        let secret_acc = o.secret[&K::Account].to_string();
        let but_the_reference: Vec<(String, String)> = forbidden
            .iter()
            .filter(|(_, n)| *n != secret_acc)
            .cloned()
            .collect();
        c.ok_no_leak(&what, &r, &but_the_reference);
        if let Ok(p) = &r {
            c.check(p.contact.is_some() && p.account.is_none(), || {
                format!(
                    "{what}: contact {:?}, account {:?}",
                    p.contact.is_some(),
                    p.account.as_ref().map(|a| a.meta.id)
                )
            });
        }
        let asked = spy.0.lock().unwrap().clone();
        c.check(asked.iter().all(|id| *id == rep.acc), || {
            format!("analytics.screen_pop by `{n}` asked the ERP about accounts they may not read: {asked:?}")
        });
    }
    let s = o.on(&o.hidden);
    for rep in &o.reps {
        for phone in [&rep.acc_phone, &rep.acc2_phone] {
            c.ok_no_leak(
                &format!(
                    "analytics.screen_pop by the role `hidden fields` of `{}`'s account",
                    rep.name
                ),
                &s.analytics().screen_pop(phone, None),
                &o.hidden_forbidden(),
            );
        }
    }
    let s = o.on(&o.other);
    let r = s.analytics().screen_pop(SECRET_ACC_PHONE, None);
    c.ok_no_leak(
        "analytics.screen_pop by another tenant's administrator",
        &r,
        &o.other_forbidden(),
    );
    if let Ok(p) = &r {
        c.check(
            p.account.as_ref().map(|a| a.meta.id) == Some(o.other_account),
            || "analytics.screen_pop by another tenant's administrator did not find their own account".into(),
        );
    }
    c.finish();
}

#[test]
fn analytics_cross_sell_is_checked() {
    let o = org();
    let mut c = Checks::default();
    door(
        &o,
        &mut c,
        "analytics.cross_sell",
        K::Account,
        Door::Read,
        &|s, id, _| s.analytics().cross_sell(id, 10),
    );
    c.finish();
}

/// Suggestions come from the baskets the user may read: a product bought only in unreadable orders
/// is never suggested.
#[test]
fn analytics_cross_sell_uses_only_readable_baskets() {
    let o = org();
    let mut c = Checks::default();
    let gadget = o.gadget;
    let admin = o
        .admin()
        .analytics()
        .cross_sell(o.reps[0].acc2, 10)
        .unwrap();
    assert!(
        admin.iter().any(|x| x.product_id == gadget),
        "precondition: the administrator is suggested the gadget ({admin:?})"
    );
    let only_unreadable = vec![(
        "a product bought only in orders the user may not read".to_owned(),
        gadget.to_string(),
    )];
    for rep in &o.reps {
        let s = o.on(&rep.ctx);
        c.ok_no_leak(
            &format!("analytics.cross_sell by `{}` for their account", rep.name),
            &s.analytics().cross_sell(rep.acc2, 10),
            &only_unreadable,
        );
        c.ok_no_leak(
            &format!("analytics.screen_pop by `{}`: its cross-sell", rep.name),
            &s.analytics()
                .screen_pop(&rep.acc2_phone, None)
                .map(|p| p.cross_sell),
            &only_unreadable,
        );
    }
    c.finish();
}

#[test]
fn analytics_customer_values_use_only_readable_records() {
    let o = org();
    let mut c = Checks::default();
    for v in o.viewers() {
        let s = o.on(&v.ctx);
        let what = format!("analytics.customer_values by `{}`", v.name);
        let r = s.analytics().customer_values(&ValueOptions::default());
        let rows = c.answer_or_refusal(&what, &r, &v.forbidden);
        if let (Some(rows), Some(rep)) = (rows, o.reps.iter().find(|r| r.name == v.name)) {
            match rows.iter().find(|x| x.account_id == rep.acc) {
                Some(x) => c.check(
                    x.orders == 0 && x.lifetime_value.is_none() && x.predicted_value.is_none(),
                    || {
                        format!(
                            "{what}: their account, whose only order they may not read, has {x:?}"
                        )
                    },
                ),
                None => c.fail(format!("{what}: no row for their account")),
            }
        }
    }
    c.finish();
}

// ------------------------------------------------------------------------------------------------
// Segments.
// ------------------------------------------------------------------------------------------------

#[test]
fn segments_parse_refuses_hidden_fields() {
    let o = org();
    let mut c = Checks::default();
    let s = o.on(&o.hidden);
    for (k, text, field) in [
        (K::Account, "vat_number = \"HVAT-own\"", "vat_number"),
        (K::Product, "unit_cost > 1 EUR", "unit_cost"),
        (K::Opportunity, "amount > 1 EUR", "amount"),
    ] {
        let r = s.segments().parse(k, text, None);
        c.denied(
            &format!("segments.parse({k}, `{text}`) by the role `hidden fields`"),
            &r,
        );
        if let Err(e) = &r {
            c.check(
                e.field.as_deref().is_some_and(|f| f.contains(field)),
                || {
                    format!(
                        "segments.parse({k}, `{text}`): the error names {:?}, not `{field}`",
                        e.field
                    )
                },
            );
        }
    }
    c.check(
        o.on(&o.readonly)
            .segments()
            .parse(K::Account, "industry = \"Retail\"", None)
            .is_ok(),
        || "segments.parse by the role `read-only field` on a read-only field is refused".into(),
    );
    c.finish();
}

/// A static segment curated by the administrator, owned by the rep, listing the rep's account and
/// unreadable ones.
fn static_segment(o: &Org, rep: &Rep) -> RecordId {
    let members = serde_json::Value::Array(
        [
            rep.acc2,
            o.secret[&K::Account],
            o.reps.iter().find(|r| r.name != rep.name).unwrap().acc,
        ]
        .iter()
        .map(|id| serde_json::json!(id.to_string()))
        .collect(),
    );
    o.admin()
        .records()
        .create(
            K::Segment,
            NewRecord {
                fields: fields! { "name" => "hand picked", "entity" => "account", "kind" => "static", "member_ids" => Value::Json(members) },
                owner_id: Some(rep.ctx.user_id),
            },
        )
        .unwrap()
        .meta
        .id
}

#[test]
fn segments_filter_is_checked() {
    let o = org();
    let mut c = Checks::default();
    door(
        &o,
        &mut c,
        "segments.filter",
        K::Segment,
        Door::Read,
        &|s, id, _| s.segments().filter(id),
    );
    for rep in &o.reps {
        let seg = static_segment(&o, rep);
        c.ok_no_leak(
            &format!(
                "segments.filter by `{}` of a static segment listing unreadable accounts",
                rep.name
            ),
            &o.on(&rep.ctx).segments().filter(seg),
            &o.rep_forbidden(rep),
        );
    }
    c.finish();
}

#[test]
fn segments_count_and_members_are_checked() {
    let o = org();
    let mut c = Checks::default();
    door(
        &o,
        &mut c,
        "segments.count",
        K::Segment,
        Door::Read,
        &|s, id, _| s.segments().count(id),
    );
    door(
        &o,
        &mut c,
        "segments.members",
        K::Segment,
        Door::Read,
        &|s, id, _| s.segments().members(id, &ListRequest::default()),
    );
    for rep in &o.reps {
        let s = o.on(&rep.ctx);
        let n = rep.name;
        let forbidden = o.rep_forbidden(rep);
        let ro = rep.ro[&K::Segment];
        let count = s.segments().count(ro);
        let members = s
            .segments()
            .members(ro, &ListRequest::default().limit(1000));
        let direct = s
            .records()
            .count(K::Account, Some(&Filter::eq("country", "IT")));
        c.ok_no_leak(&format!("segments.members by `{n}`"), &members, &forbidden);
        c.check(
            matches!((&count, &members, &direct), (Ok(a), Ok(m), Ok(d)) if *a == m.items.len() as u64 && a == d),
            || format!("segments.count by `{n}`: {}, members {}, their Italian accounts {}", show(&count), members.as_ref().map(|m| m.items.len()).unwrap_or(0), show(&direct)),
        );
        let seg = static_segment(&o, rep);
        let count = s.segments().count(seg);
        let members = s.segments().members(seg, &ListRequest::default());
        c.ok_no_leak(
            &format!("segments.members by `{n}` of a static segment"),
            &members,
            &forbidden,
        );
        c.check(matches!(count, Ok(1)), || {
            format!(
                "segments.count by `{n}` of a static segment listing one readable account: {}",
                show(&count)
            )
        });
        // A definition over maintained totals: their account's only order is unreadable.
        let seg = o
            .admin()
            .records()
            .create(
                K::Segment,
                NewRecord {
                    fields: fields! { "name" => "buyers", "entity" => "account", "definition" => "order_count > 0" },
                    owner_id: Some(rep.ctx.user_id),
                },
            )
            .unwrap()
            .meta
            .id;
        let what = format!("segments.members by `{n}` of a segment over order_count");
        let members = s
            .segments()
            .members(seg, &ListRequest::default().limit(1000));
        if let Some(page) = c.answer_or_refusal(&what, &members, &forbidden) {
            c.check(!page.items.iter().any(|r| r.meta.id == rep.acc), || {
                format!("{what} holds their account, whose only order they may not read")
            });
        }
        let what = format!("segments.count by `{n}` of a segment over order_count");
        let count = s.segments().count(seg);
        let readable_buyers = [rep.acc2, rep.ro[&K::Account]].len() as u64;
        if let Some(n) = c.answer_or_refusal(&what, &count, &forbidden) {
            c.check(*n <= readable_buyers, || {
                format!("{what} is {n}: more than the {readable_buyers} accounts with orders they may read")
            });
        }
    }
    c.finish();
}

#[test]
fn segments_refresh_is_checked() {
    let o = org();
    let mut c = Checks::default();
    door(
        &o,
        &mut c,
        "segments.refresh",
        K::Segment,
        Door::Change,
        &|s, id, _| s.segments().refresh(id),
    );
    c.finish();
}

/// A segment's stored members (`member_ids`, `member_count`) and a refresh's diff name no record
/// the reader may not read, whoever refreshed it before.
#[test]
fn segments_stored_members_reveal_no_unreadable_record() {
    let o = org();
    let mut c = Checks::default();
    let a = o.admin();
    for rep in &o.reps {
        let s = o.on(&rep.ctx);
        let n = rep.name;
        let forbidden = o.rep_forbidden(rep);
        let seg = a
            .records()
            .create(
                K::Segment,
                NewRecord {
                    fields: fields! { "name" => "Italians", "entity" => "account", "definition" => "country = \"IT\"" },
                    owner_id: Some(rep.ctx.user_id),
                },
            )
            .unwrap()
            .meta
            .id;
        a.segments().refresh(seg).unwrap();
        let readable = match s
            .records()
            .count(K::Account, Some(&Filter::eq("country", "IT")))
        {
            Ok(n) => n,
            Err(e) => {
                c.fail(format!(
                    "records.count by `{n}` of their Italian accounts: {e}"
                ));
                continue;
            }
        };
        let what = format!("records.get by `{n}` of their segment refreshed by the administrator");
        let r = s.records().get(K::Segment, seg);
        c.ok_no_leak(&what, &r, &forbidden);
        if let Ok(rec) = &r {
            let stored = rec.get("member_count").as_int();
            c.check(stored.is_none_or(|x| x as u64 <= readable), || {
                format!("{what}: member_count {stored:?}, the user may read {readable} members")
            });
        }
        c.ok_no_leak(
            &format!("records.list(segment) by `{n}`"),
            &all(&s, K::Segment),
            &forbidden,
        );
        // The administrator's refresh is an audited update of `member_ids`.
        let what = format!("of `{n}`'s segment refreshed by the administrator");
        c.ok_no_leak(
            &format!("audit.history {what}"),
            &s.audit().history(K::Segment, seg, None, None),
            &forbidden,
        );
        c.ok_no_leak(
            &format!("audit.version 2 {what}"),
            &s.audit().version(K::Segment, seg, 2),
            &forbidden,
        );
        c.ok_no_leak(
            &format!("audit.as_of {what}"),
            &s.audit().as_of(K::Segment, seg, o.w.crm.now()),
            &forbidden,
        );
        c.ok_no_leak(
            &format!("audit.diff_versions 1→2 {what}"),
            &s.audit().diff_versions(K::Segment, seg, 1, 2),
            &forbidden,
        );
        // Only a user who sees every record of the segment's type materialises its members; a
        // scoped user is refused (and learns nothing from the refusal).
        c.answer_or_refusal(
            &format!("segments.refresh by `{n}` of their segment refreshed by the administrator (the diff)"),
            &s.segments().refresh(seg),
            &forbidden,
        );
        let seg = static_segment(&o, rep);
        c.ok_no_leak(
            &format!("records.get by `{n}` of a static segment listing unreadable accounts"),
            &s.records().get(K::Segment, seg),
            &forbidden,
        );
    }
    c.finish();
}

// ------------------------------------------------------------------------------------------------
// Audit.
// ------------------------------------------------------------------------------------------------

#[test]
fn audit_history_is_checked() {
    let o = org();
    let mut c = Checks::default();
    for &k in BUSINESS {
        door(&o, &mut c, "audit.history", k, Door::Read, &|s, id, _| {
            s.audit().history(k, id, None, None)
        });
    }
    let s = o.on(&o.hidden);
    for rep in &o.reps {
        for (k, id) in [
            (K::Account, rep.acc2),
            (K::Order, rep.order2),
            (K::Opportunity, rep.opp2),
            (K::Quote, rep.ro[&K::Quote]),
        ] {
            c.ok_no_leak(
                &format!(
                    "audit.history of `{}`'s {k} by the role `hidden fields`",
                    rep.name
                ),
                &s.audit().history(k, id, None, None),
                &o.hidden_forbidden(),
            );
        }
    }
    c.ok_no_leak(
        "audit.history of a product by the role `hidden fields`",
        &s.audit().history(K::Product, o.widget, None, None),
        &o.hidden_forbidden(),
    );
    c.finish();
}

#[test]
fn audit_as_of_version_diff_are_checked() {
    let o = org();
    let mut c = Checks::default();
    let at = o.w.crm.now();
    for &k in BUSINESS {
        door(&o, &mut c, "audit.as_of", k, Door::Read, &|s, id, _| {
            s.audit().as_of(k, id, at)
        });
        door(&o, &mut c, "audit.version", k, Door::Read, &|s, id, _| {
            s.audit().version(k, id, 1)
        });
        door(
            &o,
            &mut c,
            "audit.diff_versions",
            k,
            Door::Read,
            &|s, id, _| s.audit().diff_versions(k, id, 1, 1),
        );
    }
    let a = o.admin();
    let s = o.on(&o.hidden);
    let f = o.hidden_forbidden();
    for rep in &o.reps {
        let v = o.admin_get(K::Account, rep.acc2).meta.version;
        a.records()
            .update(
                K::Account,
                rep.acc2,
                v,
                fields! { "vat_number" => "HVAT-changed" },
            )
            .unwrap();
        let who = format!("of `{}`'s account by the role `hidden fields`", rep.name);
        c.ok_no_leak(
            &format!("audit.version 1 {who}"),
            &s.audit().version(K::Account, rep.acc2, 1),
            &f,
        );
        c.ok_no_leak(
            &format!("audit.version {} {who}", v + 1),
            &s.audit().version(K::Account, rep.acc2, v + 1),
            &f,
        );
        c.ok_no_leak(
            &format!("audit.as_of {who}"),
            &s.audit().as_of(K::Account, rep.acc2, o.w.crm.now()),
            &f,
        );
        c.ok_no_leak(
            &format!("audit.diff_versions {who}"),
            &s.audit().diff_versions(K::Account, rep.acc2, 1, v + 1),
            &f,
        );
        c.ok_no_leak(
            &format!(
                "audit.version 1 of `{}`'s order by the role `hidden fields`",
                rep.name
            ),
            &s.audit().version(K::Order, rep.order2, 1),
            &f,
        );
    }
    c.finish();
}

#[test]
fn audit_restore_version_is_checked() {
    let o = org();
    let mut c = Checks::default();
    for &k in BUSINESS {
        door(
            &o,
            &mut c,
            "audit.restore_version",
            k,
            Door::Change,
            &|s, id, v| s.audit().restore_version(k, id, v, 1),
        );
    }
    // A restore that would write a read-only or hidden field is refused.
    let a = o.admin();
    for (ctx, field, old, new, label) in [
        (&o.readonly, "industry", "Retail", "Food", "read-only field"),
        (&o.hidden, "vat_number", "HVAT-1", "HVAT-2", "hidden fields"),
    ] {
        let acc = a
            .records()
            .create(
                K::Account,
                NewRecord {
                    fields: fields! { "name" => "restore", field => old, "city" => "Roma" },
                    owner_id: Some(ctx.user_id),
                },
            )
            .unwrap()
            .meta
            .id;
        a.records()
            .update(K::Account, acc, 1, fields! { "city" => "Milano" })
            .unwrap();
        let s = o.on(ctx);
        // Only the city differs from version 1: allowed.
        c.check(s.audit().restore_version(K::Account, acc, 2, 1).is_ok(), || {
            format!("audit.restore_version by the role `{label}` of a writable field is refused (precondition)")
        });
        a.records()
            .update(K::Account, acc, 3, fields! { field => new })
            .unwrap();
        c.denied(
            &format!("audit.restore_version by the role `{label}` writing `{field}`"),
            &s.audit().restore_version(K::Account, acc, 4, 1),
        );
        c.check(
            o.admin_get(K::Account, acc).text(field) == Some(new),
            || format!("audit.restore_version by the role `{label}` wrote `{field}`"),
        );
    }
    c.finish();
}

#[test]
fn audit_user_activity_shows_only_readable_records() {
    let o = org();
    let mut c = Checks::default();
    let a = o.admin();
    let (from, until) = (o.start - Duration::days(1), o.start + Duration::days(1));
    // The subordinate changes an account shared with them for editing, which their manager may not
    // read, and one of their own.
    let sa = o.secret[&K::Account];
    a.access()
        .share(K::Account, sa, Grantee::User(o.sub.user_id), true, None)
        .unwrap();
    let s_sub = o.on(&o.sub);
    let v = o.admin_get(K::Account, sa).meta.version;
    s_sub
        .records()
        .update(K::Account, sa, v, fields! { "city" => "ZQX city" })
        .unwrap();
    let theirs = s_sub
        .records()
        .create(K::Account, fields! { "name" => "sub's account" })
        .unwrap()
        .meta
        .id;
    let subs = o.rep("subordinates");
    let s = o.on(&subs.ctx);
    let what = "audit.user_activity by a manager of their subordinate";
    let r = s.audit().user_activity(o.sub.user_id, from, until, None);
    c.ok_no_leak(what, &r, &o.rep_forbidden(subs));
    if let Ok(entries) = &r {
        c.check(entries.iter().any(|e| e.record_id == theirs), || {
            format!("{what}: the subordinate's own account is missing (precondition)")
        });
    }
    for rep in &o.reps {
        let s = o.on(&rep.ctx);
        c.ok_no_leak(
            &format!("audit.user_activity by `{}` of themselves", rep.name),
            &s.audit().user_activity(rep.ctx.user_id, from, until, None),
            &o.rep_forbidden(rep),
        );
        let other = s
            .audit()
            .user_activity(o.outsider.user_id, from, until, None);
        let random = s.audit().user_activity(o.random(), from, until, None);
        c.denied(
            &format!(
                "audit.user_activity by `{}` of a user who is not their report",
                rep.name
            ),
            &other,
        );
        c.check(
            matches!((&other, &random), (Err(a), Err(b)) if shape(a) == shape(b)),
            || {
                format!(
                    "audit.user_activity by `{}`: a user of the tenant answers {}, a random id {}",
                    rep.name,
                    show(&other),
                    show(&random)
                )
            },
        );
    }
    let s = o.on(&o.other);
    let theirs = s
        .audit()
        .user_activity(o.admin().user_id(), from, until, None);
    let random = s.audit().user_activity(o.random(), from, until, None);
    c.ok_no_leak(
        "audit.user_activity by another tenant's administrator of this tenant's administrator",
        &theirs,
        &o.other_forbidden(),
    );
    c.check(
        matches!((&theirs, &random), (Ok(a), Ok(b)) if a.is_empty() && b.is_empty())
            || matches!((&theirs, &random), (Err(a), Err(b)) if shape(a) == shape(b)),
        || format!("audit.user_activity by another tenant's administrator: this tenant's user answers {}, a random id {}", show(&theirs), show(&random)),
    );
    c.finish();
}

#[test]
fn audit_verify_is_for_administrators() {
    let o = org();
    let mut c = Checks::default();
    let mut who: Vec<(String, Context)> = o
        .reps
        .iter()
        .map(|r| (r.name.to_owned(), r.ctx.clone()))
        .collect();
    who.push(("hidden fields".into(), o.hidden.clone()));
    who.push(("read-only field".into(), o.readonly.clone()));
    who.push(("read only".into(), o.noperm.clone()));
    for (name, ctx) in &who {
        c.denied(
            &format!("audit.verify by `{name}`"),
            &o.on(ctx).audit().verify(),
        );
    }
    let mine = o.admin().audit().verify().unwrap();
    let theirs = o.on(&o.other).audit().verify();
    c.check(
        matches!(&theirs, Ok(v) if v.ok && v.checked < mine.checked),
        || format!("audit.verify by another tenant's administrator checks {} (this tenant has {} entries)", show(&theirs), mine.checked),
    );
    c.finish();
}

#[test]
fn audit_stage_history_is_checked() {
    let o = org();
    let mut c = Checks::default();
    for k in [K::Lead, K::Opportunity, K::Quote, K::Case, K::Order] {
        door(
            &o,
            &mut c,
            "audit.stage_history",
            k,
            Door::Read,
            &|s, id, _| s.audit().stage_history(k, id),
        );
    }
    c.finish();
}

// ------------------------------------------------------------------------------------------------
// Access administration.
// ------------------------------------------------------------------------------------------------

#[test]
fn access_share_is_checked() {
    let o = org();
    let mut c = Checks::default();
    let mate = o.mate.user_id;
    for &k in BUSINESS {
        door(&o, &mut c, "access.share", k, Door::Change, &|s, id, _| {
            s.access().share(k, id, Grantee::User(mate), false, None)
        });
    }
    // Grantees the user may not know answer as random ones.
    for rep in &o.reps {
        let s = o.on(&rep.ctx);
        let share = |g| s.access().share(K::Account, rep.acc2, g, false, None);
        c.same_failure(
            "grantee_account_id",
            &format!(
                "access.share by `{}` with an unreadable account as partner",
                rep.name
            ),
            &share(Grantee::Partner(o.secret[&K::Account])),
            &share(Grantee::Partner(o.random())),
        );
        c.same_failure(
            "grantee_user_id",
            &format!("access.share by `{}` with another tenant's user", rep.name),
            &share(Grantee::User(o.other.user_id)),
            &share(Grantee::User(o.random())),
        );
        c.same_failure(
            "grantee_account_id",
            &format!(
                "access.share by `{}` with another tenant's account as partner",
                rep.name
            ),
            &share(Grantee::Partner(o.other_account)),
            &share(Grantee::Partner(o.random())),
        );
    }
    c.finish();
}

#[test]
fn access_unshare_is_checked() {
    let o = org();
    let mut c = Checks::default();
    let share_ids: Vec<RecordId> = o.shares.iter().map(|x| x.2).collect();
    let mut who: Vec<(String, Context)> = o
        .reps
        .iter()
        .map(|r| (r.name.to_owned(), r.ctx.clone()))
        .collect();
    who.push(("read only".into(), o.noperm.clone()));
    who.push(("another tenant's administrator".into(), o.other.clone()));
    for (name, ctx) in &who {
        let s = o.on(ctx);
        for id in &share_ids {
            c.like_random(
                &format!("access.unshare by `{name}` of a share the administrator made"),
                &s.access().unshare(*id),
                &s.access().unshare(o.random()),
            );
        }
    }
    let live = o.admin().records().count(K::Share, None).unwrap();
    c.check(live as usize >= share_ids.len(), || {
        format!(
            "access.unshare: {live} shares left of the administrator's {}",
            share_ids.len()
        )
    });
    for rep in &o.reps {
        let s = o.on(&rep.ctx);
        match s.access().share(
            K::Account,
            rep.acc2,
            Grantee::User(o.mate.user_id),
            false,
            None,
        ) {
            Ok(share) => c.check(s.access().unshare(share.meta.id).is_ok(), || {
                format!(
                    "access.unshare by `{}` of their own share is refused (precondition)",
                    rep.name
                )
            }),
            Err(e) => c.fail(format!(
                "access.share by `{}` of their own account: {e}",
                rep.name
            )),
        }
    }
    c.finish();
}

#[test]
fn access_explain_is_checked() {
    let o = org();
    let mut c = Checks::default();
    for &k in BUSINESS {
        door(&o, &mut c, "access.explain", k, Door::Read, &|s, id, _| {
            s.access().explain(s.user_id(), Action::Read, k, id)
        });
    }
    for rep in &o.reps {
        let s = o.on(&rep.ctx);
        c.denied(
            &format!("access.explain by `{}` about another user", rep.name),
            &s.access()
                .explain(o.mate.user_id, Action::Read, K::Account, rep.acc2),
        );
        c.ok_no_leak(
            &format!("access.explain by `{}` about their account", rep.name),
            &s.access()
                .explain(rep.ctx.user_id, Action::Update, K::Account, rep.acc),
            &o.rep_forbidden(rep),
        );
    }
    let s = o.on(&o.other);
    c.like_random(
        "access.explain by another tenant's administrator about this tenant's user",
        &s.access().explain(
            o.reps[0].ctx.user_id,
            Action::Read,
            K::Account,
            o.other_account,
        ),
        &s.access()
            .explain(o.random(), Action::Read, K::Account, o.other_account),
    );
    c.finish();
}

#[test]
fn access_who_can_read_is_checked() {
    let o = org();
    let mut c = Checks::default();
    for &k in BUSINESS {
        door(
            &o,
            &mut c,
            "access.who_can_read",
            k,
            Door::Change,
            &|s, id, _| s.access().who_can_read(k, id),
        );
    }
    let r = o
        .on(&o.other)
        .access()
        .who_can_read(K::Account, o.other_account);
    c.ok_no_leak(
        "access.who_can_read by another tenant's administrator of their own account",
        &r,
        &o.other_forbidden(),
    );
    if let Ok(rows) = &r {
        let acme: BTreeSet<RecordId> = o.reps.iter().map(|r| r.ctx.user_id).collect();
        c.check(
            !rows
                .iter()
                .any(|x| acme.contains(&x.user_id) || x.username == "outsider"),
            || {
                "access.who_can_read by another tenant's administrator lists this tenant's users"
                    .into()
            },
        );
    }
    c.finish();
}

#[test]
fn access_roles_reading_field_is_for_administrators() {
    let o = org();
    let mut c = Checks::default();
    let mut who: Vec<(String, Context)> = o
        .reps
        .iter()
        .map(|r| (r.name.to_owned(), r.ctx.clone()))
        .collect();
    who.push(("hidden fields".into(), o.hidden.clone()));
    who.push(("read-only field".into(), o.readonly.clone()));
    who.push(("read only".into(), o.noperm.clone()));
    for (name, ctx) in &who {
        c.denied(
            &format!("access.roles_reading_field by `{name}`"),
            &o.on(ctx)
                .access()
                .roles_reading_field(K::Account, "vat_number"),
        );
    }
    let mut forbidden = o.other_forbidden();
    for (name, (id, _)) in &o.roles {
        forbidden.push((format!("this tenant's role `{name}`"), id.to_string()));
        forbidden.push((
            format!("this tenant's role name `{name}`"),
            (*name).to_owned(),
        ));
    }
    forbidden.push((
        "this tenant's administrator role".into(),
        o.admin_role.to_string(),
    ));
    c.ok_no_leak(
        "access.roles_reading_field by another tenant's administrator",
        &o.on(&o.other)
            .access()
            .roles_reading_field(K::Account, "name"),
        &forbidden,
    );
    c.finish();
}

// ------------------------------------------------------------------------------------------------
// Outbox.
// ------------------------------------------------------------------------------------------------

/// Records what would have been sent.
#[derive(Default)]
struct MailSpy(Mutex<Vec<EmailMessage>>);

impl Mailer for MailSpy {
    fn send(&self, msg: &EmailMessage) -> Result<()> {
        self.0.lock().unwrap().push(msg.clone());
        Ok(())
    }
}

#[test]
fn outbox_is_for_integration_users() {
    let o = org();
    let mut c = Checks::default();
    let a = o.admin();
    let pending = a.outbox().pending(0, 10_000).unwrap();
    let seqs: Vec<u64> = pending.iter().map(|e| e.seq).collect();
    let mut who: Vec<(String, Context)> = o
        .reps
        .iter()
        .map(|r| (r.name.to_owned(), r.ctx.clone()))
        .collect();
    who.push(("hidden fields".into(), o.hidden.clone()));
    who.push(("read-only field".into(), o.readonly.clone()));
    who.push(("read only".into(), o.noperm.clone()));
    for (name, ctx) in &who {
        let s = o.on(ctx);
        let spy = MailSpy::default();
        c.denied(
            &format!("outbox.pending by `{name}`"),
            &s.outbox().pending(0, 10_000),
        );
        c.denied(&format!("outbox.ack by `{name}`"), &s.outbox().ack(&seqs));
        c.denied(
            &format!("outbox.deliver_emails by `{name}`"),
            &s.outbox().deliver_emails(&spy),
        );
        c.check(spy.0.lock().unwrap().is_empty(), || {
            format!("outbox.deliver_emails by `{name}` sent e-mails")
        });
    }
    // Another tenant's administrator drains their own tenant only.
    let s = o.on(&o.other);
    c.ok_no_leak(
        "outbox.pending by another tenant's administrator",
        &s.outbox().pending(0, 10_000),
        &o.other_forbidden(),
    );
    let spy = MailSpy::default();
    let _ = s.outbox().deliver_emails(&spy);
    c.no_leak(
        "outbox.deliver_emails by another tenant's administrator",
        &*spy.0.lock().unwrap(),
        &o.other_forbidden(),
    );
    let acked = s.outbox().ack(&seqs);
    c.check(matches!(acked, Ok(0)), || {
        format!(
            "outbox.ack by another tenant's administrator of this tenant's events: {}",
            show(&acked)
        )
    });
    let still = a.outbox().pending(0, 10_000).unwrap().len();
    c.check(still == pending.len(), || {
        format!(
            "outbox: another tenant's administrator took {} of this tenant's events",
            pending.len() - still
        )
    });
    c.finish();
}

/// An integration user with a restricted role drains the events of the records it may read.
#[test]
fn outbox_integration_user_sees_only_its_scope() {
    let o = org();
    let mut c = Checks::default();
    let role = o.w.role(
        "integration",
        &business(&[Scope::Own], &[Scope::Own]).capability("integration"),
    );
    let integ = o.w.user("integration", role, fields! {});
    let s = o.on(&integ);
    let mine = s
        .records()
        .create(K::Account, fields! { "name" => "integration's own" })
        .unwrap()
        .meta
        .id;
    let forbidden = o.other_forbidden();
    let r = s.outbox().pending(0, 10_000);
    c.ok_no_leak(
        "outbox.pending by an integration user with scope own",
        &r,
        &forbidden,
    );
    if let Ok(events) = &r {
        c.check(events.iter().any(|e| e.record_id == mine), || {
            "outbox.pending by an integration user misses its own record's event (precondition)"
                .into()
        });
    }
    let secret_seqs: Vec<u64> = o
        .admin()
        .outbox()
        .pending(0, 10_000)
        .unwrap()
        .iter()
        .filter(|e| o.unreadable.iter().any(|(_, _, id)| *id == e.record_id))
        .map(|e| e.seq)
        .collect();
    let acked = s.outbox().ack(&secret_seqs);
    c.check(matches!(acked, Ok(0)), || {
        format!(
            "outbox.ack by an integration user with scope own of unreadable records' events: {}",
            show(&acked)
        )
    });
    let spy = MailSpy::default();
    let _ = s.outbox().deliver_emails(&spy);
    c.no_leak(
        "outbox.deliver_emails by an integration user with scope own",
        &*spy.0.lock().unwrap(),
        &forbidden,
    );
    let left: BTreeSet<u64> = o
        .admin()
        .outbox()
        .pending(0, 10_000)
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    c.check(secret_seqs.iter().all(|s| left.contains(s)), || {
        "outbox: an integration user with scope own acknowledged events of records it may not read"
            .into()
    });
    c.finish();
}

// ------------------------------------------------------------------------------------------------
// Users: assigning roles, teams, managers and territories is configuration.
// ------------------------------------------------------------------------------------------------

#[test]
fn user_cannot_change_own_configuration() {
    let o = org();
    let mut c = Checks::default();
    let policy = business(&[Scope::Own], &[Scope::Own]).allow(
        K::User,
        ObjectRule::new(
            &[Action::Read, Action::Update],
            &[Scope::Own],
            &[Scope::Own],
        ),
    );
    let role = o.w.role("self service", &policy);
    let me = o.w.user("selfservice", role, fields! {});
    let s = o.on(&me);
    let v = o.admin_get(K::User, me.user_id).meta.version;
    let ok = s
        .records()
        .update(K::User, me.user_id, v, fields! { "display_name" => "Me" });
    assert!(
        ok.is_ok(),
        "precondition: a user may change their own display name: {ok:?}"
    );
    let before = o.admin_get(K::User, me.user_id);
    let changes: [(&str, Value); 7] = [
        ("role_id", Value::Ref(o.admin_role)),
        ("team_ids", ids(&[o.team_a])),
        ("territory_ids", ids(&[o.t1])),
        ("manager_id", Value::Ref(o.outsider.user_id)),
        ("user_type", Value::from("external")),
        ("partner_account_id", Value::Ref(o.partner_acc)),
        ("active", Value::Bool(false)),
    ];
    for (field, value) in changes {
        let v = o.admin_get(K::User, me.user_id).meta.version;
        let r = s
            .records()
            .update(K::User, me.user_id, v, fields! { field => value });
        c.denied(
            &format!("records.update of their own user record setting `{field}`"),
            &r,
        );
    }
    let after = o.admin_get(K::User, me.user_id);
    c.check(after.fields == before.fields, || {
        format!(
            "a user changed their own configuration: {:?} → {:?}",
            before.fields, after.fields
        )
    });
    let p = o.w.crm.session(&me).and_then(|s| s.principal());
    c.check(
        matches!(&p, Ok(p) if p.role.as_ref().map(|r| r.0) == Some(role)),
        || {
            format!(
                "the user's role is now {:?}",
                p.as_ref().map(|p| p.role.clone())
            )
        },
    );
    c.finish();
}

#[test]
fn user_admin_without_configure_cannot_mint_administrators() {
    let o = org();
    let mut c = Checks::default();
    let policy = Policy::default().allow(
        K::User,
        ObjectRule::new(
            &[Action::Create, Action::Read, Action::Update],
            &[Scope::All],
            &[Scope::All],
        ),
    );
    let role = o.w.role("people office", &policy);
    let hr = o.w.user("hr", role, fields! {});
    let s = o.on(&hr);
    let newbie = s
        .records()
        .create(K::User, fields! { "username" => "newbie" });
    assert!(
        newbie.is_ok(),
        "precondition: the role may create users: {newbie:?}"
    );
    let newbie = newbie.unwrap().meta.id;
    c.denied(
        "records.create of a user holding the Administrator role, without configure",
        &s.records().create(
            K::User,
            fields! { "username" => "boss2", "role_id" => o.admin_role },
        ),
    );
    for (label, user) in [
        ("a user they created", newbie),
        ("another user", o.mate.user_id),
        ("themselves", hr.user_id),
    ] {
        let v = o.admin_get(K::User, user).meta.version;
        c.denied(
            &format!("records.update giving {label} the Administrator role, without configure"),
            &s.records()
                .update(K::User, user, v, fields! { "role_id" => o.admin_role }),
        );
    }
    let admins = o
        .admin()
        .records()
        .count(K::User, Some(&Filter::eq("role_id", o.admin_role)))
        .unwrap();
    c.check(admins == 1, || {
        format!("{admins} users now hold the Administrator role")
    });
    c.finish();
}
