//! Processes: lifecycles as state machines, approvals, assignment rules and queues, SLA timers,
//! followers, reminders and the transactional outbox with a host mailer.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::result_large_err
)] // test helpers

use std::sync::Mutex;

use crm_core::chrono::Duration;
use crm_core::pipeline::{CASE, LEAD};
use crm_core::{
    fields, Action, Context, ConvertLead, EmailMessage, EntityKind, ErrorKind, LineItem, Mailer,
    Money, ObjectRule, Policy, Record, RecordId, Scope, Value,
};
use crm_tests::{ids, world, World};
use proptest::prelude::*;

fn d(s: &str) -> crm_core::Decimal {
    s.parse().unwrap()
}

fn eur(s: &str) -> Value {
    Value::Money(Money::parse(s, "EUR").unwrap())
}

/// What a refused operation must leave untouched: record counts (system-managed kinds included),
/// audit chain length, outbox.
fn snapshot(w: &World) -> (Vec<u64>, u64, usize) {
    let admin = w.admin_session();
    let counts = EntityKind::ALL
        .iter()
        .map(|k| admin.records().count(*k, None).unwrap())
        .collect();
    let audit = admin.audit().verify().unwrap().checked;
    (counts, audit, events(w).len())
}

fn events(w: &World) -> Vec<crm_core::Event> {
    w.admin_session().outbox().pending(0, 10_000).unwrap()
}

fn events_of(w: &World, ty: &str) -> Vec<crm_core::Event> {
    events(w)
        .into_iter()
        .filter(|e| e.event_type == ty)
        .collect()
}

fn refused<T: std::fmt::Debug>(w: &World, rule: &str, f: impl FnOnce() -> crm_core::Result<T>) {
    let before = snapshot(w);
    let e = f().expect_err("the operation should be refused");
    assert_eq!(e.kind, ErrorKind::InvalidTransition, "{e}");
    assert_eq!(e.rule.as_deref(), Some(rule), "{e}");
    assert_eq!(snapshot(w), before, "a refused operation wrote something");
}

fn rep_policy() -> Policy {
    let mut p = Policy::default();
    p.objects.insert(
        "*".into(),
        ObjectRule::new(
            &[Action::Create, Action::Read, Action::Update],
            &[Scope::All],
            &[Scope::All],
        ),
    );
    p
}

struct Org {
    receptionist: Context,
    junior: Context,
    senior: Context,
    senior2: Context,
    rep_no_cap: Context,
    director: Context,
    director2: Context,
}

fn org(w: &World) -> Org {
    let rep = w.role("rep", &rep_policy());
    let director = w.role("sales director", &rep_policy().capability("approve_quotes"));
    let reception = w.role(
        "receptionist",
        &Policy::default().allow(
            EntityKind::Lead,
            ObjectRule::new(
                &[Action::Create, Action::Read],
                &[Scope::Own],
                &[Scope::Own],
            ),
        ),
    );
    let sen = |n: i64| fields! { "seniority" => n };
    Org {
        receptionist: w.user("rita", reception, fields! {}),
        junior: w.user("jack", rep, sen(1)),
        senior: w.user("sara", rep, sen(7)),
        senior2: w.user("sam", rep, sen(6)),
        rep_no_cap: w.user("rob", rep, sen(6)),
        director: w.user("diana", director, sen(9)),
        director2: w.user("dave", director, sen(9)),
    }
}

fn queue(w: &World, name: &str, strategy: &str, members: &[RecordId]) -> RecordId {
    w.admin_session()
        .records()
        .create(
            EntityKind::Queue,
            fields! { "name" => name, "strategy" => strategy, "member_ids" => ids(members) },
        )
        .unwrap()
        .meta
        .id
}

fn rule(
    w: &World,
    name: &str,
    entity: &str,
    conditions: serde_json::Value,
    queue_id: RecordId,
    min_seniority: Option<i64>,
) {
    let mut f = fields! { "name" => name, "entity" => entity, "conditions" => Value::Json(conditions), "queue_id" => queue_id };
    if let Some(m) = min_seniority {
        f.insert("min_seniority".into(), Value::Int(m));
    }
    w.admin_session()
        .records()
        .create(EntityKind::AssignmentRule, f)
        .unwrap();
}

fn pipeline(w: &World) {
    let stages = serde_json::json!([
        {"name": "prospecting", "probability": 10},
        {"name": "proposal", "probability": 50, "forecast_category": "best_case", "required_fields": ["amount"]},
        {"name": "negotiation", "probability": 75, "forecast_category": "commit", "required_fields": ["expected_close"]},
        {"name": "won", "probability": 100, "outcome": "won", "roles": ["sales director"]},
        {"name": "lost", "probability": 0, "outcome": "lost"}
    ]);
    w.admin_session()
        .records()
        .create(
            EntityKind::Pipeline,
            fields! { "name" => "sales", "stages" => Value::Json(stages), "is_default" => true },
        )
        .unwrap();
}

fn phone_lead(w: &World, by: &Context, value: &str) -> Record {
    w.on(by).records().create(EntityKind::Lead,
            fields! {
                "first_name" => "Mario", "last_name" => "Rossi", "company" => "Rossi Impianti",
                "email" => "Mario.Rossi@Example.com", "channel" => "phone", "estimated_value" => eur(value),
                "product_interest" => "heat pumps", "country" => "IT",
            },
        )
        .unwrap()
}

fn discounted_lines(discount: &str) -> Value {
    Value::Lines(vec![LineItem {
        product_id: None,
        description: "Heat pump 12 kW".into(),
        quantity: d("2"),
        unit_price: d("7500"),
        discount_percent: d(discount),
        tax_rate: d("22"),
        unit_cost: None,
    }])
}

struct TestMailer {
    sent: Mutex<Vec<EmailMessage>>,
    fail: bool,
}

impl Mailer for TestMailer {
    fn send(&self, msg: &EmailMessage) -> crm_core::Result<()> {
        if self.fail {
            return Err(crm_core::CrmError::storage("smtp down"));
        }
        self.sent.lock().unwrap().push(msg.clone());
        Ok(())
    }
}

/// The seed scenario, step by step.
#[test]
fn phone_lead_to_sent_quote() {
    let w = world();
    let admin = w.admin_session();
    let o = org(&w);
    let senior = w.on(&o.senior);
    let q = queue(
        &w,
        "senior reps",
        "round_robin",
        &[o.junior.user_id, o.senior.user_id],
    );
    rule(
        &w,
        "important phone requests",
        "lead",
        serde_json::json!({"channel": ["phone"], "min_value": "10000"}),
        q,
        Some(5),
    );
    admin
        .records()
        .create(
            EntityKind::ApprovalRule,
            fields! { "name" => "discount over 10%", "max_discount_percent" => d("10") },
        )
        .unwrap();
    pipeline(&w);

    // The receptionist takes the call; the rule routes it to a senior rep, never the junior one.
    let lead = phone_lead(&w, &o.receptionist, "25000");
    assert_eq!(lead.meta.owner_id, o.senior.user_id);
    assert_eq!(
        lead.text("assigned_by_rule"),
        Some("important phone requests")
    );
    let email = lead.text("email").unwrap().to_owned();
    assert_eq!(email, "mario.rossi@example.com");
    for _ in 0..3 {
        let other = phone_lead(&w, &o.receptionist, "12000");
        assert_ne!(other.meta.owner_id, o.junior.user_id);
    }
    let small = phone_lead(&w, &o.receptionist, "500");
    assert_eq!(
        small.meta.owner_id, o.receptionist.user_id,
        "no rule matches: the creator keeps it"
    );
    assert_eq!(events_of(&w, "lead.assigned").len(), 4);

    // The rep qualifies and converts it.
    let lead = senior
        .sales()
        .transition_lead(
            lead.meta.id,
            lead.meta.version,
            "contacted",
            Some("called back"),
        )
        .unwrap();
    let lead = senior
        .sales()
        .transition_lead(lead.meta.id, lead.meta.version, "qualified", None)
        .unwrap();
    let conv = senior
        .sales()
        .convert_lead(lead.meta.id, lead.meta.version, ConvertLead::default())
        .unwrap();
    assert_eq!(conv.lead.text("status"), Some("converted"));
    assert_eq!(
        conv.lead.reference("converted_opportunity_id"),
        Some(conv.opportunity.meta.id)
    );
    assert_eq!(conv.contact.text("email"), Some(email.as_str()));
    assert_eq!(conv.account.text("name"), Some("Rossi Impianti"));
    assert_eq!(conv.opportunity.text("stage"), Some("prospecting"));
    assert_eq!(conv.opportunity.get("amount"), &eur("25000"));

    // A quote with a 20 % discount needs approval.
    let quote = senior.records().create(EntityKind::Quote,
            fields! {
                "account_id" => conv.account.meta.id, "contact_id" => conv.contact.meta.id,
                "opportunity_id" => conv.opportunity.meta.id, "currency" => "EUR", "lines" => discounted_lines("20"),
            },
        )
        .unwrap();
    let quote = senior
        .sales()
        .submit_quote(quote.meta.id, quote.meta.version, None)
        .unwrap();
    assert_eq!(quote.text("status"), Some("pending_approval"));
    let v = quote.meta.version;
    refused(&w, "approval_missing", || {
        senior.sales().send_quote(quote.meta.id, v)
    });
    refused(&w, "same_person", || {
        senior.sales().approve_quote(quote.meta.id, v, None)
    });
    refused(&w, "role", || {
        w.on(&o.rep_no_cap)
            .sales()
            .approve_quote(quote.meta.id, v, None)
    });
    let before = events_of(&w, "email.requested").len();
    assert_eq!(before, 0);

    // The director approves; the quote goes out automatically.
    let quote = w
        .on(&o.director)
        .sales()
        .approve_quote(quote.meta.id, v, Some("ok for a new customer"))
        .unwrap();
    assert_eq!(quote.text("status"), Some("sent"));
    assert_eq!(quote.reference("approved_by"), Some(o.director.user_id));
    assert_eq!(quote.text("sent_to"), Some(email.as_str()));
    let mails = events_of(&w, "email.requested");
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].payload["to"], email.as_str());
    assert_eq!(mails[0].payload["quote_id"], quote.meta.id.to_string());
    assert_eq!(mails[0].record_id, quote.meta.id);

    // The host's mailer delivers it; the event is acknowledged.
    let failing = TestMailer {
        sent: Mutex::new(vec![]),
        fail: true,
    };
    assert_eq!(admin.outbox().deliver_emails(&failing).unwrap(), 0);
    assert_eq!(
        events_of(&w, "email.requested").len(),
        1,
        "a failed send leaves the event pending"
    );
    let mailer = TestMailer {
        sent: Mutex::new(vec![]),
        fail: false,
    };
    assert_eq!(admin.outbox().deliver_emails(&mailer).unwrap(), 1);
    let sent = mailer.sent.lock().unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, email);
    assert_eq!(sent[0].record_kind, EntityKind::Quote);
    assert!(events_of(&w, "email.requested").is_empty());
    assert_eq!(admin.outbox().deliver_emails(&mailer).unwrap(), 0);

    // The history shows every step.
    let h = senior
        .audit()
        .stage_history(EntityKind::Quote, quote.meta.id)
        .unwrap();
    let steps: Vec<&str> = h.iter().map(|e| e.to_state.as_str()).collect();
    assert_eq!(steps, ["pending_approval", "approved", "sent"]);
    let lh = senior
        .audit()
        .stage_history(EntityKind::Lead, lead.meta.id)
        .unwrap();
    assert_eq!(
        lh.iter().map(|e| e.to_state.as_str()).collect::<Vec<_>>(),
        ["contacted", "qualified", "converted"]
    );
}

/// Drives a fresh lead to `state` along allowed edges.
fn lead_in(w: &World, state: &str) -> Record {
    let mut r = w
        .admin_session()
        .records()
        .create(
            EntityKind::Lead,
            fields! { "last_name" => "Neri", "company" => "Neri SRL" },
        )
        .unwrap();
    let path: &[&str] = match state {
        "new" => &[],
        "contacted" => &["contacted"],
        "qualified" => &["qualified"],
        "converted" => &["qualified", "converted"],
        "disqualified" => &["disqualified"],
        _ => unreachable!(),
    };
    for s in path {
        r = step_lead(w, &r, s).unwrap();
    }
    r
}

fn step_lead(w: &World, r: &Record, to: &str) -> crm_core::Result<Record> {
    let admin = w.admin_session();
    if to == "converted" {
        admin
            .sales()
            .convert_lead(r.meta.id, r.meta.version, ConvertLead::default())
            .map(|c| c.lead)
    } else {
        admin
            .sales()
            .transition_lead(r.meta.id, r.meta.version, to, Some("because"))
    }
}

fn case_in(w: &World, state: &str) -> Record {
    let admin = w.admin_session();
    let mut r = admin
        .records()
        .create(EntityKind::Case, fields! { "subject" => "Pump is noisy" })
        .unwrap();
    let path: &[&str] = match state {
        "new" => &[],
        "assigned" => &["assigned"],
        "in_progress" => &["in_progress"],
        "waiting_on_customer" => &["in_progress", "waiting_on_customer"],
        "resolved" => &["in_progress", "resolved"],
        "closed" => &["in_progress", "resolved", "closed"],
        _ => unreachable!(),
    };
    for s in path {
        r = admin
            .service()
            .transition_case(r.meta.id, r.meta.version, s, None)
            .unwrap();
    }
    r
}

#[test]
fn every_illegal_lead_and_case_transition_is_refused() {
    let w = world();
    let admin = w.admin_session();
    for from in LEAD.states {
        for to in LEAD.states {
            if LEAD.allows(from, to) {
                continue;
            }
            let r = lead_in(&w, from);
            assert_eq!(r.text("status"), Some(*from));
            refused(&w, "wrong_state", || step_lead(&w, &r, to));
        }
    }
    for from in CASE.states {
        for to in CASE.states {
            if CASE.allows(from, to) {
                continue;
            }
            let r = case_in(&w, from);
            refused(&w, "wrong_state", || {
                admin
                    .service()
                    .transition_case(r.meta.id, r.meta.version, to, None)
            });
        }
    }
    // Guards beyond the edges.
    let r = lead_in(&w, "new");
    refused(&w, "reason_required", || {
        admin
            .sales()
            .disqualify_lead(r.meta.id, r.meta.version, "  ")
    });
    let r = lead_in(&w, "qualified");
    refused(&w, "wrong_state", || {
        admin
            .sales()
            .transition_lead(r.meta.id, r.meta.version, "converted", None)
    });
    // A stale version is a conflict, nothing written.
    let before = snapshot(&w);
    let e = admin
        .sales()
        .transition_lead(r.meta.id, r.meta.version - 1, "disqualified", Some("x"))
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Conflict);
    assert_eq!(snapshot(&w), before);
}

#[test]
fn illegal_quote_moves_are_refused() {
    let w = world();
    let admin = w.admin_session();
    let o = org(&w);
    let director = w.on(&o.director);
    let senior = w.on(&o.senior);
    let acc = admin
        .records()
        .create(EntityKind::Account, fields! { "name" => "ACME" })
        .unwrap();
    let new_quote = |discount: &str| {
        senior.records().create(EntityKind::Quote,
                fields! { "account_id" => acc.meta.id, "currency" => "EUR", "lines" => discounted_lines(discount), "email_to" => "buyer@acme.example", "auto_send" => false },
            )
            .unwrap()
    };
    let q = new_quote("0");
    let v = q.meta.version;
    refused(&w, "approval_missing", || {
        senior.sales().send_quote(q.meta.id, v)
    });
    refused(&w, "wrong_state", || {
        director.sales().approve_quote(q.meta.id, v, None)
    });
    refused(&w, "wrong_state", || {
        senior.sales().accept_quote(q.meta.id, v, true)
    });
    refused(&w, "wrong_state", || {
        senior.sales().expire_quote(q.meta.id, v)
    });
    refused(&w, "wrong_state", || {
        director.sales().reject_quote(q.meta.id, v, "too cheap")
    });
    // No approval rule: submitting approves at once; auto_send is off, so it waits to be sent.
    let q = senior.sales().submit_quote(q.meta.id, v, None).unwrap();
    assert_eq!(q.text("status"), Some("approved"));
    refused(&w, "wrong_state", || {
        senior.sales().submit_quote(q.meta.id, q.meta.version, None)
    });
    let q = senior
        .sales()
        .send_quote(q.meta.id, q.meta.version)
        .unwrap();
    assert_eq!(q.text("sent_to"), Some("buyer@acme.example"));
    refused(&w, "wrong_state", || {
        senior.sales().send_quote(q.meta.id, q.meta.version)
    });
    refused(&w, "reason_required", || {
        senior.sales().reject_quote(q.meta.id, q.meta.version, "")
    });
    // A sent quote's content cannot change.
    let e = senior
        .records()
        .update(
            EntityKind::Quote,
            q.meta.id,
            q.meta.version,
            fields! { "lines" => discounted_lines("5") },
        )
        .unwrap_err();
    assert_eq!(e.rule.as_deref(), Some("wrong_state"));
    let (q, order) = senior
        .sales()
        .accept_quote(q.meta.id, q.meta.version, true)
        .unwrap();
    assert_eq!(q.text("status"), Some("accepted"));
    let order = order.unwrap();
    assert_eq!(order.get("lines"), q.get("lines"));
    assert_eq!(order.get("total"), q.get("total"));
    assert_eq!(order.reference("quote_id"), Some(q.meta.id));
    refused(&w, "wrong_state", || {
        senior.sales().expire_quote(q.meta.id, q.meta.version)
    });

    // Changing an approved quote's content sends it back to draft.
    admin
        .records()
        .create(
            EntityKind::ApprovalRule,
            fields! { "name" => "big", "max_total" => eur("100000") },
        )
        .unwrap();
    let q = new_quote("0");
    let q = senior
        .sales()
        .submit_quote(q.meta.id, q.meta.version, None)
        .unwrap();
    assert_eq!(q.text("status"), Some("approved"));
    let q = senior
        .records()
        .update(
            EntityKind::Quote,
            q.meta.id,
            q.meta.version,
            fields! { "lines" => discounted_lines("15") },
        )
        .unwrap();
    assert_eq!(q.text("status"), Some("draft"));
    assert!(q.get("approved_at").is_null());
    let h = senior
        .audit()
        .stage_history(EntityKind::Quote, q.meta.id)
        .unwrap();
    assert_eq!(h.last().unwrap().rule.as_deref(), Some("content_changed"));
    // Rejection by an approver needs the capability and a reason; a rejected quote can be revised.
    admin
        .records()
        .create(
            EntityKind::ApprovalRule,
            fields! { "name" => "all", "always" => true },
        )
        .unwrap();
    let q = senior
        .sales()
        .submit_quote(q.meta.id, q.meta.version, None)
        .unwrap();
    assert_eq!(q.text("status"), Some("pending_approval"));
    let v = q.meta.version;
    refused(&w, "role", || {
        w.on(&o.rep_no_cap)
            .sales()
            .reject_quote(q.meta.id, v, "margin")
    });
    refused(&w, "reason_required", || {
        director.sales().reject_quote(q.meta.id, v, " ")
    });
    let q = director
        .sales()
        .reject_quote(q.meta.id, v, "margin too low")
        .unwrap();
    assert_eq!(q.text("rejected_reason"), Some("margin too low"));
    let q = senior
        .records()
        .update(
            EntityKind::Quote,
            q.meta.id,
            q.meta.version,
            fields! { "lines" => discounted_lines("5") },
        )
        .unwrap();
    assert_eq!(q.text("status"), Some("draft"));
}

#[test]
fn two_approvers_racing_record_exactly_one_approval() {
    let w = world();
    let admin = w.admin_session();
    let o = org(&w);
    let director2 = w.on(&o.director2);
    let director = w.on(&o.director);
    let senior = w.on(&o.senior);
    admin
        .records()
        .create(
            EntityKind::ApprovalRule,
            fields! { "name" => "always", "always" => true },
        )
        .unwrap();
    let acc = admin
        .records()
        .create(EntityKind::Account, fields! { "name" => "ACME" })
        .unwrap();
    let q = senior.records().create(EntityKind::Quote, fields! { "account_id" => acc.meta.id, "currency" => "EUR", "lines" => discounted_lines("0") })
        .unwrap();
    let q = senior
        .sales()
        .submit_quote(q.meta.id, q.meta.version, None)
        .unwrap();
    assert_eq!(q.text("status"), Some("pending_approval"));
    let results: Vec<crm_core::Result<Record>> = std::thread::scope(|s| {
        let a = s.spawn(|| {
            director
                .sales()
                .approve_quote(q.meta.id, q.meta.version, None)
        });
        let b = s.spawn(|| {
            director2
                .sales()
                .approve_quote(q.meta.id, q.meta.version, None)
        });
        vec![a.join().unwrap(), b.join().unwrap()]
    });
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    let err = results.iter().find_map(|r| r.as_ref().err()).unwrap();
    assert!(
        matches!(err.kind, ErrorKind::Conflict | ErrorKind::InvalidTransition),
        "{err}"
    );
    let h = admin
        .audit()
        .stage_history(EntityKind::Quote, q.meta.id)
        .unwrap();
    assert_eq!(h.iter().filter(|e| e.to_state == "approved").count(), 1);
    assert_eq!(events_of(&w, "quote.approved").len(), 1);
    // Sequentially, the same thing: the second approval names a stale version.
    let q2 = senior
        .records()
        .create(
            EntityKind::Quote,
            fields! { "account_id" => acc.meta.id, "currency" => "EUR", "auto_send" => false },
        )
        .unwrap();
    let q2 = senior
        .sales()
        .submit_quote(q2.meta.id, q2.meta.version, None)
        .unwrap();
    director
        .sales()
        .approve_quote(q2.meta.id, q2.meta.version, None)
        .unwrap();
    let e = director2
        .sales()
        .approve_quote(q2.meta.id, q2.meta.version, None)
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Conflict);
}

#[test]
fn a_failed_conversion_leaves_no_records_and_no_events() {
    let w = world();
    let admin = w.admin_session();
    pipeline(&w);
    let lead = lead_in(&w, "qualified");
    let before = snapshot(&w);
    // Account and contact are written first; the unknown pipeline fails afterwards.
    let e = admin
        .sales()
        .convert_lead(
            lead.meta.id,
            lead.meta.version,
            ConvertLead {
                pipeline: Some("nope".into()),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Validation);
    assert_eq!(snapshot(&w), before);
    assert_eq!(
        admin
            .records()
            .get(EntityKind::Lead, lead.meta.id)
            .unwrap()
            .text("status"),
        Some("qualified")
    );
    // Linking an existing account works and creates no second one.
    let acc = admin
        .records()
        .create(EntityKind::Account, fields! { "name" => "Existing" })
        .unwrap();
    let n = events(&w).len();
    let c = admin
        .sales()
        .convert_lead(
            lead.meta.id,
            lead.meta.version,
            ConvertLead {
                account_id: Some(acc.meta.id),
                opportunity_name: Some("Deal".into()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(c.account.meta.id, acc.meta.id);
    assert_eq!(c.opportunity.text("name"), Some("Deal"));
    // One event per committed change: contact, opportunity, lead.
    let new: Vec<String> = events(&w)
        .into_iter()
        .skip(n)
        .map(|e| e.event_type)
        .collect();
    assert_eq!(new, ["record.created", "record.created", "lead.converted"]);
}

#[test]
fn followers_are_notified_of_changes_by_others() {
    let w = world();
    let o = org(&w);
    let director = w.on(&o.director);
    let senior = w.on(&o.senior);
    let lead = senior
        .records()
        .create(EntityKind::Lead, fields! { "last_name" => "Verdi" })
        .unwrap();
    director
        .records()
        .follow(EntityKind::Lead, lead.meta.id)
        .unwrap();
    director
        .records()
        .follow(EntityKind::Lead, lead.meta.id)
        .unwrap();
    senior
        .records()
        .follow(EntityKind::Lead, lead.meta.id)
        .unwrap();
    assert_eq!(
        w.admin_session()
            .records()
            .followers(EntityKind::Lead, lead.meta.id)
            .unwrap()
            .len(),
        2
    );
    // A receptionist with own scope cannot follow someone else's lead.
    assert_eq!(
        w.on(&o.receptionist)
            .records()
            .follow(EntityKind::Lead, lead.meta.id)
            .unwrap_err()
            .kind,
        ErrorKind::NotFound
    );

    let lead = senior
        .records()
        .update(
            EntityKind::Lead,
            lead.meta.id,
            lead.meta.version,
            fields! { "company" => "Verdi SpA" },
        )
        .unwrap();
    let n = events_of(&w, "notification");
    assert_eq!(n.len(), 1, "the actor is not notified of their own change");
    assert_eq!(n[0].payload["user_id"], o.director.user_id.to_string());
    assert_eq!(n[0].record_id, lead.meta.id);

    let lead = director
        .sales()
        .transition_lead(lead.meta.id, lead.meta.version, "contacted", None)
        .unwrap();
    let n = events_of(&w, "notification");
    assert_eq!(n.len(), 2);
    assert_eq!(n[1].payload["user_id"], o.senior.user_id.to_string());

    assert!(director
        .records()
        .unfollow(EntityKind::Lead, lead.meta.id)
        .unwrap());
    assert!(!director
        .records()
        .unfollow(EntityKind::Lead, lead.meta.id)
        .unwrap());
    w.on(&o.senior2)
        .sales()
        .transition_lead(lead.meta.id, lead.meta.version, "qualified", None)
        .unwrap();
    let n = events_of(&w, "notification");
    assert_eq!(n.len(), 3);
    assert_eq!(n[2].payload["user_id"], o.senior.user_id.to_string());
}

#[test]
fn sla_breach_is_detected_once_with_the_manual_clock() {
    let w = world();
    let admin = w.admin_session();
    let urgent = admin
        .records()
        .create(
            EntityKind::Case,
            fields! { "subject" => "Outage", "priority" => "urgent" },
        )
        .unwrap();
    assert_eq!(
        urgent.get("first_response_due").as_timestamp(),
        Some(crm_tests::start() + Duration::hours(1))
    );
    assert_eq!(
        urgent.get("resolution_due").as_timestamp(),
        Some(crm_tests::start() + Duration::hours(8))
    );
    let normal = admin
        .records()
        .create(EntityKind::Case, fields! { "subject" => "Question" })
        .unwrap();
    let answered = admin
        .records()
        .create(
            EntityKind::Case,
            fields! { "subject" => "Fast", "priority" => "urgent" },
        )
        .unwrap();
    w.clock.advance(Duration::minutes(30));
    let answered = admin
        .service()
        .transition_case(answered.meta.id, answered.meta.version, "in_progress", None)
        .unwrap();
    assert!(answered.get("first_responded_at").as_timestamp().is_some());
    assert!(admin.service().check_slas().unwrap().is_empty());
    w.clock.advance(Duration::minutes(31));
    assert_eq!(admin.service().check_slas().unwrap(), vec![urgent.meta.id]);
    assert!(
        admin.service().check_slas().unwrap().is_empty(),
        "once per case"
    );
    let b = events_of(&w, "case.sla_breached");
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].payload["sla"], "first_response");
    assert_eq!(
        admin
            .records()
            .get(EntityKind::Case, urgent.meta.id)
            .unwrap()
            .get("sla_breached"),
        &Value::Bool(true)
    );
    // Seven hours in, nothing new; eight hours in, the answered urgent case misses its resolution
    // time and the normal one its first-response time.
    w.clock.advance(Duration::hours(6));
    assert!(admin.service().check_slas().unwrap().is_empty());
    w.clock.advance(Duration::hours(2));
    let mut got = admin.service().check_slas().unwrap();
    got.sort();
    let mut want = vec![answered.meta.id, normal.meta.id];
    want.sort();
    assert_eq!(got, want);
    let kinds: Vec<String> = events_of(&w, "case.sla_breached")
        .iter()
        .map(|e| e.payload["sla"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds.iter().filter(|k| *k == "resolution").count(), 1);
    w.clock.advance(Duration::hours(100));
    assert!(admin.service().check_slas().unwrap().is_empty());
    assert_eq!(events_of(&w, "case.sla_breached").len(), 3);
}

#[test]
fn round_robin_is_fair_and_deterministic() {
    let w = world();
    let o = org(&w);
    let members = [o.senior.user_id, o.senior2.user_id, o.rep_no_cap.user_id];
    let q = queue(&w, "all reps", "round_robin", &members);
    rule(
        &w,
        "web leads",
        "lead",
        serde_json::json!({"channel": ["web_form"]}),
        q,
        None,
    );
    let owners: Vec<RecordId> = (0..9)
        .map(|i| {
            w.on(&o.receptionist)
                .records()
                .create(
                    EntityKind::Lead,
                    fields! { "last_name" => format!("L{i}"), "channel" => "web_form" },
                )
                .unwrap()
                .meta
                .owner_id
        })
        .collect();
    for (i, owner) in owners.iter().enumerate() {
        assert_eq!(*owner, members[i % 3]);
    }
}

#[test]
fn least_open_picks_the_least_busy_member() {
    let w = world();
    let admin = w.admin_session();
    let o = org(&w);
    let (a, b) = (o.senior.user_id, o.senior2.user_id);
    let q = queue(&w, "support", "least_open", &[a, b]);
    rule(
        &w,
        "urgent cases",
        "case",
        serde_json::json!({"priorities": ["urgent", "high"]}),
        q,
        None,
    );
    for i in 0..2 {
        admin
            .records()
            .create(
                EntityKind::Case,
                crm_core::NewRecord {
                    fields: fields! { "subject" => format!("c{i}") },
                    owner_id: Some(a),
                },
            )
            .unwrap();
    }
    let c1 = admin
        .records()
        .create(
            EntityKind::Case,
            fields! { "subject" => "x", "priority" => "urgent" },
        )
        .unwrap();
    assert_eq!(c1.meta.owner_id, b);
    assert_eq!(c1.text("status"), Some("assigned"));
    let c2 = admin
        .records()
        .create(
            EntityKind::Case,
            fields! { "subject" => "y", "priority" => "high" },
        )
        .unwrap();
    assert_eq!(c2.meta.owner_id, b, "1 open against 2");
    let c3 = admin
        .records()
        .create(
            EntityKind::Case,
            fields! { "subject" => "z", "priority" => "high" },
        )
        .unwrap();
    assert_eq!(
        c3.meta.owner_id,
        a.min(b),
        "a tie goes to the lower user id"
    );
    let low = admin
        .records()
        .create(
            EntityKind::Case,
            fields! { "subject" => "w", "priority" => "low" },
        )
        .unwrap();
    assert_eq!(low.meta.owner_id, w.admin.user_id);
    assert_eq!(events_of(&w, "case.assigned").len(), 3);
}

#[test]
fn stage_history_reports_time_in_each_state() {
    let w = world();
    let admin = w.admin_session();
    let c = admin
        .records()
        .create(EntityKind::Case, fields! { "subject" => "History" })
        .unwrap();
    w.clock.advance(Duration::minutes(10));
    let c = admin
        .service()
        .transition_case(c.meta.id, c.meta.version, "in_progress", Some("picked up"))
        .unwrap();
    w.clock.advance(Duration::hours(1));
    let c = admin
        .service()
        .transition_case(c.meta.id, c.meta.version, "waiting_on_customer", None)
        .unwrap();
    w.clock.advance(Duration::hours(2));
    let c = admin
        .service()
        .transition_case(c.meta.id, c.meta.version, "in_progress", None)
        .unwrap();
    w.clock.advance(Duration::seconds(5));
    let h = admin
        .audit()
        .stage_history(EntityKind::Case, c.meta.id)
        .unwrap();
    let rows: Vec<(Option<&str>, &str, i64, i64)> = h
        .iter()
        .map(|e| {
            (
                e.from_state.as_deref(),
                e.to_state.as_str(),
                e.seconds_in_previous,
                e.seconds_in_state,
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (Some("new"), "in_progress", 600, 3600),
            (Some("in_progress"), "waiting_on_customer", 3600, 7200),
            (Some("waiting_on_customer"), "in_progress", 7200, 5),
        ]
    );
    assert_eq!(h[0].comment.as_deref(), Some("picked up"));
    // Someone who cannot read the case cannot read its history either.
    let nobody = w.role("nobody", &Policy::default());
    let u = w.user("nina", nobody, fields! {});
    assert_eq!(
        w.on(&u)
            .audit()
            .stage_history(EntityKind::Case, c.meta.id)
            .unwrap_err()
            .kind,
        ErrorKind::NotFound
    );
    // The audit log records each move as a transition.
    let page = admin
        .audit()
        .history(EntityKind::Case, c.meta.id, None, None)
        .unwrap();
    assert_eq!(
        page.entries
            .iter()
            .filter(|e| e.operation == crm_core::Operation::Transition)
            .count(),
        3
    );
}

#[test]
fn opportunity_stages_enforce_their_guards() {
    let w = world();
    let o = org(&w);
    let senior = w.on(&o.senior);
    pipeline(&w);
    let acc = w
        .admin_session()
        .records()
        .create(EntityKind::Account, fields! { "name" => "ACME" })
        .unwrap();
    let opp = senior
        .records()
        .create(
            EntityKind::Opportunity,
            fields! { "name" => "Deal", "account_id" => acc.meta.id },
        )
        .unwrap();
    assert_eq!(opp.text("stage"), Some("prospecting"));
    assert_eq!(opp.get("probability"), &Value::Decimal(d("10")));
    refused(&w, "missing_field", || {
        senior
            .sales()
            .move_opportunity(opp.meta.id, opp.meta.version, "proposal", None, None)
    });
    refused(&w, "wrong_state", || {
        senior
            .sales()
            .move_opportunity(opp.meta.id, opp.meta.version, "nowhere", None, None)
    });
    let opp = senior
        .records()
        .update(
            EntityKind::Opportunity,
            opp.meta.id,
            opp.meta.version,
            fields! { "amount" => eur("5000") },
        )
        .unwrap();
    let opp = senior
        .sales()
        .move_opportunity(opp.meta.id, opp.meta.version, "proposal", None, None)
        .unwrap();
    assert_eq!(opp.text("forecast_category"), Some("best_case"));
    refused(&w, "role", || {
        senior
            .sales()
            .move_opportunity(opp.meta.id, opp.meta.version, "won", None, None)
    });
    refused(&w, "reason_required", || {
        senior
            .sales()
            .move_opportunity(opp.meta.id, opp.meta.version, "lost", None, None)
    });
    let lost = senior
        .sales()
        .move_opportunity(opp.meta.id, opp.meta.version, "lost", None, Some("price"))
        .unwrap();
    assert_eq!(lost.text("lost_reason"), Some("price"));
    assert!(lost.get("closed_at").as_timestamp().is_some());
    refused(&w, "wrong_state", || {
        w.on(&o.director).sales().move_opportunity(
            lost.meta.id,
            lost.meta.version,
            "won",
            None,
            None,
        )
    });
    assert_eq!(events_of(&w, "opportunity.lost").len(), 1);
}

#[test]
fn due_tasks_and_reminders_fire_once() {
    let w = world();
    let admin = w.admin_session();
    let o = org(&w);
    let senior = w.on(&o.senior);
    let soon = crm_tests::start() + Duration::hours(2);
    let later = crm_tests::start() + Duration::days(3);
    let t1 = senior
        .records()
        .create(
            EntityKind::Activity,
            fields! { "activity_type" => "task", "subject" => "Call back", "due_at" => soon },
        )
        .unwrap();
    senior
        .records()
        .create(
            EntityKind::Activity,
            fields! { "activity_type" => "task", "subject" => "Later", "due_at" => later },
        )
        .unwrap();
    senior.records().create(EntityKind::Activity, fields! { "activity_type" => "task", "subject" => "Done", "due_at" => soon, "completed_at" => crm_tests::start() })
        .unwrap();
    senior
        .records()
        .create(
            EntityKind::Activity,
            fields! { "activity_type" => "call", "subject" => "A call", "due_at" => soon },
        )
        .unwrap();
    let due = senior
        .service()
        .due_tasks(crm_tests::start() + Duration::days(1))
        .unwrap();
    assert_eq!(
        due.iter().map(|t| t.meta.id).collect::<Vec<_>>(),
        vec![t1.meta.id]
    );
    assert_eq!(admin.service().fire_reminders().unwrap(), 0);
    w.clock.advance(Duration::hours(3));
    assert_eq!(admin.service().fire_reminders().unwrap(), 1);
    assert_eq!(admin.service().fire_reminders().unwrap(), 0);
    let ev = events_of(&w, "task.due");
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].payload["user_id"], o.senior.user_id.to_string());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, .. ProptestConfig::default() })]

    /// Random target sequences: the status only ever follows allowed edges, refused steps write nothing.
    #[test]
    fn random_lead_and_case_walks_follow_the_edges(lead_steps in prop::collection::vec(0usize..5, 1..8), case_steps in prop::collection::vec(0usize..6, 1..10)) {
        let w = world();
        let admin = w.admin_session();
        let mut lead = admin.records().create(EntityKind::Lead, fields! { "last_name" => "P", "company" => "P SRL" }).unwrap();
        for i in lead_steps {
            let to = LEAD.states[i];
            let from = lead.text("status").unwrap().to_owned();
            let before = snapshot(&w);
            match step_lead(&w, &lead, to) {
                Ok(r) => {
                    prop_assert!(LEAD.allows(&from, to), "{from} -> {to} was allowed");
                    prop_assert_eq!(r.text("status"), Some(to));
                    lead = r;
                }
                Err(e) => {
                    prop_assert!(!LEAD.allows(&from, to), "{from} -> {to} was refused: {e}");
                    prop_assert_eq!(snapshot(&w), before);
                }
            }
        }
        let mut case = admin.records().create(EntityKind::Case, fields! { "subject" => "P" }).unwrap();
        for i in case_steps {
            let to = CASE.states[i];
            let from = case.text("status").unwrap().to_owned();
            let before = snapshot(&w);
            match admin.service().transition_case(case.meta.id, case.meta.version, to, None) {
                Ok(r) => {
                    prop_assert!(CASE.allows(&from, to), "{from} -> {to} was allowed");
                    prop_assert_eq!(r.text("status"), Some(to));
                    case = r;
                }
                Err(e) => {
                    prop_assert!(!CASE.allows(&from, to), "{from} -> {to} was refused: {e}");
                    prop_assert_eq!(snapshot(&w), before);
                }
            }
        }
    }
}
