//! The fuzz harness of crm-core + crm-store: what every fuzz target runs on one input, and what it
//! checks. The cargo-fuzz targets (`tests/fuzz/fuzz_targets/`) call these functions, and the replay
//! test (`tests/tests/fuzz_regressions.rs`, package crm-tests) includes this file as a module and
//! calls the same functions on every saved input, so CI replays the corpus without cargo-fuzz.
//!
//! Every target takes raw bytes. A returned `Err` from the library is fine — except `Internal`,
//! which the library documents as its own bug (and, with `CRM_FUZZ_STRICT=1`, `Storage`: see
//! [`strict`]); a panic or an abort is a bug. On top of "no crash" the targets check what the
//! library documents:
//!
//! * filter text: parse errors are `InvalidQuery`; text over [`MAX_FILTER_TEXT`] is refused; the
//!   canonical print of a parsed expression parses back to the same print;
//! * API filters: [`Filter::check_limits`] refuses exactly the filters beyond [`MAX_FILTER_DEPTH`],
//!   [`MAX_FILTER_NODES`] and [`MAX_FILTER_VALUES`] (counted independently here), with
//!   `InvalidQuery`, and `list`/`count` refuse them the same way; a filter that runs gives the same
//!   number of records through `list` and `count`;
//! * record writes: a failed create or update writes nothing (record counts, outbox and the record
//!   itself unchanged); a record returned by a write equals the record read back;
//! * import: a failed import leaves the database consistent and empty; a successful one leaves it
//!   consistent and can be exported again.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    unreachable_pub
)] // fuzz support code: a broken invariant must be loud

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use arbitrary::{Arbitrary, Unstructured};
use crm_core::chrono::{DateTime, NaiveDate, TimeZone, Utc};
use crm_core::{
    fields, Context, Crm, Currency, Decimal, EntityKind, ErrorKind, Fields, Filter, LineItem,
    ListRequest, ManualClock, Money, NewRecord, Op, Origin, Record, RecordId, Session, Sort,
    TenantId, Value, MAX_FILTER_DEPTH, MAX_FILTER_NODES, MAX_FILTER_TEXT, MAX_FILTER_VALUES,
};
use crm_store::SqliteStore;

// ------------------------------------------------------------------------------------- the world

/// The fixed "now" of every fuzz CRM (a manual clock, so `days_since_…` filters are reproducible).
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).single().unwrap()
}

/// A CRM over a fresh in-memory database, with the fixed clock; no tenant yet.
pub fn empty_crm() -> Crm {
    let store = SqliteStore::open_in_memory().expect("in-memory store");
    Crm::new(store).with_clock(Arc::new(ManualClock::new(now())))
}

/// A CRM with one tenant (`fuzz`), its administrator, custom fields and a few records of the kinds
/// the targets read and write.
pub struct World {
    pub crm: Crm,
    pub admin: Context,
    pub accounts: Vec<RecordId>,
    pub contacts: Vec<RecordId>,
    pub orders: Vec<RecordId>,
    pub products: Vec<RecordId>,
    /// The newest outbox sequence number `record_input` has seen.
    pub outbox_seen: AtomicU64,
}

impl World {
    pub fn session(&self) -> Session {
        self.crm.session(&self.admin).expect("admin session")
    }

    /// Every record id of the world, for `Ref` values that point at something real.
    fn ids(&self) -> Vec<RecordId> {
        let mut v = self.accounts.clone();
        v.extend(&self.contacts);
        v.extend(&self.orders);
        v.extend(&self.products);
        v.push(self.admin.user_id);
        v
    }
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).expect("decimal literal")
}

fn money(amount: &str, code: &str) -> Value {
    Value::Money(Money::parse(amount, code).expect("money literal"))
}

fn line(
    description: &str,
    quantity: &str,
    unit_price: &str,
    product: Option<RecordId>,
) -> LineItem {
    LineItem {
        product_id: product,
        description: description.to_owned(),
        quantity: dec(quantity),
        unit_price: dec(unit_price),
        discount_percent: dec("10"),
        tax_rate: dec("22"),
        unit_cost: None,
    }
}

fn strings(items: &[&str]) -> Value {
    Value::List(items.iter().map(|s| (*s).to_owned()).collect())
}

/// Builds the world: custom fields `sector` (choice), `score` (int), `revenue` (money), `since`
/// (date) and `tags` (multi choice) on accounts; four accounts in three countries, contacts, a
/// product and orders in EUR and USD (so the order statistics are filled in).
pub fn world() -> World {
    let crm = empty_crm();
    let tenant = TenantId::new("fuzz").expect("tenant id");
    let admin = crm
        .bootstrap(&tenant, "admin", Origin::default())
        .expect("bootstrap");
    let s = crm.session(&admin).expect("admin session");
    let r = s.records();
    let custom = |name: &str, ty: &str, choices: Option<&[&str]>| {
        let mut f = fields! { "entity" => "account", "name" => name, "field_type" => ty };
        if let Some(c) = choices {
            f.insert("choices".into(), Value::Json(strings(c).to_json()));
        }
        r.create(EntityKind::CustomField, f).expect("custom field");
    };
    custom("sector", "choice", Some(&["retail", "bank", "energy"]));
    custom("score", "int", None);
    custom("revenue", "money", None);
    custom("since", "date", None);
    custom("tags", "multi_choice", Some(&["vip", "late_payer", "new"]));

    let account = |f: Fields| r.create(EntityKind::Account, f).expect("account").meta.id;
    let acme = account(fields! {
        "name" => "ACME Srl", "country" => "IT", "city" => "Milano", "industry" => "retail",
        "email" => "info@acme.example", "phone" => "+39 02 1234 5678",
        "roles" => strings(&["customer"]), "custom.sector" => "retail", "custom.score" => 7_i64,
        "custom.revenue" => money("125000.50", "EUR"), "custom.tags" => strings(&["vip"]),
        "custom.since" => Value::Date(NaiveDate::from_ymd_opt(2019, 3, 1).expect("date")),
    });
    let globex = account(fields! {
        "name" => "Globex GmbH", "country" => "DE", "city" => "Berlin", "industry" => "energy",
        "roles" => strings(&["prospect", "partner"]), "custom.sector" => "energy",
        "custom.score" => -3_i64,
    });
    let initech = account(fields! {
        "name" => "Initech Inc", "country" => "US", "website" => "https://initech.example",
        "vat_number" => "US-999", "parent_id" => globex,
    });
    let empty = account(fields! { "name" => "Nameless ' OR 1=1 --" });

    let contact = |f: Fields| r.create(EntityKind::Contact, f).expect("contact").meta.id;
    let contacts = vec![
        contact(fields! {
            "first_name" => "Mario", "last_name" => "Rossi", "account_id" => acme,
            "email" => "mario.rossi@acme.example", "mobile" => "+39 333 123 4567",
            "email_opt_in" => true, "birth_date" => Value::Date(NaiveDate::from_ymd_opt(1980, 2, 29).expect("date")),
        }),
        contact(fields! { "last_name" => "Schmidt", "account_id" => globex, "country" => "DE" }),
    ];

    let product = r
        .create(
            EntityKind::Product,
            fields! { "sku" => "W-1", "name" => "Widget", "list_price" => money("9.90", "EUR"), "unit_cost" => money("4", "EUR") },
        )
        .expect("product")
        .meta
        .id;

    let order = |account: RecordId, currency: &str, lines: Vec<LineItem>, days_ago: i64| {
        r.create(
            EntityKind::Order,
            fields! {
                "account_id" => account, "currency" => currency, "lines" => Value::Lines(lines),
                "ordered_at" => now() - crm_core::chrono::Duration::days(days_ago),
            },
        )
        .expect("order")
        .meta
        .id
    };
    let orders = vec![
        order(
            acme,
            "EUR",
            vec![line("Widgets", "200", "9.90", Some(product))],
            30,
        ),
        order(acme, "EUR", vec![line("Service", "2", "600", None)], 400),
        order(
            globex,
            "USD",
            vec![line("Consulting", "1", "1500", None)],
            5,
        ),
    ];

    drop(s);
    World {
        crm,
        admin,
        accounts: vec![acme, globex, initech, empty],
        contacts,
        orders,
        products: vec![product],
        outbox_seen: AtomicU64::new(0),
    }
}

/// One world per process for the read-only targets.
pub fn shared_world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(world)
}

// ------------------------------------------------------------------------------- small checks

/// Strict mode (`CRM_FUZZ_STRICT=1` in the environment): `Storage` errors count as bugs too. The
/// stores here are in memory, so a `Storage` error means the library handed the database something
/// it refuses (an SQL statement too deep, a constraint its own checks should have caught) rather
/// than an I/O failure. Off by default: the default run only treats crashes and broken documented
/// invariants as bugs.
pub fn strict() -> bool {
    static STRICT: OnceLock<bool> = OnceLock::new();
    *STRICT.get_or_init(|| std::env::var_os("CRM_FUZZ_STRICT").is_some_and(|v| v != "0"))
}

/// Errors a call must never return for caller input: `Internal` is a library bug by definition;
/// in [`strict`] mode `Storage` too.
fn check_error(what: &str, e: &crm_core::CrmError) {
    assert!(
        e.kind != ErrorKind::Internal,
        "{what}: internal error (a library bug by its own definition): {e:?}"
    );
    assert!(
        !(strict() && e.kind == ErrorKind::Storage),
        "{what}: storage error on an in-memory database (strict mode): {e:?}"
    );
}

/// Drops a filter without recursing, so a very deep filter built here cannot overflow the stack
/// of the harness itself (only the library's handling of it is under test).
pub fn dismantle(f: Filter) {
    let mut stack = vec![f];
    while let Some(f) = stack.pop() {
        match f {
            Filter::And { all } => stack.extend(all),
            Filter::Or { any } => stack.extend(any),
            Filter::Not { not } => stack.push(*not),
            _ => {}
        }
    }
}

/// Depth, conditions and values of a filter, counted the way the limits are documented (the root
/// is depth 1, every node is a condition, an `in` list counts each value, every other leaf one).
pub fn measure(f: &Filter) -> (usize, usize, usize) {
    let (mut depth, mut nodes, mut values) = (0usize, 0usize, 0usize);
    let mut stack = vec![(f, 1usize)];
    while let Some((f, d)) = stack.pop() {
        depth = depth.max(d);
        nodes += 1;
        match f {
            Filter::And { all: v } | Filter::Or { any: v } => {
                stack.extend(v.iter().map(|g| (g, d + 1)))
            }
            Filter::Not { not } => stack.push((not, d + 1)),
            Filter::In { values: v, .. } => values += v.len(),
            _ => values += 1,
        }
    }
    (depth, nodes, values)
}

/// Whether the documented limits admit a filter of this size.
pub fn within_limits(f: &Filter) -> bool {
    let (depth, nodes, values) = measure(f);
    depth <= MAX_FILTER_DEPTH && nodes <= MAX_FILTER_NODES && values <= MAX_FILTER_VALUES
}

/// Runs `f` through `check_limits`, `list` and `count` of `kind`, with the extra list options in
/// `req` (its filter is replaced). A filter beyond the limits must be refused with `InvalidQuery`
/// by all three; one that runs must give `list` and `count` the same answer when the whole result
/// fits in one page.
fn run_filter(s: &Session, kind: EntityKind, f: Filter, mut req: ListRequest) {
    let admitted = within_limits(&f);
    match f.check_limits() {
        Ok(()) => assert!(
            admitted,
            "check_limits admitted a filter beyond the limits: {:?}",
            measure(&f)
        ),
        Err(e) => {
            assert!(
                !admitted,
                "check_limits refused a filter within the limits: {e:?}"
            );
            assert_eq!(e.kind, ErrorKind::InvalidQuery, "check_limits: {e:?}");
        }
    }
    let counted = s.records().count(kind, Some(&f));
    if let Err(e) = &counted {
        check_error("count", e);
    }
    req.filter = Some(f);
    let listed = s.records().list(kind, &req);
    if let Err(e) = &listed {
        check_error("list", e);
    }
    if !admitted {
        for (what, r) in [
            ("count", counted.as_ref().map(|_| ())),
            ("list", listed.as_ref().map(|_| ())),
        ] {
            match r {
                Ok(()) => panic!("{what} ran a filter beyond the limits"),
                Err(e) => assert_eq!(e.kind, ErrorKind::InvalidQuery, "{what}: {e:?}"),
            }
        }
    }
    if let (Ok(n), Ok(page)) = (&counted, &listed) {
        if !req.deleted && req.after.is_none() && page.next.is_none() {
            assert_eq!(
                *n,
                page.items.len() as u64,
                "count and list disagree on {kind:?} for {:?}",
                req.filter
            );
        }
    }
    if let Some(f) = req.filter.take() {
        dismantle(f);
    }
}

// ---------------------------------------------------------------------- target 1: filter text

/// `filter_text`: the bytes as UTF-8 filter text. Parsed with `segment::parse`; when it parses, it
/// is resolved through a session (`segments().parse`) for accounts (with and without a default
/// currency) and contacts, and run with `list` and `count`.
pub fn filter_text(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = crm_core::segment::parse(text);
    let expr = match parsed {
        Ok(expr) => {
            assert!(
                text.len() <= MAX_FILTER_TEXT,
                "parsed text over MAX_FILTER_TEXT"
            );
            expr
        }
        Err(e) => {
            assert_eq!(
                e.kind,
                ErrorKind::InvalidQuery,
                "segment::parse error kind: {e:?}"
            );
            return;
        }
    };
    // The canonical print parses back (documented), unless printing made it exceed a limit.
    let printed = expr.to_string();
    match crm_core::segment::parse(&printed) {
        Ok(again) => assert_eq!(
            again.to_string(),
            printed,
            "print of {text:?} is not canonical"
        ),
        Err(e) => assert!(
            matches!(e.rule.as_deref(), Some("too_deep" | "too_long")),
            "the print {printed:?} of {text:?} does not parse: {e:?}"
        ),
    }
    drop(expr);
    let w = shared_world();
    let s = w.session();
    let eur = Currency::from_str("EUR").ok();
    for (kind, currency) in [
        (EntityKind::Account, None),
        (EntityKind::Account, eur),
        (EntityKind::Contact, None),
    ] {
        match s.segments().parse(kind, text, currency) {
            Ok(f) => run_filter(&s, kind, f, ListRequest::default()),
            Err(e) => check_error("segments().parse", &e),
        }
    }
}

// -------------------------------------------------------------------- generated values (shared)

/// Real field names of accounts, contacts, orders and a few other kinds, bookkeeping fields,
/// custom fields (existing and not) and segment-only names.
pub const FIELDS: &[&str] = &[
    // account
    "name",
    "legal_name",
    "roles",
    "email",
    "phone",
    "website",
    "industry",
    "vat_number",
    "address",
    "city",
    "postal_code",
    "country",
    "territory_id",
    "parent_id",
    "order_count",
    "lifetime_value",
    "average_order_value",
    "first_order_at",
    "last_order_at",
    "other_currency_orders",
    "open_opportunities",
    "open_opportunity_value",
    "open_cases",
    // contact
    "first_name",
    "last_name",
    "mobile",
    "account_id",
    "job_title",
    "email_opt_in",
    "do_not_contact",
    "birth_date",
    // order
    "number",
    "contact_id",
    "quote_id",
    "status",
    "ordered_at",
    "currency",
    "lines",
    "subtotal",
    "discount_total",
    "tax_total",
    "total",
    // lead, opportunity, product, segment, activity
    "company",
    "channel",
    "priority",
    "estimated_value",
    "stage",
    "amount",
    "probability",
    "expected_close",
    "sku",
    "list_price",
    "unit_cost",
    "active",
    "entity",
    "kind",
    "definition",
    "member_ids",
    "activity_type",
    "duration_seconds",
    "occurred_at",
    // bookkeeping
    "id",
    "owner_id",
    "created_at",
    "created_by",
    "updated_at",
    "updated_by",
    "version",
    "deleted_at",
    "tenant_id",
    // custom and derived
    "custom.sector",
    "custom.score",
    "custom.revenue",
    "custom.since",
    "custom.tags",
    "custom.missing",
    "custom.",
    "custom",
    "days_since_last_order",
    "days_since_created_at",
    "days_since_first_order",
];

/// Texts worth trying: choice values, countries, currencies, odd phone numbers and e-mails,
/// SQL and LIKE metacharacters, Unicode edge cases.
pub const TEXTS: &[&str] = &[
    "",
    " ",
    "IT",
    "it",
    "DE",
    "US",
    "XX",
    "EUR",
    "USD",
    "JPY",
    "customer",
    "prospect",
    "retail",
    "vip",
    "open",
    "fulfilled",
    "cancelled",
    "new",
    "call",
    "account",
    "contact",
    "static",
    "dynamic",
    "ACME Srl",
    "ACME",
    "%",
    "_",
    "\\",
    "%_\\",
    "' OR 1=1 --",
    "\"",
    "'",
    "\0",
    "\u{FEFF}",
    "\u{202E}evil",
    "é",
    "ß",
    "İ",
    "ǅ",
    "日本",
    "😀",
    "a\u{0301}",
    "+39 02 1234 5678",
    "0039021234567",
    "02 1234 5678",
    "+",
    "++39 02",
    "+0",
    "+00000000",
    "+999999999999999999999999999999",
    "+1 (555) 010-9999 ext. 1234",
    "tel:+39-02-1234-5678",
    "+39 ０２ １２３４ ５６７８",
    "+٣٩٠٢١٢٣٤٥٦٧٨",
    "+39 02 1234 5678;ext=99",
    "#31#",
    "*",
    "+8",
    "+88",
    "+800 1234 5678",
    "+979 1234 5678",
    "+39 333 123 4567",
    "+44 7911 123456",
    "+1 800 FLOWERS",
    "0",
    "00",
    "112",
    "+39 02 12345678901234567890",
    "info@acme.example",
    "a@b",
    "@",
    "a@",
    "a@b.c.d.e.f",
    "x@[127.0.0.1]",
    "\"a b\"@c.d",
    "MARIO@ACME.EXAMPLE",
    "a..b@c.d",
    "2026-01-31",
    "2026-01-31T10:00:00Z",
    "0000-00-00",
    "00000000-0000-0000-0000-000000000000",
    "not-a-uuid",
    "country = \"IT\"",
    "lifetime_value > 1000 EUR",
    "not not not not not not x = 1",
    "((((",
    "true",
    "null",
];

pub fn pick<'a>(list: &[&'a str], i: u16) -> &'a str {
    list[usize::from(i) % list.len()]
}

#[derive(Arbitrary, Debug, Clone)]
pub enum FieldName {
    Known(u16),
    Custom(String),
    Raw(String),
}

impl FieldName {
    pub fn name(&self) -> String {
        match self {
            FieldName::Known(i) => pick(FIELDS, *i).to_owned(),
            FieldName::Custom(s) => format!("custom.{s}"),
            FieldName::Raw(s) => s.clone(),
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
pub enum TextSpec {
    Pick(u16),
    Raw(String),
    /// A long text: `unit` repeated `times` times (up to ~1 MB).
    Long {
        unit: String,
        times: u16,
    },
    /// A phone-like string: a prefix from the list followed by fuzzed digits.
    Digits {
        plus: bool,
        digits: Vec<u8>,
    },
}

impl TextSpec {
    pub fn text(&self) -> String {
        match self {
            TextSpec::Pick(i) => pick(TEXTS, *i).to_owned(),
            TextSpec::Raw(s) => s.clone(),
            TextSpec::Long { unit, times } => {
                let unit = if unit.is_empty() { "x" } else { unit.as_str() };
                let times = usize::from(*times).min((1 << 20) / unit.len().max(1));
                unit.repeat(times)
            }
            TextSpec::Digits { plus, digits } => {
                let mut s = if *plus { "+".to_owned() } else { String::new() };
                s.extend(digits.iter().map(|d| match d % 13 {
                    10 => ' ',
                    11 => '-',
                    12 => '(',
                    n => char::from(b'0' + n),
                }));
                s
            }
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
pub enum IntSpec {
    Raw(i64),
    Edge(u8),
}

impl IntSpec {
    pub fn int(&self) -> i64 {
        const EDGES: &[i64] = &[
            0,
            1,
            -1,
            i64::MAX,
            i64::MIN,
            i64::MAX - 1,
            i64::MIN + 1,
            i32::MAX as i64,
            i32::MIN as i64,
            u32::MAX as i64,
            9_007_199_254_740_993,
            1_000,
            86_400,
        ];
        match self {
            IntSpec::Raw(i) => *i,
            IntSpec::Edge(i) => EDGES[usize::from(*i) % EDGES.len()],
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
pub enum DecSpec {
    /// Any decimal: 96-bit mantissa, sign, scale 0..=28.
    Parts {
        lo: u32,
        mid: u32,
        hi: u32,
        negative: bool,
        scale: u8,
    },
    Small {
        mantissa: i32,
        scale: u8,
    },
    Edge(u8),
}

impl DecSpec {
    pub fn dec(&self) -> Decimal {
        match self {
            DecSpec::Parts {
                lo,
                mid,
                hi,
                negative,
                scale,
            } => Decimal::from_parts(*lo, *mid, *hi, *negative, u32::from(*scale % 29)),
            DecSpec::Small { mantissa, scale } => {
                Decimal::new(i64::from(*mantissa), u32::from(*scale % 29))
            }
            DecSpec::Edge(i) => {
                let edges = [
                    Decimal::MAX,
                    Decimal::MIN,
                    Decimal::ZERO,
                    Decimal::from_parts(0, 0, 0, true, 0), // -0
                    Decimal::from_parts(0, 0, 0, true, 28), // -0.000…
                    Decimal::from_parts(1, 0, 0, false, 28), // 1e-28
                    Decimal::from_parts(1, 0, 0, true, 28),
                    Decimal::from_parts(u32::MAX, u32::MAX, u32::MAX, false, 28),
                    Decimal::new(5, 5), // 0.00005: rounds at 4 places
                    Decimal::new(-15, 5),
                    Decimal::new(1_000_000_000_000, 0),
                    Decimal::ONE_HUNDRED,
                    Decimal::new(10001, 2), // 100.01 (discount over 100)
                    Decimal::NEGATIVE_ONE,
                ];
                edges[usize::from(*i) % edges.len()]
            }
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
pub enum CurrencySpec {
    Pick(u8),
    Raw(String),
}

impl CurrencySpec {
    pub fn currency(&self) -> Currency {
        const CODES: &[&str] = &[
            "EUR", "USD", "JPY", "BHD", "CLF", "XAU", "XXX", "GBP", "CHF", "KWD",
        ];
        let code = match self {
            CurrencySpec::Pick(i) => CODES[usize::from(*i) % CODES.len()].to_owned(),
            CurrencySpec::Raw(s) => s.clone(),
        };
        Currency::from_str(&code)
            .ok()
            .or_else(|| Currency::from_str("EUR").ok())
            .expect("EUR")
    }
}

#[derive(Arbitrary, Debug, Clone)]
pub enum DateSpec {
    DaysFromCe(i32),
    Ymd { year: i16, month: u8, day: u8 },
    Edge(u8),
}

impl DateSpec {
    pub fn date(&self) -> NaiveDate {
        let fallback = NaiveDate::MIN;
        match self {
            DateSpec::DaysFromCe(d) => {
                NaiveDate::from_num_days_from_ce_opt(*d).unwrap_or(NaiveDate::MAX)
            }
            DateSpec::Ymd { year, month, day } => {
                NaiveDate::from_ymd_opt(i32::from(*year), u32::from(*month), u32::from(*day))
                    .unwrap_or(fallback)
            }
            DateSpec::Edge(i) => {
                let edges = [
                    Some(NaiveDate::MIN),
                    Some(NaiveDate::MAX),
                    NaiveDate::from_ymd_opt(1970, 1, 1),
                    NaiveDate::from_ymd_opt(0, 1, 1),
                    NaiveDate::from_ymd_opt(-1, 12, 31),
                    NaiveDate::from_ymd_opt(9999, 12, 31),
                    NaiveDate::from_ymd_opt(10000, 1, 1),
                    NaiveDate::from_ymd_opt(2024, 2, 29),
                    NaiveDate::from_ymd_opt(2026, 1, 5),
                ];
                edges[usize::from(*i) % edges.len()].unwrap_or(fallback)
            }
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
pub enum TimestampSpec {
    Unix { secs: i64, nanos: u32 },
    Micros(i64),
    Edge(u8),
}

impl TimestampSpec {
    pub fn timestamp(&self) -> DateTime<Utc> {
        match self {
            TimestampSpec::Unix { secs, nanos } => {
                DateTime::from_timestamp(*secs, *nanos % 2_000_000_000)
                    .unwrap_or(DateTime::<Utc>::MAX_UTC)
            }
            TimestampSpec::Micros(m) => {
                DateTime::from_timestamp_micros(*m).unwrap_or(DateTime::<Utc>::MIN_UTC)
            }
            TimestampSpec::Edge(i) => {
                let edges = [
                    Some(DateTime::<Utc>::MIN_UTC),
                    Some(DateTime::<Utc>::MAX_UTC),
                    Some(DateTime::<Utc>::UNIX_EPOCH),
                    DateTime::from_timestamp(253_402_300_799, 999_999_999), // 9999-12-31T23:59:59.999999999
                    DateTime::from_timestamp(253_402_300_800, 0),           // year 10000
                    DateTime::from_timestamp(-62_167_219_201, 0),           // year -1
                    DateTime::from_timestamp(1_767_603_600, 1),             // now + 1 ns
                    DateTime::from_timestamp(1_767_603_600, 1_500_000_000), // leap second
                    DateTime::from_timestamp_micros(i64::MAX),
                    DateTime::from_timestamp_micros(i64::MIN),
                ];
                edges[usize::from(*i) % edges.len()].unwrap_or(DateTime::<Utc>::MIN_UTC)
            }
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
pub enum RefSpec {
    /// One of the world's records (accounts, contacts, orders, products, the admin user).
    Existing(u8),
    Nil,
    Raw([u8; 16]),
}

impl RefSpec {
    pub fn id(&self, ids: &[RecordId]) -> RecordId {
        match self {
            RefSpec::Existing(i) if !ids.is_empty() => ids[usize::from(*i) % ids.len()],
            RefSpec::Existing(_) | RefSpec::Nil => RecordId::nil(),
            RefSpec::Raw(b) => RecordId::from_bytes(*b),
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
pub struct LineSpec {
    pub product: Option<RefSpec>,
    pub description: TextSpec,
    pub quantity: DecSpec,
    pub unit_price: DecSpec,
    pub discount_percent: DecSpec,
    pub tax_rate: DecSpec,
    pub unit_cost: Option<DecSpec>,
}

impl LineSpec {
    pub fn line(&self, ids: &[RecordId]) -> LineItem {
        LineItem {
            product_id: self.product.as_ref().map(|r| r.id(ids)),
            description: self.description.text(),
            quantity: self.quantity.dec(),
            unit_price: self.unit_price.dec(),
            discount_percent: self.discount_percent.dec(),
            tax_rate: self.tax_rate.dec(),
            unit_cost: self.unit_cost.as_ref().map(DecSpec::dec),
        }
    }
}

/// JSON values, built without a JSON library of our own: from the plain renderings of values.
#[derive(Arbitrary, Debug, Clone)]
pub enum JsonSpec {
    Null,
    Text(TextSpec),
    Int(IntSpec),
    Decimal(DecSpec),
    Bool(bool),
    Strings(Vec<TextSpec>),
    Lines(Vec<LineSpec>),
    Money(DecSpec, CurrencySpec),
}

#[derive(Arbitrary, Debug, Clone)]
pub enum ValueSpec {
    Null,
    Text(TextSpec),
    Int(IntSpec),
    Decimal(DecSpec),
    Money(DecSpec, CurrencySpec),
    Date(DateSpec),
    Timestamp(TimestampSpec),
    Bool(bool),
    Ref(RefSpec),
    List(Vec<TextSpec>),
    /// A list of ids of the world (multi references, `member_ids`).
    IdList(Vec<RefSpec>),
    Lines(Vec<LineSpec>),
    Json(JsonSpec),
}

impl ValueSpec {
    pub fn value(&self, ids: &[RecordId]) -> Value {
        match self {
            ValueSpec::Null => Value::Null,
            ValueSpec::Text(t) => Value::Text(t.text()),
            ValueSpec::Int(i) => Value::Int(i.int()),
            ValueSpec::Decimal(d) => Value::Decimal(d.dec()),
            ValueSpec::Money(d, c) => Value::Money(Money::new(d.dec(), c.currency())),
            ValueSpec::Date(d) => Value::Date(d.date()),
            ValueSpec::Timestamp(t) => Value::Timestamp(t.timestamp()),
            ValueSpec::Bool(b) => Value::Bool(*b),
            ValueSpec::Ref(r) => Value::Ref(r.id(ids)),
            ValueSpec::List(v) => Value::List(v.iter().map(TextSpec::text).collect()),
            ValueSpec::IdList(v) => Value::List(v.iter().map(|r| r.id(ids).to_string()).collect()),
            ValueSpec::Lines(v) => Value::Lines(v.iter().map(|l| l.line(ids)).collect()),
            ValueSpec::Json(j) => Value::Json(
                match j {
                    JsonSpec::Null => Value::Null,
                    JsonSpec::Text(t) => Value::Text(t.text()),
                    JsonSpec::Int(i) => Value::Int(i.int()),
                    JsonSpec::Decimal(d) => Value::Decimal(d.dec()),
                    JsonSpec::Bool(b) => Value::Bool(*b),
                    JsonSpec::Strings(v) => Value::List(v.iter().map(TextSpec::text).collect()),
                    JsonSpec::Lines(v) => Value::Lines(v.iter().map(|l| l.line(ids)).collect()),
                    JsonSpec::Money(d, c) => Value::Money(Money::new(d.dec(), c.currency())),
                }
                .to_json(),
            ),
        }
    }
}

// ----------------------------------------------------------------------- target 2: API filters

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum OpSpec {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl OpSpec {
    pub fn op(self) -> Op {
        match self {
            OpSpec::Eq => Op::Eq,
            OpSpec::Ne => Op::Ne,
            OpSpec::Lt => Op::Lt,
            OpSpec::Le => Op::Le,
            OpSpec::Gt => Op::Gt,
            OpSpec::Ge => Op::Ge,
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Wrap {
    Not,
    And,
    Or,
    /// Not, And, Or in turn.
    Mixed,
}

/// A repeat count: `n` times 1, 16 or 256 (so up to 65 280), small most of the time.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct Count {
    pub n: u8,
    pub scale: Scale,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Scale {
    One,
    Sixteen,
    TwoFiftySix,
}

impl Count {
    pub fn get(self) -> usize {
        usize::from(self.n)
            * match self.scale {
                Scale::One => 1,
                Scale::Sixteen => 16,
                Scale::TwoFiftySix => 256,
            }
    }
}

/// The shape of [`Filter`], plus generators of very deep, very wide and very long filters.
#[derive(Arbitrary, Debug, Clone)]
pub enum FilterSpec {
    And(Vec<FilterSpec>),
    Or(Vec<FilterSpec>),
    Not(Box<FilterSpec>),
    Compare(FieldName, OpSpec, ValueSpec),
    In(FieldName, Vec<ValueSpec>),
    IsNull(FieldName),
    Contains(FieldName, ValueSpec),
    StartsWith(FieldName, TextSpec),
    /// `inner` wrapped in `depth` levels of `wrap` (single-operand `and`/`or`).
    Deep {
        wrap: Wrap,
        depth: Count,
        inner: Box<FilterSpec>,
    },
    /// `count` copies of `inner` under one `and` (or `or`).
    Wide {
        or: bool,
        count: Count,
        inner: Box<FilterSpec>,
    },
    /// `field in (…)` with `count` values (the same one, or counting up).
    ManyValues {
        field: FieldName,
        count: Count,
        value: ValueSpec,
        distinct: bool,
    },
}

/// How much filter one input may build, so a nest of `Wide`s cannot exhaust memory: well past
/// every limit, so the limits are what refuses it.
const NODE_BUDGET: usize = 12_000;
const VALUE_BUDGET: usize = 40_000;

/// How many bytes of values (texts, lists, lines) one filter may hold: a long text repeated in a
/// wide filter or an `in` list would otherwise ask for gigabytes.
const BYTE_BUDGET: usize = 8 << 20;

struct Budget {
    nodes: usize,
    values: usize,
    bytes: usize,
}

/// Roughly how many heap bytes a value holds.
fn weight(v: &Value) -> usize {
    16 + match v {
        Value::Text(t) => t.len(),
        Value::List(items) => items.iter().map(|s| s.len() + 24).sum(),
        Value::Lines(lines) => lines.iter().map(|l| l.description.len() + 128).sum(),
        Value::Json(_) => 4_096,
        _ => 0,
    }
}

impl Budget {
    /// A value of `spec`, or `Null` once the byte budget is spent.
    fn value(&mut self, spec: &ValueSpec, ids: &[RecordId]) -> Value {
        let v = spec.value(ids);
        let w = weight(&v);
        if w > self.bytes {
            return Value::Null;
        }
        self.bytes -= w;
        v
    }

    /// A text of `spec`, or an empty one once the byte budget is spent.
    fn text(&mut self, spec: &TextSpec) -> String {
        let t = spec.text();
        if t.len() > self.bytes {
            return String::new();
        }
        self.bytes -= t.len();
        t
    }

    fn take_node(&mut self) -> bool {
        if self.nodes == 0 {
            return false;
        }
        self.nodes -= 1;
        true
    }
}

impl FilterSpec {
    /// The filter; recursion here follows the spec's own nesting (bounded by the input size), the
    /// generated depth and width are built with loops.
    fn build(&self, ids: &[RecordId], b: &mut Budget) -> Filter {
        let leaf = || Filter::IsNull {
            field: "name".into(),
        };
        if !b.take_node() {
            return leaf();
        }
        match self {
            FilterSpec::And(v) => Filter::And {
                all: v.iter().map(|f| f.build(ids, b)).collect(),
            },
            FilterSpec::Or(v) => Filter::Or {
                any: v.iter().map(|f| f.build(ids, b)).collect(),
            },
            FilterSpec::Not(f) => Filter::Not {
                not: Box::new(f.build(ids, b)),
            },
            FilterSpec::Compare(field, op, v) => {
                b.values = b.values.saturating_sub(1);
                Filter::Compare {
                    field: field.name(),
                    cmp: op.op(),
                    value: b.value(v, ids),
                }
            }
            FilterSpec::In(field, vs) => {
                let n = vs.len().min(b.values);
                b.values -= n;
                Filter::In {
                    field: field.name(),
                    values: vs[..n].iter().map(|v| b.value(v, ids)).collect(),
                }
            }
            FilterSpec::IsNull(field) => Filter::IsNull {
                field: field.name(),
            },
            FilterSpec::Contains(field, v) => Filter::Contains {
                field: field.name(),
                value: b.value(v, ids),
            },
            FilterSpec::StartsWith(field, t) => Filter::StartsWith {
                field: field.name(),
                value: b.text(t),
            },
            FilterSpec::Deep { wrap, depth, inner } => {
                let mut f = inner.build(ids, b);
                for level in 0..depth.get() {
                    if !b.take_node() {
                        break;
                    }
                    let w = match wrap {
                        Wrap::Mixed => [Wrap::Not, Wrap::And, Wrap::Or][level % 3],
                        w => *w,
                    };
                    f = match w {
                        Wrap::Not | Wrap::Mixed => Filter::Not { not: Box::new(f) },
                        Wrap::And => Filter::And { all: vec![f] },
                        Wrap::Or => Filter::Or { any: vec![f] },
                    };
                }
                f
            }
            FilterSpec::Wide { or, count, inner } => {
                let mut v = Vec::new();
                for _ in 0..count.get() {
                    if b.nodes == 0 {
                        break;
                    }
                    v.push(inner.build(ids, b));
                }
                if *or {
                    Filter::Or { any: v }
                } else {
                    Filter::And { all: v }
                }
            }
            FilterSpec::ManyValues {
                field,
                count,
                value,
                distinct,
            } => {
                let one = value.value(ids);
                let w = weight(&one) + 8; // `distinct` texts grow by a few digits
                let n = count.get().min(b.values).min(b.bytes / w);
                b.values -= n;
                b.bytes -= n * w;
                let values = (0..n)
                    .map(|i| match (distinct, &one) {
                        (true, Value::Int(x)) => Value::Int(x.wrapping_add(i as i64)),
                        (true, Value::Text(t)) => Value::Text(format!("{t}{i}")),
                        _ => one.clone(),
                    })
                    .collect();
                Filter::In {
                    field: field.name(),
                    values,
                }
            }
        }
    }

    /// The filter this spec describes, against the ids of `w`.
    pub fn filter(&self, w: &World) -> Filter {
        let mut b = Budget {
            nodes: NODE_BUDGET,
            values: VALUE_BUDGET,
            bytes: BYTE_BUDGET,
        };
        self.build(&w.ids(), &mut b)
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum ReadKind {
    Account,
    Contact,
    Order,
    Lead,
    Opportunity,
    Product,
    Segment,
    User,
}

impl ReadKind {
    pub fn kind(self) -> EntityKind {
        match self {
            ReadKind::Account => EntityKind::Account,
            ReadKind::Contact => EntityKind::Contact,
            ReadKind::Order => EntityKind::Order,
            ReadKind::Lead => EntityKind::Lead,
            ReadKind::Opportunity => EntityKind::Opportunity,
            ReadKind::Product => EntityKind::Product,
            ReadKind::Segment => EntityKind::Segment,
            ReadKind::User => EntityKind::User,
        }
    }
}

/// One `filter_api` input: a filter and the rest of a list request.
#[derive(Arbitrary, Debug, Clone)]
pub struct ApiInput {
    /// Accounts most of the time: the kind with the richest fields.
    pub other_kind: Option<ReadKind>,
    pub filter: FilterSpec,
    pub sort: Option<(FieldName, bool)>,
    pub limit: Option<u32>,
    pub after: Option<String>,
    pub deleted: bool,
}

/// `filter_api`: the bytes decoded (with `arbitrary`, as `fuzz_target!` would) into an
/// [`ApiInput`], converted into a [`Filter`] — possibly very deep or very wide — and run through
/// `check_limits`, `count` and `list`.
pub fn filter_api(data: &[u8]) {
    let Ok(input) = ApiInput::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let w = shared_world();
    let s = w.session();
    let kind = input.other_kind.map_or(EntityKind::Account, ReadKind::kind);
    let f = input.filter.filter(w);
    let req = ListRequest {
        filter: None,
        sort: input.sort.as_ref().map(|(field, descending)| Sort {
            field: field.name(),
            descending: *descending,
        }),
        after: input.after.clone(),
        limit: input.limit,
        deleted: input.deleted,
    };
    run_filter(&s, kind, f, req);
}

// ---------------------------------------------------------------------- target 3: record input

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum WriteKind {
    Account,
    Contact,
    Order,
    Lead,
    Opportunity,
    Product,
    Quote,
    Activity,
    Segment,
}

impl WriteKind {
    pub fn kind(self) -> EntityKind {
        match self {
            WriteKind::Account => EntityKind::Account,
            WriteKind::Contact => EntityKind::Contact,
            WriteKind::Order => EntityKind::Order,
            WriteKind::Lead => EntityKind::Lead,
            WriteKind::Opportunity => EntityKind::Opportunity,
            WriteKind::Product => EntityKind::Product,
            WriteKind::Quote => EntityKind::Quote,
            WriteKind::Activity => EntityKind::Activity,
            WriteKind::Segment => EntityKind::Segment,
        }
    }

    /// Fields that make a valid record of this kind in [`world`], so fuzzed fields on top of them
    /// reach past the "required field missing" check.
    pub fn base(self, w: &World, run: u32) -> Fields {
        let lines = || Value::Lines(vec![line("Service", "2", "50", None)]);
        match self {
            WriteKind::Account => fields! { "name" => "Fuzz Srl" },
            WriteKind::Contact => fields! { "last_name" => "Fuzz" },
            WriteKind::Order | WriteKind::Quote => {
                fields! { "account_id" => w.accounts[0], "currency" => "EUR", "lines" => lines() }
            }
            WriteKind::Lead => fields! { "last_name" => "Fuzz", "company" => "Fuzz Srl" },
            WriteKind::Opportunity => fields! { "name" => "Deal", "account_id" => w.accounts[0] },
            WriteKind::Product => {
                fields! { "sku" => format!("FZ-{run}"), "name" => "Fuzz", "list_price" => money("1", "EUR") }
            }
            WriteKind::Activity => fields! { "activity_type" => "call" },
            WriteKind::Segment => {
                fields! { "name" => "Fuzzed", "entity" => "account", "kind" => "dynamic", "definition" => "country = \"IT\"" }
            }
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
pub enum Target {
    /// The record this input created (when it was created).
    Created,
    /// One of the world's records.
    Existing(u8),
}

#[derive(Arbitrary, Debug, Clone)]
pub struct UpdateSpec {
    pub target: Target,
    /// The expected version: the current one, or a fuzzed one.
    pub version: Option<i64>,
    pub changes: Vec<(FieldName, ValueSpec)>,
}

#[derive(Arbitrary, Debug, Clone)]
pub struct RecordInput {
    pub kind: WriteKind,
    /// Start from valid fields of the kind.
    pub base: bool,
    pub fields: Vec<(FieldName, ValueSpec)>,
    pub owner: Option<RefSpec>,
    pub updates: Vec<UpdateSpec>,
}

fn fields_of(spec: &[(FieldName, ValueSpec)], ids: &[RecordId], into: &mut Fields) {
    for (name, v) in spec {
        into.insert(name.name(), v.value(ids));
    }
}

/// The newest outbox sequence number, read on from `after` (what an earlier call returned).
fn outbox_head(s: &Session, mut after: u64) -> u64 {
    loop {
        match s.outbox().pending(after, 1_000) {
            Ok(events) if !events.is_empty() => {
                after = events.iter().map(|e| e.seq).max().unwrap_or(after)
            }
            _ => return after,
        }
    }
}

/// What "nothing was written" compares: the live and trashed counts of the kinds a write may
/// touch, and whether the outbox holds an event after `seq` (every committed write adds one).
fn footprint(s: &Session, kind: EntityKind, seq: u64) -> Vec<Result<u64, ErrorKind>> {
    let mut v: Vec<Result<u64, ErrorKind>> = [kind, EntityKind::Account, EntityKind::Contact]
        .iter()
        .flat_map(|k| {
            let live = s.records().count(*k, None).map_err(|e| e.kind);
            let trash = s
                .records()
                .list(
                    *k,
                    &ListRequest {
                        deleted: true,
                        limit: Some(1000),
                        ..Default::default()
                    },
                )
                .map(|p| p.items.len() as u64)
                .map_err(|e| e.kind);
            [live, trash]
        })
        .collect();
    v.push(
        s.outbox()
            .pending(seq, 1)
            .map(|e| e.len() as u64)
            .map_err(|e| e.kind),
    );
    v
}

fn read_back(s: &Session, kind: EntityKind, written: &Record, what: &str) {
    match s.records().get(kind, written.meta.id) {
        Ok(r) => assert_eq!(
            &r, written,
            "{what}: the record read back differs from the one returned"
        ),
        Err(e) => panic!("{what}: the written {kind:?} cannot be read back: {e:?}"),
    }
}

/// How many `record_input` runs share one world before it is built afresh (building one takes
/// tens of milliseconds; sharing keeps the target fast while bounding how much the world grows).
const WORLD_RUNS: u32 = 1_000;

/// The world `record_input` writes into, and how many runs have used it.
static WRITE_WORLD: Mutex<Option<(World, u32)>> = Mutex::new(None);

/// `record_input`: the bytes decoded into a [`RecordInput`]: one `create` of a kind (fields from
/// the account, contact and order schemas and random names, values of every kind) and updates of
/// the created record or of the world's records. Checks that a failed write wrote nothing and that
/// a successful one reads back as returned. The world is shared by [`WORLD_RUNS`] runs.
pub fn record_input(data: &[u8]) {
    let Ok(input) = RecordInput::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let mut guard = WRITE_WORLD.lock().unwrap_or_else(|poisoned| {
        // A previous run panicked (the replay test goes on after one): start afresh.
        let mut g = poisoned.into_inner();
        *g = None;
        g
    });
    if guard.as_ref().is_none_or(|(_, runs)| *runs >= WORLD_RUNS) {
        *guard = Some((world(), 0));
    }
    let (w, runs) = guard.as_mut().expect("world");
    *runs += 1;
    let run = *runs;
    record_input_in(w, &input, run);
}

fn record_input_in(w: &World, input: &RecordInput, run: u32) {
    let s = w.session();
    let ids = w.ids();
    let kind = input.kind.kind();
    let mut fields = if input.base {
        input.kind.base(w, run)
    } else {
        Fields::new()
    };
    fields_of(&input.fields, &ids, &mut fields);
    let new = NewRecord {
        fields,
        owner_id: input.owner.as_ref().map(|o| o.id(&ids)),
    };

    let mut seq = outbox_head(&s, w.outbox_seen.load(Ordering::Relaxed));
    let before = footprint(&s, kind, seq);
    let created = match s.records().create(kind, new) {
        Ok(r) => {
            read_back(&s, kind, &r, "create");
            Some(r)
        }
        Err(e) => {
            check_error("create", &e);
            assert_eq!(
                footprint(&s, kind, seq),
                before,
                "a failed create ({e:?}) wrote something"
            );
            None
        }
    };

    for u in input.updates.iter().take(4) {
        let (kind, id) = match (&u.target, &created) {
            (Target::Created, Some(r)) => (kind, r.meta.id),
            (Target::Created, None) => continue,
            (Target::Existing(i), _) => {
                let all: Vec<(EntityKind, RecordId)> = w
                    .accounts
                    .iter()
                    .map(|id| (EntityKind::Account, *id))
                    .chain(w.contacts.iter().map(|id| (EntityKind::Contact, *id)))
                    .chain(w.orders.iter().map(|id| (EntityKind::Order, *id)))
                    .chain(w.products.iter().map(|id| (EntityKind::Product, *id)))
                    .collect();
                all[usize::from(*i) % all.len()]
            }
        };
        let Ok(current) = s.records().get(kind, id) else {
            continue;
        };
        let mut changes = Fields::new();
        fields_of(&u.changes, &ids, &mut changes);
        let version = u.version.unwrap_or(current.meta.version);
        seq = outbox_head(&s, seq);
        let before = footprint(&s, kind, seq);
        match s.records().update(kind, id, version, changes) {
            Ok(r) => read_back(&s, kind, &r, "update"),
            Err(e) => {
                check_error("update", &e);
                assert_eq!(
                    footprint(&s, kind, seq),
                    before,
                    "a failed update ({e:?}) wrote something"
                );
                match s.records().get(kind, id) {
                    Ok(after) => {
                        assert_eq!(after, current, "a failed update ({e:?}) changed the record")
                    }
                    Err(e2) => panic!("a failed update ({e:?}) lost the record: {e2:?}"),
                }
            }
        }
    }
    w.outbox_seen.store(outbox_head(&s, seq), Ordering::Relaxed);
}

// ------------------------------------------------------------------------ target 4: import

/// The CRM `import_reader` imports into: kept while imports fail (an import is one transaction,
/// so a failed one must leave it empty — checked after every failure), built afresh after a
/// successful one. Opening a store takes tens of milliseconds.
static IMPORT_CRM: Mutex<Option<Crm>> = Mutex::new(None);

/// `import_reader`: the bytes as a JSON Lines tenant export, imported with `Crm::import_tenant`
/// into an in-memory CRM without data. Afterwards the database must pass its integrity check; a
/// failed import must have left the tenant empty; a successful one must export again.
pub fn import_reader(data: &[u8]) {
    let mut guard = IMPORT_CRM.lock().unwrap_or_else(|poisoned| {
        let mut g = poisoned.into_inner();
        *g = None;
        g
    });
    let crm = guard.get_or_insert_with(empty_crm).clone();
    let mut reader: &[u8] = data;
    let imported = crm.import_tenant(&mut reader, &mut |_| {});
    if let Err(e) = &imported {
        check_error("import_tenant", e);
    }
    match crm.integrity_check() {
        Ok(problems) => assert!(
            problems.is_empty(),
            "integrity after import ({imported:?}): {problems:?}"
        ),
        Err(e) => panic!("integrity check after import ({imported:?}) failed: {e:?}"),
    }
    // The tenant named in the header line, when it can be read without a JSON parser.
    let tenant = first_line_tenant(data).and_then(|t| TenantId::new(t).ok());
    match (&imported, tenant) {
        (Ok(_), t) => {
            if let Some(t) = t {
                let mut out = Vec::new();
                if let Err(e) = crm.export_tenant(&t, &mut out, &mut |_| {}) {
                    panic!("an imported tenant does not export: {e:?}");
                }
            }
            *guard = None; // the next import needs an empty database
        }
        (Err(e), Some(t)) => {
            let mut out = Vec::new();
            match crm.export_tenant(&t, &mut out, &mut |_| {}) {
                Ok(sum) => assert!(
                    sum.records == 0 && sum.audit == 0 && sum.events == 0,
                    "a failed import ({e:?}) left data behind: {sum:?}"
                ),
                Err(e2) => panic!("export after a failed import ({e:?}) failed: {e2:?}"),
            }
        }
        (Err(_), None) => {}
    }
}

/// The `"tenant"` of the first line, read without a JSON library (good enough for the check: a
/// header the importer accepted names its tenant as a plain string).
fn first_line_tenant(data: &[u8]) -> Option<String> {
    let line = data.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let at = line.find("\"tenant\"")? + "\"tenant\"".len();
    let rest = line[at..]
        .trim_start()
        .strip_prefix(':')?
        .trim_start()
        .strip_prefix('"')?;
    Some(rest[..rest.find('"')?].to_owned())
}

/// A small valid export made by `Crm::export_tenant`, for the seed corpus: a bootstrapped tenant
/// with one account, one contact and one order (a few kilobytes, so mutations stay cheap).
pub fn sample_export() -> Vec<u8> {
    let crm = empty_crm();
    let tenant = TenantId::new("seed").expect("tenant id");
    let admin = crm
        .bootstrap(&tenant, "admin", Origin::default())
        .expect("bootstrap");
    let s = crm.session(&admin).expect("admin session");
    let acme = s
        .records()
        .create(
            EntityKind::Account,
            fields! { "name" => "ACME Srl", "country" => "IT", "phone" => "+39 02 1234 5678" },
        )
        .expect("account")
        .meta
        .id;
    s.records()
        .create(
            EntityKind::Contact,
            fields! { "last_name" => "Rossi", "account_id" => acme, "email" => "rossi@acme.example" },
        )
        .expect("contact");
    s.records()
        .create(
            EntityKind::Order,
            fields! { "account_id" => acme, "currency" => "EUR", "lines" => Value::Lines(vec![line("Service", "2", "50", None)]) },
        )
        .expect("order");
    let mut out = Vec::new();
    crm.export_tenant(&tenant, &mut out, &mut |_| {})
        .expect("export");
    out
}

/// Runs the target named `target` on `data`.
pub fn run(target: &str, data: &[u8]) {
    match target {
        "filter_text" => filter_text(data),
        "filter_api" => filter_api(data),
        "record_input" => record_input(data),
        "import_reader" => import_reader(data),
        other => panic!("no fuzz target `{other}`"),
    }
}

/// The targets, as named under `tests/fuzz/corpus/` and `tests/fuzz/regressions/`.
pub const TARGETS: &[&str] = &["filter_text", "filter_api", "record_input", "import_reader"];
