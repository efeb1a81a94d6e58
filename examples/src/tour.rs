//! A tour of the library: creates an on-disk database with realistic demo data and walks through what
//! the CRM does, printing what happens.
//!
//! Run with `cargo run -p crm-examples --bin tour [path/to/tour.db]`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // an example: failures should be loud

use std::sync::Arc;
use std::time::Instant;

use crm_core::backend::Op;
use crm_core::chrono::{Duration, TimeZone, Utc};
use crm_core::{
    fields, Action, Crm, EntityKind, Filter, Grantee, ListRequest, ManualClock, Origin, Session,
    TenantId, Value,
};
use crm_core::{
    ConvertLead, EmailMessage, ErpFacts, ErpFactsRow, LineItem, Mailer, ObjectRule, OverdueInvoice,
    Policy, ProfitDimension, ProfitOptions, RfmOptions, Scope,
};
use crm_examples::demo;
use crm_store::SqliteStore;

fn title(s: &str) {
    println!("\n== {s}");
}

fn main() {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "target/tour.db".to_owned());
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{path}{suffix}"));
    }
    if let Some(dir) = std::path::Path::new(&path).parent() {
        std::fs::create_dir_all(dir).ok();
    }
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 2, 8, 30, 0).unwrap(),
    ));
    let crm = Crm::new(SqliteStore::open(&path).unwrap()).with_clock(clock.clone());
    let tenant = TenantId::new("rossi-spa").unwrap();

    title("A tenant, its administrator, roles, teams, territories and users");
    let admin_ctx = crm
        .bootstrap(
            &tenant,
            "admin",
            Origin {
                client: Some("tour".into()),
                address: Some("10.0.0.7".into()),
                location: Some("Milan HQ".into()),
            },
        )
        .unwrap();
    let admin = crm.session(&admin_ctx).unwrap();
    let org = demo::organisation(&crm, &admin, 12).unwrap();
    println!(
        "tenant `{tenant}`: 1 admin, 1 sales director, {} reps in 2 teams and 3 territories",
        org.reps.len()
    );

    title("Custom field defined at run time");
    admin
        .records()
        .create(
            EntityKind::CustomField,
            fields! {
                "entity" => "account", "name" => "loyalty_tier", "field_type" => "choice",
                "choices" => Value::Json(serde_json::json!(["bronze", "silver", "gold"])),
            },
        )
        .unwrap();
    println!("account.custom.loyalty_tier: choice of bronze / silver / gold, filterable and sortable like any field");

    title("Demo data, written through the facade (validated, permission-checked, audited)");
    let t = Instant::now();
    let data = demo::populate(&admin, &org, 42, 3_000).unwrap();
    println!(
        "{} accounts, {} contacts, {} products, {} orders, {} activities in {:.1} s → {path}",
        data.accounts.len(),
        data.contacts.len(),
        data.products.len(),
        data.orders,
        data.activities,
        t.elapsed().as_secs_f64()
    );

    title("Caller id: one number, written three ways, finds the same contact");
    let rep = &org.reps[0];
    let someone = rep
        .records()
        .list(EntityKind::Contact, &ListRequest::default().limit(1))
        .unwrap()
        .items
        .remove(0);
    let e164 = someone.text("phone").unwrap().to_owned();
    let national = if let Some(rest) = e164.strip_prefix("+39") {
        format!("0039-{rest}")
    } else {
        e164.replacen('+', "00", 1)
    };
    for raw in [
        e164.clone(),
        national,
        format!("{} {}", &e164[..3], &e164[3..]),
    ] {
        let hits = rep
            .records()
            .find_by_phone(EntityKind::Contact, &raw)
            .unwrap();
        println!(
            "  {raw:>22} → {} match(es): {}",
            hits.len(),
            hits.iter()
                .map(|h| h.label())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }

    title("Lists: filter on any field, sort, keyset pages");
    let req =
        ListRequest::filter(Filter::eq("country", "IT").and(Filter::contains("roles", "customer")))
            .sort_by("name", false)
            .limit(5);
    let page = org
        .director
        .records()
        .list(EntityKind::Account, &req)
        .unwrap();
    for a in &page.items {
        println!(
            "  {:<40} {:<10} {}",
            a.label(),
            a.text("city").unwrap_or(""),
            a.text("phone").unwrap_or("")
        );
    }
    let page2 = org
        .director
        .records()
        .list(EntityKind::Account, &req.clone().after(page.next.clone()))
        .unwrap();
    println!(
        "  … next page starts at `{}` (the cursor carries the last key; no OFFSET)",
        page2.items[0].label()
    );

    let username = |id: crm_core::RecordId| {
        admin
            .records()
            .get(EntityKind::User, id)
            .map(|u| u.label())
            .unwrap_or_else(|_| id.to_string())
    };

    title("Two users, two slices of the same data");
    for (who, session) in [
        ("director", &org.director),
        ("rep00", &org.reps[0]),
        ("rep01", &org.reps[1]),
    ] {
        let n = session.records().count(EntityKind::Account, None).unwrap();
        let big = session
            .records()
            .count(
                EntityKind::Order,
                Some(&Filter::cmp(
                    "total",
                    Op::Gt,
                    Value::Money(crm_core::Money::parse("5000", "EUR").unwrap()),
                )),
            )
            .unwrap();
        println!("  {who:<8} sees {n:>5} accounts and {big:>5} orders above 5 000 EUR");
    }
    let foreign = org.reps[1]
        .records()
        .list(EntityKind::Account, &ListRequest::default().limit(1))
        .unwrap()
        .items
        .remove(0);
    let other_team = org
        .reps
        .iter()
        .find(|r| {
            r.records()
                .get(EntityKind::Account, foreign.meta.id)
                .is_err()
        })
        .unwrap();
    let d = admin
        .access()
        .explain(
            other_team.user_id(),
            Action::Read,
            EntityKind::Account,
            foreign.meta.id,
        )
        .unwrap();
    println!(
        "  explain: may {} read `{}`? {} — {}",
        username(other_team.user_id()),
        foreign.label(),
        if d.allowed { "yes" } else { "no" },
        d.reason
    );
    let d = admin
        .access()
        .explain(
            org.reps[1].user_id(),
            Action::Update,
            EntityKind::Account,
            foreign.meta.id,
        )
        .unwrap();
    println!(
        "  explain: may the owner's teammate update it? {} — {}",
        if d.allowed { "yes" } else { "no" },
        d.reason
    );
    let vat = rep
        .records()
        .get(EntityKind::Account, data.accounts[0])
        .unwrap();
    println!(
        "  field security: reps never receive `vat_number` (present in the record: {})",
        vat.fields.contains_key("vat_number")
    );
    let owner = org
        .reps
        .iter()
        .find(|r| r.user_id() == foreign.meta.owner_id)
        .unwrap_or(&admin);
    owner
        .access()
        .share(
            EntityKind::Account,
            foreign.meta.id,
            Grantee::User(other_team.user_id()),
            false,
            Some(crm.now() + Duration::days(7)),
        )
        .unwrap();
    println!(
        "  after a 7-day read share by its owner, {} can read it: {}",
        username(other_team.user_id()),
        other_team
            .records()
            .get(EntityKind::Account, foreign.meta.id)
            .is_ok()
    );

    title("Bad input gets a typed error naming the field and the rule; nothing is written");
    for (what, res) in [
        (
            "e-mail",
            rep.records().create(
                EntityKind::Contact,
                fields! { "last_name" => "Verdi", "email" => "verdi(at)example" },
            ),
        ),
        (
            "phone",
            rep.records().create(
                EntityKind::Contact,
                fields! { "last_name" => "Verdi", "phone" => "555" },
            ),
        ),
        (
            "currency",
            rep.records().create(
                EntityKind::Order,
                fields! { "account_id" => data.accounts[0], "currency" => "EURO" },
            ),
        ),
        (
            "custom field",
            rep.records().create(
                EntityKind::Account,
                fields! { "name" => "X", "custom.loyalty_tier" => "platinum" },
            ),
        ),
    ] {
        let e = res.unwrap_err();
        println!("  {what:<13} → {e}");
    }
    let mine = rep
        .records()
        .get(EntityKind::Account, data.accounts[0])
        .unwrap();
    rep.records()
        .update(
            EntityKind::Account,
            mine.meta.id,
            mine.meta.version,
            fields! { "city" => "Monza", "custom.loyalty_tier" => "gold" },
        )
        .unwrap();
    let stale = rep
        .records()
        .update(
            EntityKind::Account,
            mine.meta.id,
            mine.meta.version,
            fields! { "city" => "Lecco" },
        )
        .unwrap_err();
    println!("  stale version  → {stale}");

    title("The seed scenario: phone request → senior rep → quote → director's approval → automatic e-mail");
    seed_scenario(&crm, &admin, &org, &clock);

    title("Analytics: RFM segments, and the profit by segment × product of the last three months");
    analytics(&org, &data);

    title("Screen pop: a customer calls; the agent sees the whole picture, ERP facts included");
    screen_pop(&org);

    title("History: who, when, from where");
    clock.advance(Duration::minutes(5));
    let in_the_field = rep.with_origin(Origin {
        client: Some("erp-mobile 3.1".into()),
        location: Some("customer site, Bergamo".into()),
        ..rep.context().origin.clone()
    });
    let cur = rep
        .records()
        .get(EntityKind::Account, mine.meta.id)
        .unwrap();
    in_the_field
        .records()
        .update(
            EntityKind::Account,
            cur.meta.id,
            cur.meta.version,
            fields! { "website" => "https://example.com" },
        )
        .unwrap();
    for e in org
        .director
        .audit()
        .history(EntityKind::Account, mine.meta.id, None, Some(3))
        .unwrap()
        .entries
    {
        let changes: Vec<String> = e
            .changes
            .iter()
            .filter(|c| c.field != "vat_number")
            .map(|c| format!("{}: {} → {}", c.field, c.old, c.new))
            .collect();
        println!(
            "  v{} {} {} by {} via {} at {}: {}",
            e.version,
            e.at.format("%Y-%m-%d %H:%M"),
            e.operation.name(),
            username(e.user_id),
            e.origin.client.as_deref().unwrap_or("-"),
            e.origin.location.as_deref().unwrap_or("-"),
            if changes.len() > 3 {
                format!("{} fields", changes.len())
            } else {
                changes.join("; ")
            }
        );
    }
    let v = admin.audit().verify().unwrap();
    println!(
        "  verify_audit: {} entries checked, chain intact: {}",
        v.checked, v.ok
    );
    let events = admin.outbox().pending(0, 5).unwrap();
    println!(
        "  outbox: {} pending event(s) shown of many, e.g. `{}` for {} {}",
        events.len(),
        events[0].event_type,
        events[0].kind,
        events[0].record_id
    );
    println!("\nDone. The database is at {path}.");
}

/// The host's mail system, as the library sees it.
struct PrintingMailer;

impl Mailer for PrintingMailer {
    fn send(&self, msg: &EmailMessage) -> crm_core::Result<()> {
        println!("  [mailer] to <{}>: {}", msg.to, msg.subject);
        Ok(())
    }
}

fn seed_scenario(crm: &Crm, admin: &Session, org: &demo::Org, clock: &ManualClock) {
    let money = |s: &str| Value::Money(crm_core::Money::parse(s, "EUR").unwrap());
    // Configuration, by the administrator: a receptionist, a queue of senior reps, the routing rule,
    // the approval threshold and the sales pipeline.
    let reception = admin
        .records()
        .create(EntityKind::Role, fields! { "name" => "Receptionist", "policy" => Value::Json(Policy::default().allow(EntityKind::Lead, ObjectRule::new(&[Action::Create, Action::Read], &[Scope::Own], &[Scope::Own])).to_json()) })
        .unwrap();
    let rita = admin.records().create(EntityKind::User, fields! { "username" => "rita", "display_name" => "Rita (front desk)", "role_id" => reception.meta.id }).unwrap();
    let rita = crm
        .session(
            &admin
                .context()
                .as_user(rita.meta.id)
                .client("switchboard")
                .location("front desk"),
        )
        .unwrap();
    let seniors: Vec<String> = org
        .reps
        .iter()
        .filter(|r| {
            admin
                .records()
                .get(EntityKind::User, r.user_id())
                .unwrap()
                .get("seniority")
                .as_int()
                .unwrap_or(0)
                >= 5
        })
        .map(|r| r.user_id().to_string())
        .collect();
    let queue = admin.records().create(EntityKind::Queue, fields! { "name" => "Senior reps", "strategy" => "least_open", "member_ids" => Value::List(seniors.clone()) }).unwrap();
    admin.records().create(EntityKind::AssignmentRule, fields! {
        "name" => "important phone requests", "entity" => "lead", "position" => 10_i64,
        "conditions" => Value::Json(serde_json::json!({"channel": ["phone"], "min_value": "10000"})),
        "queue_id" => queue.meta.id, "min_seniority" => 5_i64,
    })
    .unwrap();
    admin.records().create(EntityKind::ApprovalRule, fields! { "name" => "discount above 10 %", "max_discount_percent" => crm_core::Decimal::from(10) }).unwrap();
    admin.records().create(EntityKind::Pipeline, fields! { "name" => "Standard", "is_default" => true, "stages" => Value::Json(serde_json::json!([
        {"name": "prospecting", "probability": 10}, {"name": "proposal", "probability": 50, "forecast_category": "best_case"},
        {"name": "won", "probability": 100, "outcome": "won"}, {"name": "lost", "probability": 0, "outcome": "lost"}
    ])) })
    .unwrap();
    println!("  configured: queue of {} senior reps, rule `important phone requests`, approval above 10 % discount", seniors.len());

    // 1. The call comes in; the receptionist records it.
    let lead = rita
        .records()
        .create(EntityKind::Lead, fields! {
            "first_name" => "Mario", "last_name" => "Rossi", "company" => "Rossi Impianti", "channel" => "phone",
            "email" => "Mario.Rossi@Rossi-Impianti.example", "phone" => "02 8765 4321", "estimated_value" => money("48000"),
            "product_interest" => "heat pumps for three sites", "country" => "IT",
        })
        .unwrap();
    let owner = org
        .reps
        .iter()
        .find(|r| r.user_id() == lead.meta.owner_id)
        .expect("routed to a rep");
    let seniority = admin
        .records()
        .get(EntityKind::User, owner.user_id())
        .unwrap()
        .get("seniority")
        .as_int()
        .unwrap_or(0);
    println!(
        "  1. phone lead recorded by rita, e-mail {}; routed by `{}` to {} (seniority {seniority})",
        lead.text("email").unwrap(),
        lead.text("assigned_by_rule").unwrap_or("-"),
        admin
            .records()
            .get(EntityKind::User, owner.user_id())
            .unwrap()
            .label()
    );

    // 2-3. The rep works it and drafts the quote.
    clock.advance(Duration::hours(2));
    let lead = owner
        .sales()
        .transition_lead(
            lead.meta.id,
            lead.meta.version,
            "contacted",
            Some("called back"),
        )
        .unwrap();
    let lead = owner
        .sales()
        .transition_lead(
            lead.meta.id,
            lead.meta.version,
            "qualified",
            Some("three sites, budget confirmed"),
        )
        .unwrap();
    let conv = owner
        .sales()
        .convert_lead(lead.meta.id, lead.meta.version, ConvertLead::default())
        .unwrap();
    println!(
        "  2. qualified and converted: account `{}`, contact `{}`, opportunity `{}` at stage {}",
        conv.account.label(),
        conv.contact.label(),
        conv.opportunity.label(),
        conv.opportunity.text("stage").unwrap_or("-")
    );
    let line = |desc: &str, qty: i64, price: i64| LineItem {
        product_id: None,
        description: desc.into(),
        quantity: qty.into(),
        unit_price: price.into(),
        discount_percent: 20.into(),
        tax_rate: 22.into(),
        unit_cost: None,
    };
    let quote = owner
        .records()
        .create(EntityKind::Quote, fields! {
            "account_id" => conv.account.meta.id, "contact_id" => conv.contact.meta.id, "opportunity_id" => conv.opportunity.meta.id,
            "currency" => "EUR", "lines" => Value::Lines(vec![line("Heat pump HP-12", 3, 12_000), line("Installation", 3, 2_500)]),
        })
        .unwrap();
    let quote = owner
        .sales()
        .submit_quote(quote.meta.id, quote.meta.version, None)
        .unwrap();
    println!(
        "  3. quote drafted: total {} with 20 % discount → {}",
        quote.get("total"),
        quote.text("status").unwrap()
    );

    // 4. Nobody can send it before the director approves it.
    let e = owner
        .sales()
        .send_quote(quote.meta.id, quote.meta.version)
        .unwrap_err();
    println!("  4. rep tries to send it: {e}");
    let e = owner
        .sales()
        .approve_quote(quote.meta.id, quote.meta.version, None)
        .unwrap_err();
    println!("     rep tries to approve it: {e}");
    clock.advance(Duration::minutes(40));
    let quote = org
        .director
        .sales()
        .approve_quote(
            quote.meta.id,
            quote.meta.version,
            Some("ok, strategic customer"),
        )
        .unwrap();
    println!(
        "     director approves → status {}, sent to {}",
        quote.text("status").unwrap(),
        quote.text("sent_to").unwrap_or("-")
    );

    // 5. The host's mailer delivers the e-mail job from the outbox.
    let n = admin.outbox().deliver_emails(&PrintingMailer).unwrap();
    println!("  5. {n} e-mail delivered from the outbox to the address rita recorded when the call came in");
    for s in admin
        .audit()
        .stage_history(EntityKind::Quote, quote.meta.id)
        .unwrap()
    {
        println!(
            "     quote {:>16} → {:<16} after {:>5} s in the previous state",
            s.from_state.as_deref().unwrap_or("(new)"),
            s.to_state,
            s.seconds_in_previous
        );
    }
}

fn analytics(org: &demo::Org, data: &demo::Data) {
    let director = &org.director;
    let t = Instant::now();
    let rfm = director.analytics().rfm(&RfmOptions::default()).unwrap();
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for r in &rfm {
        *counts.entry(r.segment.clone()).or_default() += 1;
    }
    println!(
        "  RFM over {} customers with orders ({} ms):",
        rfm.len(),
        t.elapsed().as_millis()
    );
    let mut by_size: Vec<_> = counts.into_iter().collect();
    by_size.sort_by_key(|b| std::cmp::Reverse(b.1));
    for (seg, n) in by_size {
        println!("    {seg:<20} {n:>5}");
    }
    let now = director.now();
    let t = Instant::now();
    let rows = director
        .analytics()
        .profit(&ProfitOptions {
            from: now - Duration::days(91),
            to: now,
            by: ProfitDimension::Rfm,
            rates: None,
            rfm: RfmOptions::default(),
        })
        .unwrap();
    println!(
        "  profit by RFM segment × product, last three months ({} rows, {} ms), top 10 by margin:",
        rows.len(),
        t.elapsed().as_millis()
    );
    println!(
        "    {:<20} {:<14} {:>8} {:>16} {:>16} {:>16}",
        "segment", "product", "units", "revenue", "cost", "margin"
    );
    for r in rows.iter().take(10) {
        let product = r
            .product_id
            .and_then(|p| director.records().get(EntityKind::Product, p).ok())
            .map(|p| p.label())
            .unwrap_or_else(|| r.product.clone());
        println!(
            "    {:<20} {:<14} {:>8} {:>16} {:>16} {:>16}",
            r.segment,
            product,
            r.quantity.to_string(),
            r.revenue.to_string(),
            r.cost.to_string(),
            r.margin.to_string()
        );
    }
    println!("  ({} products in the catalogue)", data.products.len());

    match director.sales().funnel(&Default::default()) {
        Ok(f) => {
            println!(
                "  funnel of the `{}` pipeline: {} opportunities, {} won, {} lost",
                f.pipeline, f.opportunities, f.won, f.lost
            );
            for s in &f.stages {
                println!(
                    "    {:<14} reached {:>5}  now {:>5}  → next {}",
                    s.stage,
                    s.reached,
                    s.current,
                    s.conversion_to_next
                        .map(|r| format!("{:.0} %", r * 100.0))
                        .unwrap_or_else(|| "-".into())
                );
            }
        }
        Err(e) => println!("  funnel: {e}"),
    }

    let t = Instant::now();
    let mut values = director
        .analytics()
        .customer_values(&Default::default())
        .unwrap();
    println!(
        "  value indices of {} customers ({} ms); most valuable at risk (churn risk ≥ 0.5):",
        values.len(),
        t.elapsed().as_millis()
    );
    values.retain(|v| v.churn_risk.is_some_and(|r| r >= 0.5));
    values.sort_by(|a, b| {
        let amount = |v: &crm_core::CustomerValue| v.lifetime_value.map(|m| m.amount);
        amount(b).cmp(&amount(a))
    });
    for v in values.iter().take(5) {
        let name = director
            .records()
            .get(EntityKind::Account, v.account_id)
            .map(|r| r.label())
            .unwrap_or_default();
        println!(
            "    {:<32} lifetime {:>14}  churn risk {:.2}  predicted (3 years) {:>14}",
            name,
            v.lifetime_value.map(|m| m.to_string()).unwrap_or_default(),
            v.churn_risk.unwrap_or_default(),
            v.predicted_value.map(|m| m.to_string()).unwrap_or_default()
        );
    }

    let t = Instant::now();
    let teams = director
        .analytics()
        .team_kpis(now - Duration::days(365), now, None)
        .unwrap();
    println!(
        "  supervision, last twelve months, per team ({} ms):",
        t.elapsed().as_millis()
    );
    println!(
        "    {:<14} {:>5} {:>10} {:>6} {:>6} {:>9} {:>7} {:>16}",
        "team", "users", "activities", "calls", "orders", "won/lost", "win %", "order revenue"
    );
    for k in &teams {
        let name = org
            .teams
            .iter()
            .position(|t| Some(*t) == k.team_id)
            .map_or("", |i| demo::TEAM_NAMES[i]);
        println!(
            "    {:<14} {:>5} {:>10} {:>6} {:>6} {:>9} {:>7} {:>16}",
            name,
            k.users,
            k.activities,
            k.calls,
            k.orders,
            format!("{}/{}", k.opportunities_won, k.opportunities_lost),
            k.win_rate
                .map(|r| format!("{:.0}", r * 100.0))
                .unwrap_or_else(|| "-".into()),
            k.order_revenue.map(|m| m.to_string()).unwrap_or_default()
        );
    }
}

/// The host ERP's accounting and credit facts, as the library asks for them.
struct DemoErp;

impl ErpFacts for DemoErp {
    fn facts(&self, _account: crm_core::RecordId) -> crm_core::Result<ErpFactsRow> {
        let eur = |s: &str| crm_core::Money::parse(s, "EUR");
        Ok(ErpFactsRow {
            balance: Some(eur("-1250.40")?),
            credit_terms: Some("30 days end of month; credit limit 20 000 EUR".into()),
            overdue_invoices: vec![OverdueInvoice {
                number: "FT-2026/1187".into(),
                amount: eur("1250.40")?,
                due: crm_core::chrono::NaiveDate::from_ymd_opt(2026, 10, 15).unwrap_or_default(),
            }],
        })
    }
}

fn screen_pop(org: &demo::Org) {
    let rep = &org.reps[2];
    let customer = rep
        .records()
        .list(
            EntityKind::Account,
            &ListRequest::filter(Filter::cmp("order_count", Op::Gt, 3_i64)).limit(1),
        )
        .unwrap()
        .items
        .remove(0);
    let phone = customer.text("phone").unwrap().to_owned();
    let t = Instant::now();
    let pop = rep.analytics().screen_pop(&phone, Some(&DemoErp)).unwrap();
    let account = pop.account.as_ref().unwrap();
    println!(
        "  incoming call from {phone} → {} ({}), in {} µs",
        account.label(),
        account.text("city").unwrap_or(""),
        t.elapsed().as_micros()
    );
    println!(
        "    RFM segment: {}, lifecycle: {:?}",
        pop.rfm_segment.as_deref().unwrap_or("-"),
        pop.lifecycle
    );
    println!(
        "    contacts: {}",
        pop.contacts
            .iter()
            .map(|c| format!("{} ({})", c.label(), c.text("job_title").unwrap_or("-")))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for o in pop.recent_orders.iter().take(3) {
        let lines = match o.get("lines") {
            Value::Lines(l) => l.len(),
            _ => 0,
        };
        println!(
            "    order {} — {} line(s), total {}",
            o.get("ordered_at")
                .as_timestamp()
                .map(|t| t.format("%Y-%m-%d").to_string())
                .unwrap_or_default(),
            lines,
            o.get("total")
        );
    }
    println!(
        "    open opportunities: {}, open cases: {}, last interactions: {}",
        pop.open_opportunities.len(),
        pop.open_cases.len(),
        pop.last_activities.len()
    );
    for c in &pop.cross_sell {
        let name = rep
            .records()
            .get(EntityKind::Product, c.product_id)
            .map(|p| p.label())
            .unwrap_or_default();
        println!(
            "    suggest {name:<14} (lift {:.1}, confidence {:.0} %)",
            c.lift,
            c.confidence * 100.0
        );
    }
    if let Some(erp) = &pop.erp {
        println!(
            "    ERP: balance {}, terms: {}, overdue: {}",
            erp.balance.map(|b| b.to_string()).unwrap_or_default(),
            erp.credit_terms.as_deref().unwrap_or("-"),
            erp.overdue_invoices
                .iter()
                .map(|i| format!("{} {} due {}", i.number, i.amount, i.due))
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
}
