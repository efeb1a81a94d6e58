//! Deterministic demo data: the same seed gives the same organisation and the same records, with no
//! network and no randomness from the system.

use crm_core::{
    fields, Action, Crm, EntityKind, FieldAccess, LineItem, Money, NewRecord, ObjectRule, Policy,
    RecordId, Result, Scope, Session, Value,
};

/// SplitMix64: small, fast and good enough for demo data.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

pub const FIRST: &[&str] = &[
    "Giulia", "Marco", "Luca", "Sara", "Paolo", "Anna", "Matteo", "Elena", "Davide", "Chiara",
    "Franz", "Heidi", "Pierre", "Claire", "Hans", "Julia",
];
pub const LAST: &[&str] = &[
    "Rossi", "Bianchi", "Romano", "Colombo", "Ricci", "Marino", "Greco", "Bruno", "Gallo", "Conti",
    "Müller", "Schmidt", "Martin", "Bernard", "Fischer", "Weber",
];
pub const COMPANY: &[&str] = &[
    "Tessiture",
    "Meccanica",
    "Alimentari",
    "Logistica",
    "Farmacia",
    "Costruzioni",
    "Energia",
    "Ottica",
    "Ceramiche",
    "Vini",
];
pub const CITY: &[(&str, &str, &str)] = &[
    ("Milano", "IT", "02"),
    ("Roma", "IT", "06"),
    ("Torino", "IT", "011"),
    ("Napoli", "IT", "081"),
    ("Bologna", "IT", "051"),
    ("München", "DE", "089"),
    ("Berlin", "DE", "030"),
    ("Lyon", "FR", "04"),
];
pub const INDUSTRY: &[&str] = &[
    "retail",
    "manufacturing",
    "banking",
    "healthcare",
    "energy",
    "food",
];

/// A phone number of `city`, written in one of several formats (normalisation makes them equal).
pub fn phone(rng: &mut Rng, city: &(&str, &str, &str)) -> String {
    let (_, country, area) = city;
    let n = 10_000_000 + rng.below(89_999_999);
    let cc = match *country {
        "IT" => "39",
        "DE" => "49",
        _ => "33",
    };
    let area_intl = if *country == "IT" {
        area.to_string()
    } else {
        area.trim_start_matches('0').to_string()
    };
    match rng.below(3) {
        0 => format!("+{cc} {area_intl} {n}"),
        1 => format!("00{cc}-{area_intl}-{n}"),
        _ if *country == "IT" => format!("({area}) {n}"),
        _ => format!("+{cc}{area_intl}{n}"),
    }
}

/// The demo's teams, in the order of [`Org::teams`].
pub const TEAM_NAMES: [&str; 2] = ["North team", "South team"];

/// The organisation of the demo tenant, with a session for each of its users (acting from the
/// administrator's origin).
pub struct Org {
    pub rep_role: RecordId,
    pub director_role: RecordId,
    pub teams: Vec<RecordId>,
    pub territories: Vec<(RecordId, &'static str)>,
    pub reps: Vec<Session>,
    pub director: Session,
}

/// Roles, teams, territories and users: a sales director and `n_reps` reps in two teams, created
/// by `admin`; `crm` opens the new users' sessions.
pub fn organisation(crm: &Crm, admin: &Session, n_reps: usize) -> Result<Org> {
    let crud = [
        Action::Create,
        Action::Read,
        Action::Update,
        Action::Delete,
        Action::Export,
    ];
    let rep_policy = Policy::default()
        .allow(
            EntityKind::Account,
            ObjectRule::new(&crud, &[Scope::Team, Scope::Territory], &[Scope::Own]),
        )
        .allow(
            EntityKind::Contact,
            ObjectRule::new(&crud, &[Scope::Team, Scope::Territory], &[Scope::Own]),
        )
        .allow(
            EntityKind::Opportunity,
            ObjectRule::new(&crud, &[Scope::Team], &[Scope::Own]),
        )
        .allow(
            EntityKind::Order,
            ObjectRule::new(&crud, &[Scope::Team], &[Scope::Own]),
        )
        .allow(
            EntityKind::Quote,
            ObjectRule::new(&crud, &[Scope::Team], &[Scope::Own]),
        )
        .allow(
            EntityKind::Activity,
            ObjectRule::new(&crud, &[Scope::Own], &[Scope::Own]),
        )
        .allow(
            EntityKind::Lead,
            ObjectRule::new(&crud, &[Scope::Own], &[Scope::Own]),
        )
        .allow(
            EntityKind::Product,
            ObjectRule::new(&[Action::Read], &[Scope::All], &[]),
        )
        .field(EntityKind::Account, "vat_number", FieldAccess::Hidden);
    let director_policy = Policy::default()
        .allow(
            EntityKind::Account,
            ObjectRule::new(&crud, &[Scope::All], &[Scope::Subordinates]),
        )
        .allow(
            EntityKind::Contact,
            ObjectRule::new(&crud, &[Scope::All], &[Scope::Subordinates]),
        )
        .allow(
            EntityKind::Opportunity,
            ObjectRule::new(&crud, &[Scope::All], &[Scope::Subordinates]),
        )
        .allow(
            EntityKind::Order,
            ObjectRule::new(&crud, &[Scope::All], &[Scope::Subordinates]),
        )
        .allow(
            EntityKind::Quote,
            ObjectRule::new(&crud, &[Scope::All], &[Scope::Subordinates]),
        )
        .allow(
            EntityKind::Activity,
            ObjectRule::new(&crud, &[Scope::All], &[Scope::Subordinates]),
        )
        .allow(
            EntityKind::Lead,
            ObjectRule::new(&crud, &[Scope::All], &[Scope::Subordinates]),
        )
        .allow(
            EntityKind::Product,
            ObjectRule::new(&[Action::Read], &[Scope::All], &[]),
        )
        .capability("approve_quotes");
    let role = |name: &str, p: &Policy| -> Result<RecordId> {
        Ok(admin
            .records()
            .create(
                EntityKind::Role,
                fields! { "name" => name, "policy" => Value::Json(p.to_json()) },
            )?
            .meta
            .id)
    };
    let rep_role = role("Sales rep", &rep_policy)?;
    let director_role = role("Sales director", &director_policy)?;
    let mut teams = Vec::new();
    for t in TEAM_NAMES {
        teams.push(
            admin
                .records()
                .create(EntityKind::Team, fields! { "name" => t })?
                .meta
                .id,
        );
    }
    let mut territories = Vec::new();
    for (name, _) in [("Italy", "IT"), ("DACH", "DE"), ("France", "FR")] {
        let id = admin
            .records()
            .create(EntityKind::Territory, fields! { "name" => name })?
            .meta
            .id;
        territories.push((id, name));
    }
    let director = admin.records().create(EntityKind::User, fields! {
        "username" => "direttore", "display_name" => "Sales director", "role_id" => director_role, "seniority" => 9_i64,
    })?;
    let mut reps = Vec::new();
    for i in 0..n_reps {
        let u = admin.records().create(EntityKind::User, fields! {
            "username" => format!("rep{i:02}"),
            "display_name" => format!("{} {}", FIRST[i % FIRST.len()], LAST[(i * 7) % LAST.len()]),
            "role_id" => rep_role,
            "team_ids" => Value::List(vec![teams[i % 2].to_string()]),
            "territory_ids" => Value::List(vec![territories[i % 3].0.to_string()]),
            "manager_id" => director.meta.id,
            "seniority" => (1 + (i % 9)) as i64,
        })?;
        reps.push(crm.session(&admin.context().as_user(u.meta.id))?);
    }
    Ok(Org {
        rep_role,
        director_role,
        teams,
        territories,
        reps,
        director: crm.session(&admin.context().as_user(director.meta.id))?,
    })
}

/// What [`populate`] made.
pub struct Data {
    pub accounts: Vec<RecordId>,
    pub contacts: Vec<RecordId>,
    pub products: Vec<RecordId>,
    pub orders: usize,
    pub activities: usize,
}

/// Accounts, contacts, products, orders and activities, owned by the reps, in batches.
pub fn populate(admin: &Session, org: &Org, seed: u64, n_accounts: usize) -> Result<Data> {
    let mut rng = Rng::new(seed);
    let mut products = Vec::new();
    let product_rows: Vec<NewRecord> = (0..200)
        .map(|i| {
            let price = 20 + rng.below(1980);
            let cost = price * (40 + rng.below(40)) / 100;
            fields! {
                "sku" => format!("SKU-{i:04}"),
                "name" => format!("{} {}", ["Widget", "Gadget", "Service", "Licence", "Support"][i % 5], i),
                "family" => ["hardware", "hardware", "services", "software", "services"][i % 5],
                "list_price" => Value::Money(Money::parse(&price.to_string(), "EUR").unwrap()),
                "unit_cost" => Value::Money(Money::parse(&cost.to_string(), "EUR").unwrap()),
            }
            .into()
        })
        .collect();
    let mut price_of = Vec::new();
    for p in admin
        .records()
        .create_many(EntityKind::Product, product_rows)?
    {
        price_of.push(
            p.get("list_price")
                .as_money()
                .map(|m| m.amount)
                .unwrap_or_default(),
        );
        products.push(p.meta.id);
    }
    let mut accounts = Vec::new();
    let mut contacts = Vec::new();
    let mut orders = 0;
    let mut activities = 0;
    let per_rep = n_accounts.div_ceil(org.reps.len());
    for rep in &org.reps {
        let mut rows = Vec::with_capacity(per_rep);
        let mut cities = Vec::with_capacity(per_rep);
        for _ in 0..per_rep {
            let city = *rng.pick(CITY);
            let name = format!(
                "{} {} {}",
                rng.pick(COMPANY),
                rng.pick(LAST),
                ["S.p.A.", "S.r.l.", "GmbH", "SA"][rng.below(4) as usize]
            );
            let territory = org
                .territories
                .iter()
                .find(|(_, t)| match city.1 {
                    "IT" => *t == "Italy",
                    "DE" => *t == "DACH",
                    _ => *t == "France",
                })
                .map(|t| t.0);
            // Created by the administrator on the rep's behalf: reps may not write the hidden VAT number.
            rows.push(NewRecord { owner_id: Some(rep.user_id()), fields: fields! {
                "name" => name,
                "roles" => Value::List(vec![if rng.chance(80) { "customer" } else { "prospect" }.into()]),
                "phone" => phone(&mut rng, &city),
                "city" => city.0,
                "country" => city.1,
                "industry" => *rng.pick(INDUSTRY),
                "vat_number" => format!("{}{:011}", city.1, rng.below(99_999_999_999)),
                "territory_id" => territory,
            } });
            cities.push(city);
        }
        let created = admin.records().create_many(EntityKind::Account, rows)?;
        let mut contact_rows = Vec::new();
        for (a, city) in created.iter().zip(&cities) {
            for _ in 0..(1 + rng.below(2)) {
                let (f, l) = (*rng.pick(FIRST), *rng.pick(LAST));
                contact_rows.push(NewRecord::from(fields! {
                    "first_name" => f,
                    "last_name" => l,
                    "email" => format!("{}.{}{}@example.com", f.to_lowercase(), l.to_lowercase().replace('ü', "ue"), rng.below(1000)),
                    "phone" => phone(&mut rng, city),
                    "account_id" => a.meta.id,
                    "job_title" => *rng.pick(&["CEO", "CFO", "Buyer", "IT manager", "Office manager"]),
                    "country" => city.1,
                    "email_opt_in" => rng.chance(60),
                }));
            }
        }
        contacts.extend(
            rep.records()
                .create_many(EntityKind::Contact, contact_rows)?
                .into_iter()
                .map(|c| c.meta.id),
        );
        let mut order_rows = Vec::new();
        let mut activity_rows = Vec::new();
        for a in &created {
            // A few heavy buyers, many light ones, some with no orders at all.
            let n = match rng.below(10) {
                0 => 0,
                1..=6 => 1 + rng.below(3),
                7 | 8 => 3 + rng.below(5),
                _ => 8 + rng.below(12),
            };
            for _ in 0..n {
                let lines = (0..(1 + rng.below(3)))
                    .map(|_| {
                        let p = rng.below(products.len() as u64) as usize;
                        LineItem {
                            product_id: Some(products[p]),
                            description: String::new(),
                            quantity: (1 + rng.below(9)).into(),
                            unit_price: price_of[p],
                            discount_percent: [0, 0, 5, 10][rng.below(4) as usize].into(),
                            tax_rate: 22.into(),
                            unit_cost: None,
                        }
                    })
                    .collect();
                let days_ago = rng.below(3 * 365) as i64;
                order_rows.push(NewRecord::from(fields! {
                    "account_id" => a.meta.id,
                    "currency" => "EUR",
                    "status" => "fulfilled",
                    "ordered_at" => admin.now() - crm_core::chrono::Duration::days(days_ago),
                    "lines" => Value::Lines(lines),
                }));
            }
            for _ in 0..rng.below(4) {
                activity_rows.push(NewRecord::from(fields! {
                    "activity_type" => *rng.pick(&["call", "call", "email", "meeting"]),
                    "direction" => *rng.pick(&["inbound", "outbound"]),
                    "channel" => "phone",
                    "outcome" => *rng.pick(&["reached", "voicemail", "interested", "not interested"]),
                    "duration_seconds" => (30 + rng.below(900)) as i64,
                    "occurred_at" => admin.now() - crm_core::chrono::Duration::hours(rng.below(24 * 90) as i64),
                    "account_id" => a.meta.id,
                }));
            }
        }
        orders += rep
            .records()
            .create_many(EntityKind::Order, order_rows)?
            .len();
        activities += rep
            .records()
            .create_many(EntityKind::Activity, activity_rows)?
            .len();
        accounts.extend(created.into_iter().map(|a| a.meta.id));
    }
    Ok(Data {
        accounts,
        contacts,
        products,
        orders,
        activities,
    })
}
