//! Python mirrors of the core's result types.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use crm_core::chrono::{DateTime, Utc};
use crm_core::{
    AccessReview as CoreAccessReview, AuditVerification as CoreAuditVerification,
    Conversion as CoreConversion, Currency, Decimal, Decision as CoreDecision,
    EmailMessage as CoreEmailMessage, Event as CoreEvent, FieldChange as CoreFieldChange,
    HistoryEntry as CoreHistoryEntry, Money as CoreMoney, Record as CoreRecord,
    StageEntry as CoreStageEntry,
};
use pyo3::exceptions::PyKeyError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::convert::{from_json, from_value};
use crate::error::Error;

/// An amount with its currency (ISO 4217 code).
#[pyclass(frozen, module = "crm_core._crm_core")]
#[derive(Clone, Copy)]
pub(crate) struct Money(pub(crate) CoreMoney);

#[pymethods]
impl Money {
    /// `amount` is a `Decimal`, an int or a numeric string; a float is a `TypeError` (money never
    /// goes through floating point), an int beyond a decimal's range a `ValidationError`.
    #[new]
    fn new(amount: &Bound<'_, PyAny>, currency: &str) -> PyResult<Self> {
        let amount: Decimal = if amount.is_instance_of::<pyo3::types::PyString>() {
            let s: String = amount.extract()?;
            s.parse().map_err(|_| {
                pyo3::exceptions::PyValueError::new_err(format!("`{s}` is not a decimal number"))
            })?
        } else {
            // A float is refused here; a `Decimal` or an int is read from its exact text.
            crate::convert::decimal_of(amount, "amount")?
        };
        let currency = Currency::parse_field(currency, "currency").map_err(Error)?;
        Ok(Money(CoreMoney::new(amount, currency)))
    }

    #[getter]
    fn amount(&self) -> Decimal {
        self.0.amount
    }

    #[getter]
    fn currency(&self) -> &'static str {
        self.0.currency.code()
    }

    fn __repr__(&self) -> String {
        format!("Money('{}', '{}')", self.0.amount, self.0.currency.code())
    }

    fn __str__(&self) -> String {
        format!("{} {}", self.0.amount, self.0.currency.code())
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other.cast::<Money>().is_ok_and(|o| {
            o.get().0.amount == self.0.amount && o.get().0.currency == self.0.currency
        })
    }

    fn __hash__(&self) -> u64 {
        let mut h = DefaultHasher::new();
        self.0.amount.normalize().hash(&mut h);
        self.0.currency.code().hash(&mut h);
        h.finish()
    }
}

/// A saved record: bookkeeping properties, built-in fields by `rec["name"]`, custom fields in `custom`.
#[pyclass(frozen, module = "crm_core._crm_core")]
pub(crate) struct Record(pub(crate) CoreRecord);

impl Record {
    fn lookup(&self, name: &str) -> Option<&crm_core::Value> {
        match name.strip_prefix("custom.") {
            Some(c) => self.0.custom.get(c),
            None => self.0.fields.get(name),
        }
    }
}

#[pymethods]
impl Record {
    #[getter]
    fn id(&self) -> String {
        self.0.meta.id.to_string()
    }
    #[getter]
    fn kind(&self) -> &'static str {
        self.0.meta.kind.name()
    }
    #[getter]
    fn tenant(&self) -> &str {
        self.0.meta.tenant.as_str()
    }
    #[getter]
    fn version(&self) -> i64 {
        self.0.meta.version
    }
    #[getter]
    fn owner_id(&self) -> String {
        self.0.meta.owner_id.to_string()
    }
    #[getter]
    fn created_at(&self) -> DateTime<Utc> {
        self.0.meta.created_at
    }
    #[getter]
    fn created_by(&self) -> String {
        self.0.meta.created_by.to_string()
    }
    #[getter]
    fn updated_at(&self) -> DateTime<Utc> {
        self.0.meta.updated_at
    }
    #[getter]
    fn updated_by(&self) -> String {
        self.0.meta.updated_by.to_string()
    }
    #[getter]
    fn deleted_at(&self) -> Option<DateTime<Utc>> {
        self.0.meta.deleted_at
    }

    /// Built-in field values (hidden fields are absent).
    #[getter]
    fn fields<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (k, v) in &self.0.fields {
            d.set_item(k, from_value(py, v)?)?;
        }
        Ok(d)
    }

    /// Custom field values by custom field name.
    #[getter]
    fn custom<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (k, v) in &self.0.custom {
            d.set_item(k, from_value(py, v)?)?;
        }
        Ok(d)
    }

    /// A short label: the name, title, subject or id.
    #[getter]
    fn label(&self) -> String {
        self.0.label()
    }

    fn __getitem__(&self, py: Python<'_>, name: &str) -> PyResult<Py<PyAny>> {
        match self.lookup(name) {
            Some(v) => from_value(py, v),
            None => Err(PyKeyError::new_err(name.to_owned())),
        }
    }

    fn __contains__(&self, name: &str) -> bool {
        self.lookup(name).is_some()
    }

    #[pyo3(signature = (name, default=None))]
    fn get(&self, py: Python<'_>, name: &str, default: Option<Py<PyAny>>) -> PyResult<Py<PyAny>> {
        match self.lookup(name) {
            Some(v) => from_value(py, v),
            None => Ok(default.unwrap_or_else(|| py.None())),
        }
    }

    /// Everything as a plain dict: bookkeeping, fields, and `custom` as a nested dict.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = self.fields(py)?;
        let m = &self.0.meta;
        d.set_item("id", m.id.to_string())?;
        d.set_item("kind", m.kind.name())?;
        d.set_item("tenant", m.tenant.as_str())?;
        d.set_item("version", m.version)?;
        d.set_item("owner_id", m.owner_id.to_string())?;
        d.set_item("created_at", m.created_at)?;
        d.set_item("created_by", m.created_by.to_string())?;
        d.set_item("updated_at", m.updated_at)?;
        d.set_item("updated_by", m.updated_by.to_string())?;
        d.set_item("deleted_at", m.deleted_at)?;
        d.set_item("custom", self.custom(py)?)?;
        Ok(d)
    }

    /// Same record, same version, same visible values.
    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other.cast::<Record>().is_ok_and(|o| {
            let (a, b) = (&o.get().0, &self.0);
            a.meta.id == b.meta.id
                && a.meta.version == b.meta.version
                && a.meta.deleted_at.is_some() == b.meta.deleted_at.is_some()
                && a.fields == b.fields
                && a.custom == b.custom
        })
    }

    fn __hash__(&self) -> u64 {
        let mut h = DefaultHasher::new();
        self.0.meta.id.to_string().hash(&mut h);
        self.0.meta.version.hash(&mut h);
        h.finish()
    }

    fn __repr__(&self) -> String {
        let m = &self.0.meta;
        let label = [
            "name",
            "title",
            "subject",
            "username",
            "sku",
            "number",
            "last_name",
        ]
        .iter()
        .find_map(|f| {
            self.0
                .text(f)
                .map(|t| format!(" {f}='{}'", t.replace('\\', "\\\\").replace('\'', "\\'")))
        })
        .unwrap_or_default();
        format!(
            "<Record {} {} v{}{}>",
            m.kind.name(),
            m.id,
            m.version,
            label
        )
    }
}

/// One page of records and the cursor of the next page (`None` on the last page).
#[pyclass(frozen, module = "crm_core._crm_core")]
pub(crate) struct Page {
    pub(crate) items: Vec<Py<Record>>,
    #[pyo3(get)]
    pub(crate) next: Option<String>,
}

#[pymethods]
impl Page {
    #[getter]
    fn items(&self, py: Python<'_>) -> Vec<Py<Record>> {
        self.items.iter().map(|r| r.clone_ref(py)).collect()
    }
    fn __len__(&self) -> usize {
        self.items.len()
    }
    fn __repr__(&self) -> String {
        format!("<Page {} item(s) next={:?}>", self.items.len(), self.next)
    }
}

/// An access decision and the rule behind it; truthy when allowed.
#[pyclass(frozen, get_all, module = "crm_core._crm_core")]
pub(crate) struct Decision {
    allowed: bool,
    rule: String,
    reason: String,
}

impl From<CoreDecision> for Decision {
    fn from(d: CoreDecision) -> Self {
        Decision {
            allowed: d.allowed,
            rule: d.rule,
            reason: d.reason,
        }
    }
}

#[pymethods]
impl Decision {
    fn __bool__(&self) -> bool {
        self.allowed
    }
    fn __repr__(&self) -> String {
        format!("<Decision allowed={} rule={:?}>", self.allowed, self.rule)
    }
}

/// Who can read a record and why.
#[pyclass(frozen, get_all, module = "crm_core._crm_core")]
pub(crate) struct AccessReview {
    user_id: String,
    username: String,
    decision: Py<Decision>,
}

impl AccessReview {
    pub(crate) fn new(py: Python<'_>, r: CoreAccessReview) -> PyResult<Self> {
        Ok(AccessReview {
            user_id: r.user_id.to_string(),
            username: r.username,
            decision: Py::new(py, Decision::from(r.decision))?,
        })
    }
}

#[pymethods]
impl AccessReview {
    fn __repr__(&self) -> String {
        format!("<AccessReview {}>", self.username)
    }
}

/// One field's change between two versions.
#[pyclass(frozen, get_all, module = "crm_core._crm_core")]
pub(crate) struct FieldChange {
    field: String,
    old: Py<PyAny>,
    new: Py<PyAny>,
}

impl FieldChange {
    pub(crate) fn new(py: Python<'_>, c: &CoreFieldChange) -> PyResult<Self> {
        Ok(FieldChange {
            field: c.field.clone(),
            old: from_value(py, &c.old)?,
            new: from_value(py, &c.new)?,
        })
    }
}

#[pymethods]
impl FieldChange {
    fn __repr__(&self) -> String {
        format!("<FieldChange {}>", self.field)
    }
}

/// One audit log entry as a reader may see it.
#[pyclass(frozen, get_all, module = "crm_core._crm_core")]
pub(crate) struct HistoryEntry {
    seq: u64,
    at: DateTime<Utc>,
    user_id: String,
    client: Option<String>,
    address: Option<String>,
    location: Option<String>,
    operation: String,
    kind: String,
    record_id: String,
    version: i64,
    changes: Vec<Py<FieldChange>>,
    comment: Option<String>,
}

impl HistoryEntry {
    pub(crate) fn new(py: Python<'_>, e: CoreHistoryEntry) -> PyResult<Self> {
        let mut changes = Vec::with_capacity(e.changes.len());
        for c in &e.changes {
            changes.push(Py::new(py, FieldChange::new(py, c)?)?);
        }
        Ok(HistoryEntry {
            seq: e.seq,
            at: e.at,
            user_id: e.user_id.to_string(),
            client: e.origin.client,
            address: e.origin.address,
            location: e.origin.location,
            operation: e.operation.name().to_owned(),
            kind: e.kind.name().to_owned(),
            record_id: e.record_id.to_string(),
            version: e.version,
            changes,
            comment: e.comment,
        })
    }
}

#[pymethods]
impl HistoryEntry {
    fn __repr__(&self) -> String {
        format!(
            "<HistoryEntry #{} {} {} v{}>",
            self.seq, self.operation, self.kind, self.version
        )
    }
}

/// A page of history, newest first; `next` is the `before` value for the following page.
#[pyclass(frozen, get_all, module = "crm_core._crm_core")]
pub(crate) struct HistoryPage {
    pub(crate) entries: Vec<Py<HistoryEntry>>,
    pub(crate) next: Option<u64>,
}

#[pymethods]
impl HistoryPage {
    fn __len__(&self) -> usize {
        self.entries.len()
    }
}

/// The result of checking the audit hash chain.
#[pyclass(frozen, get_all, module = "crm_core._crm_core")]
pub(crate) struct AuditVerification {
    checked: u64,
    ok: bool,
    first_bad_seq: Option<u64>,
    problem: Option<String>,
}

impl From<CoreAuditVerification> for AuditVerification {
    fn from(v: CoreAuditVerification) -> Self {
        AuditVerification {
            checked: v.checked,
            ok: v.ok,
            first_bad_seq: v.first_bad_seq,
            problem: v.problem,
        }
    }
}

#[pymethods]
impl AuditVerification {
    fn __bool__(&self) -> bool {
        self.ok
    }
    fn __repr__(&self) -> String {
        format!(
            "<AuditVerification ok={} checked={}>",
            self.ok, self.checked
        )
    }
}

/// An outbox event.
#[pyclass(frozen, get_all, module = "crm_core._crm_core")]
pub(crate) struct Event {
    seq: u64,
    at: DateTime<Utc>,
    event_type: String,
    kind: String,
    record_id: String,
    user_id: String,
    payload: Py<PyAny>,
}

impl Event {
    pub(crate) fn new(py: Python<'_>, e: CoreEvent) -> PyResult<Self> {
        Ok(Event {
            seq: e.seq,
            at: e.at,
            event_type: e.event_type,
            kind: e.kind.name().to_owned(),
            record_id: e.record_id.to_string(),
            user_id: e.user_id.to_string(),
            payload: from_json(py, &e.payload)?,
        })
    }
}

#[pymethods]
impl Event {
    fn __repr__(&self) -> String {
        format!("<Event #{} {}>", self.seq, self.event_type)
    }
}

/// One recorded lifecycle transition with the time spent in the state it entered.
#[pyclass(frozen, get_all, module = "crm_core._crm_core")]
pub(crate) struct StageEntry {
    at: DateTime<Utc>,
    user_id: String,
    from_state: Option<String>,
    to_state: String,
    comment: Option<String>,
    rule: Option<String>,
    seconds_in_previous: i64,
    seconds_in_state: i64,
}

impl From<CoreStageEntry> for StageEntry {
    fn from(e: CoreStageEntry) -> Self {
        StageEntry {
            at: e.at,
            user_id: e.user_id.to_string(),
            from_state: e.from_state,
            to_state: e.to_state,
            comment: e.comment,
            rule: e.rule,
            seconds_in_previous: e.seconds_in_previous,
            seconds_in_state: e.seconds_in_state,
        }
    }
}

#[pymethods]
impl StageEntry {
    fn __repr__(&self) -> String {
        format!(
            "<StageEntry {} -> {}>",
            self.from_state.as_deref().unwrap_or("-"),
            self.to_state
        )
    }
}

/// The records a lead conversion created or linked: the converted lead, the account, the contact
/// and the opportunity.
#[pyclass(frozen, get_all, module = "crm_core._crm_core")]
pub(crate) struct Conversion {
    lead: Py<Record>,
    account: Py<Record>,
    contact: Py<Record>,
    opportunity: Py<Record>,
}

impl Conversion {
    pub(crate) fn new(py: Python<'_>, c: CoreConversion) -> PyResult<Self> {
        Ok(Conversion {
            lead: Py::new(py, Record(c.lead))?,
            account: Py::new(py, Record(c.account))?,
            contact: Py::new(py, Record(c.contact))?,
            opportunity: Py::new(py, Record(c.opportunity))?,
        })
    }
}

#[pymethods]
impl Conversion {
    fn __repr__(&self) -> String {
        "<Conversion>".to_owned()
    }
}

/// An e-mail the outbox asks the host's mailer to send.
#[pyclass(frozen, get_all, module = "crm_core._crm_core")]
pub(crate) struct EmailMessage {
    to: String,
    subject: String,
    body: String,
    record_kind: String,
    record_id: String,
}

impl From<&CoreEmailMessage> for EmailMessage {
    fn from(m: &CoreEmailMessage) -> Self {
        EmailMessage {
            to: m.to.clone(),
            subject: m.subject.clone(),
            body: m.body.clone(),
            record_kind: m.record_kind.name().to_owned(),
            record_id: m.record_id.to_string(),
        }
    }
}

#[pymethods]
impl EmailMessage {
    fn __repr__(&self) -> String {
        format!("<EmailMessage to={:?} subject={:?}>", self.to, self.subject)
    }
}

/// Who entered and who left a segment at a refresh, and how many members it has now.
#[pyclass(frozen, get_all, module = "crm_core._crm_core")]
pub(crate) struct SegmentDiff {
    entered: Vec<String>,
    left: Vec<String>,
    member_count: u64,
}

impl From<crm_core::SegmentDiff> for SegmentDiff {
    fn from(d: crm_core::SegmentDiff) -> Self {
        SegmentDiff {
            entered: d.entered.iter().map(ToString::to_string).collect(),
            left: d.left.iter().map(ToString::to_string).collect(),
            member_count: d.member_count,
        }
    }
}

#[pymethods]
impl SegmentDiff {
    fn __repr__(&self) -> String {
        format!(
            "<SegmentDiff +{} -{} members={}>",
            self.entered.len(),
            self.left.len(),
            self.member_count
        )
    }
}

/// One customer's RFM scores, named segment and lifecycle stage.
#[pyclass(frozen, module = "crm_core._crm_core")]
pub(crate) struct RfmRow {
    // Kept as the id and written out when read: a result of a million rows makes no text for it.
    account: crm_core::RecordId,
    #[pyo3(get)]
    recency_days: i64,
    #[pyo3(get)]
    frequency: i64,
    #[pyo3(get)]
    monetary: Money,
    #[pyo3(get)]
    r: u8,
    #[pyo3(get)]
    f: u8,
    #[pyo3(get)]
    m: u8,
    #[pyo3(get)]
    segment: String,
    #[pyo3(get)]
    lifecycle: &'static str,
}

impl From<&crm_core::RfmRow> for RfmRow {
    fn from(row: &crm_core::RfmRow) -> Self {
        RfmRow {
            account: row.account_id,
            recency_days: row.recency_days,
            frequency: row.frequency,
            monetary: Money(row.monetary),
            r: row.r,
            f: row.f,
            m: row.m,
            segment: row.segment.clone(),
            lifecycle: row.lifecycle.name(),
        }
    }
}

#[pymethods]
impl RfmRow {
    #[getter]
    fn account_id(&self) -> String {
        self.account.to_string()
    }

    fn __repr__(&self) -> String {
        format!(
            "<RfmRow {} {}{}{} {}>",
            self.account, self.r, self.f, self.m, self.segment
        )
    }
}

/// Revenue, cost and margin of one customer segment × product.
#[pyclass(frozen, get_all, module = "crm_core._crm_core")]
pub(crate) struct ProfitRow {
    segment: String,
    product_id: Option<String>,
    product: String,
    quantity: Decimal,
    revenue: Money,
    cost: Money,
    margin: Money,
    lines_without_cost: u64,
}

impl From<&crm_core::ProfitRow> for ProfitRow {
    fn from(row: &crm_core::ProfitRow) -> Self {
        ProfitRow {
            segment: row.segment.clone(),
            product_id: row.product_id.map(|id| id.to_string()),
            product: row.product.clone(),
            quantity: row.quantity,
            revenue: Money(row.revenue),
            cost: Money(row.cost),
            margin: Money(row.margin),
            lines_without_cost: row.lines_without_cost,
        }
    }
}

#[pymethods]
impl ProfitRow {
    fn __repr__(&self) -> String {
        format!(
            "<ProfitRow {} × {} margin={} {}>",
            self.segment,
            self.product,
            self.margin.0.amount,
            self.margin.0.currency.code()
        )
    }
}

/// What a tenant export or import moved.
#[pyclass(frozen, get_all, module = "crm_core._crm_core")]
pub(crate) struct TransferSummary {
    records: u64,
    audit: u64,
    events: u64,
}

impl From<crm_core::TransferSummary> for TransferSummary {
    fn from(s: crm_core::TransferSummary) -> Self {
        TransferSummary {
            records: s.records,
            audit: s.audit,
            events: s.events,
        }
    }
}

#[pymethods]
impl TransferSummary {
    fn __repr__(&self) -> String {
        format!(
            "<TransferSummary records={} audit={} events={}>",
            self.records, self.audit, self.events
        )
    }
}

/// Weighted pipeline of one expected-close month (`YYYY-MM`, `""` when unset) and forecast category.
#[pyclass(frozen, get_all, module = "crm_core._crm_core")]
pub(crate) struct ForecastRow {
    month: String,
    forecast_category: String,
    count: u64,
    amount: Money,
    weighted: Money,
}

impl From<crm_core::ForecastRow> for ForecastRow {
    fn from(r: crm_core::ForecastRow) -> Self {
        ForecastRow {
            month: r.month,
            forecast_category: r.forecast_category,
            count: r.count,
            amount: Money(r.amount),
            weighted: Money(r.weighted),
        }
    }
}

#[pymethods]
impl ForecastRow {
    fn __repr__(&self) -> String {
        format!(
            "<ForecastRow {} {} count={}>",
            self.month, self.forecast_category, self.count
        )
    }
}

/// Supervision figures over a period, of one user (`user_id`) or one team (`team_id`).
#[pyclass(frozen, get_all, module = "crm_core._crm_core")]
pub(crate) struct Kpi {
    user_id: Option<String>,
    team_id: Option<String>,
    users: u64,
    activities: u64,
    calls: u64,
    inbound_calls: u64,
    outbound_calls: u64,
    activity_breakdown: Vec<ActivityCount>,
    leads: u64,
    leads_converted: u64,
    leads_disqualified: u64,
    lead_conversion_rate: Option<f64>,
    opportunities_won: u64,
    opportunities_lost: u64,
    win_rate: Option<f64>,
    revenue_closed: Option<Money>,
    average_deal_size: Option<Money>,
    orders: u64,
    order_revenue: Option<Money>,
    open_cases: u64,
}

impl From<crm_core::Kpi> for Kpi {
    fn from(k: crm_core::Kpi) -> Self {
        Kpi {
            user_id: k.user_id.map(|u| u.to_string()),
            team_id: k.team_id.map(|t| t.to_string()),
            users: k.users,
            activities: k.activities,
            calls: k.calls,
            inbound_calls: k.inbound_calls,
            outbound_calls: k.outbound_calls,
            activity_breakdown: k
                .activity_breakdown
                .into_iter()
                .map(ActivityCount::from)
                .collect(),
            leads: k.leads,
            leads_converted: k.leads_converted,
            leads_disqualified: k.leads_disqualified,
            lead_conversion_rate: k.lead_conversion_rate,
            opportunities_won: k.opportunities_won,
            opportunities_lost: k.opportunities_lost,
            win_rate: k.win_rate,
            revenue_closed: k.revenue_closed.map(Money),
            average_deal_size: k.average_deal_size.map(Money),
            orders: k.orders,
            order_revenue: k.order_revenue.map(Money),
            open_cases: k.open_cases,
        }
    }
}

#[pymethods]
impl Kpi {
    fn __repr__(&self) -> String {
        match (&self.user_id, &self.team_id) {
            (Some(u), _) => format!("<Kpi user {}>", u),
            (None, Some(t)) => format!("<Kpi team {} users={}>", t, self.users),
            (None, None) => "<Kpi>".to_owned(),
        }
    }
}

/// How many activities of one type, direction and outcome.
#[pyclass(frozen, get_all, module = "crm_core._crm_core")]
#[derive(Clone)]
pub(crate) struct ActivityCount {
    activity_type: String,
    direction: Option<String>,
    outcome: Option<String>,
    count: u64,
}

impl From<crm_core::ActivityCount> for ActivityCount {
    fn from(a: crm_core::ActivityCount) -> Self {
        ActivityCount {
            activity_type: a.activity_type,
            direction: a.direction,
            outcome: a.outcome,
            count: a.count,
        }
    }
}

#[pymethods]
impl ActivityCount {
    fn __repr__(&self) -> String {
        format!(
            "<ActivityCount {} {} {} count={}>",
            self.activity_type,
            self.direction.as_deref().unwrap_or("-"),
            self.outcome.as_deref().unwrap_or("-"),
            self.count
        )
    }
}

/// A product often bought with one the account bought, with the association rule's measures.
#[pyclass(frozen, get_all, module = "crm_core._crm_core")]
pub(crate) struct CrossSell {
    product_id: String,
    because_of: String,
    support: f64,
    confidence: f64,
    lift: f64,
}

impl From<crm_core::CrossSell> for CrossSell {
    fn from(c: crm_core::CrossSell) -> Self {
        CrossSell {
            product_id: c.product_id.to_string(),
            because_of: c.because_of.to_string(),
            support: c.support,
            confidence: c.confidence,
            lift: c.lift,
        }
    }
}

#[pymethods]
impl CrossSell {
    fn __repr__(&self) -> String {
        format!("<CrossSell {} lift={:.2}>", self.product_id, self.lift)
    }
}

/// Everything an agent needs when a call comes in (see `Session.screen_pop`).
#[pyclass(frozen, get_all, module = "crm_core._crm_core")]
pub(crate) struct ScreenPop {
    candidates: Vec<Py<Record>>,
    account: Option<Py<Record>>,
    contact: Option<Py<Record>>,
    contacts: Vec<Py<Record>>,
    recent_orders: Vec<Py<Record>>,
    open_opportunities: Vec<Py<Record>>,
    quotes: Vec<Py<Record>>,
    open_cases: Vec<Py<Record>>,
    last_activities: Vec<Py<Record>>,
    rfm_segment: Option<String>,
    lifecycle: Option<&'static str>,
    cross_sell: Vec<Py<CrossSell>>,
    erp: Option<Py<PyAny>>,
}

impl ScreenPop {
    pub(crate) fn new(py: Python<'_>, p: crm_core::ScreenPop) -> PyResult<Self> {
        let recs = |v: Vec<CoreRecord>| -> PyResult<Vec<Py<Record>>> {
            v.into_iter().map(|r| Py::new(py, Record(r))).collect()
        };
        let one = |r: Option<CoreRecord>| r.map(|r| Py::new(py, Record(r))).transpose();
        let erp = match p.erp {
            None => None,
            Some(e) => {
                let d = PyDict::new(py);
                d.set_item("balance", e.balance.map(Money))?;
                d.set_item("credit_terms", e.credit_terms)?;
                let inv = pyo3::types::PyList::empty(py);
                for i in e.overdue_invoices {
                    let x = PyDict::new(py);
                    x.set_item("number", i.number)?;
                    x.set_item("amount", Money(i.amount))?;
                    x.set_item("due", i.due)?;
                    inv.append(x)?;
                }
                d.set_item("overdue_invoices", inv)?;
                Some(d.into_any().unbind())
            }
        };
        Ok(ScreenPop {
            candidates: recs(p.candidates)?,
            account: one(p.account)?,
            contact: one(p.contact)?,
            contacts: recs(p.contacts)?,
            recent_orders: recs(p.recent_orders)?,
            open_opportunities: recs(p.open_opportunities)?,
            quotes: recs(p.quotes)?,
            open_cases: recs(p.open_cases)?,
            last_activities: recs(p.last_activities)?,
            rfm_segment: p.rfm_segment,
            lifecycle: p.lifecycle.map(|l| l.name()),
            cross_sell: p
                .cross_sell
                .into_iter()
                .map(|c| Py::new(py, CrossSell::from(c)))
                .collect::<PyResult<_>>()?,
            erp,
        })
    }
}

#[pymethods]
impl ScreenPop {
    fn __repr__(&self) -> String {
        format!("<ScreenPop {} candidate(s)>", self.candidates.len())
    }
}

/// One stage of a funnel: how many reached it (or a later stage), how many are in it now, and the
/// conversion rate to the next stage.
#[pyclass(frozen, get_all, module = "crm_core._crm_core")]
#[derive(Clone)]
pub(crate) struct FunnelStage {
    stage: String,
    reached: u64,
    current: u64,
    conversion_to_next: Option<f64>,
}

#[pymethods]
impl FunnelStage {
    fn __repr__(&self) -> String {
        format!(
            "<FunnelStage {} reached={} current={}>",
            self.stage, self.reached, self.current
        )
    }
}

/// How a pipeline's opportunities went through its stages.
#[pyclass(frozen, get_all, module = "crm_core._crm_core")]
pub(crate) struct Funnel {
    pipeline: String,
    stages: Vec<FunnelStage>,
    opportunities: u64,
    won: u64,
    lost: u64,
    win_rate: Option<f64>,
    average_days_to_win: Option<f64>,
    average_cycle_days: Option<f64>,
}

impl From<crm_core::Funnel> for Funnel {
    fn from(f: crm_core::Funnel) -> Self {
        Funnel {
            pipeline: f.pipeline,
            stages: f
                .stages
                .into_iter()
                .map(|s| FunnelStage {
                    stage: s.stage,
                    reached: s.reached,
                    current: s.current,
                    conversion_to_next: s.conversion_to_next,
                })
                .collect(),
            opportunities: f.opportunities,
            won: f.won,
            lost: f.lost,
            win_rate: f.win_rate,
            average_days_to_win: f.average_days_to_win,
            average_cycle_days: f.average_cycle_days,
        }
    }
}

#[pymethods]
impl Funnel {
    fn __repr__(&self) -> String {
        format!(
            "<Funnel {} opportunities={} won={} lost={}>",
            self.pipeline, self.opportunities, self.won, self.lost
        )
    }
}

/// Value indices of one customer: lifetime value (historic, predicted), churn risk, CSAT, NPS.
#[pyclass(frozen, get_all, module = "crm_core._crm_core")]
pub(crate) struct CustomerValue {
    account_id: String,
    orders: i64,
    lifetime_value: Option<Money>,
    average_order_value: Option<Money>,
    predicted_value: Option<Money>,
    churn_risk: Option<f64>,
    csat: Option<f64>,
    nps: Option<f64>,
    survey_responses: u64,
}

impl From<&crm_core::CustomerValue> for CustomerValue {
    fn from(v: &crm_core::CustomerValue) -> Self {
        CustomerValue {
            account_id: v.account_id.to_string(),
            orders: v.orders,
            lifetime_value: v.lifetime_value.map(Money),
            average_order_value: v.average_order_value.map(Money),
            predicted_value: v.predicted_value.map(Money),
            churn_risk: v.churn_risk,
            csat: v.csat,
            nps: v.nps,
            survey_responses: v.survey_responses,
        }
    }
}

#[pymethods]
impl CustomerValue {
    fn __repr__(&self) -> String {
        format!("<CustomerValue {} orders={}>", self.account_id, self.orders)
    }
}
