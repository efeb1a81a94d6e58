-- 0001: the initial schema. Record tables are generated from crm-core's static schema (see
-- tests/schema_sync.rs, which checks they stay in sync). Every index is led by tenant_id.

CREATE TABLE accounts (
    tenant_id TEXT NOT NULL,
    id BLOB NOT NULL,
    owner_id BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    created_by BLOB NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by BLOB NOT NULL,
    version INTEGER NOT NULL,
    deleted_at INTEGER,
    custom TEXT,
    name TEXT,
    legal_name TEXT,
    roles TEXT,
    email TEXT,
    phone TEXT,
    website TEXT,
    industry TEXT,
    vat_number TEXT,
    address TEXT,
    city TEXT,
    postal_code TEXT,
    country TEXT,
    territory_id BLOB,
    parent_id BLOB,
    order_count INTEGER,
    lifetime_value INTEGER,
    lifetime_value_currency TEXT,
    average_order_value INTEGER,
    average_order_value_currency TEXT,
    first_order_at INTEGER,
    last_order_at INTEGER,
    other_currency_orders INTEGER,
    open_opportunities INTEGER,
    open_opportunity_value INTEGER,
    open_opportunity_value_currency TEXT,
    open_cases INTEGER,
    PRIMARY KEY (tenant_id, id)
) WITHOUT ROWID;
CREATE INDEX ix_accounts_owner ON accounts (tenant_id, owner_id);
CREATE INDEX ix_accounts_updated ON accounts (tenant_id, updated_at);

CREATE TABLE contacts (
    tenant_id TEXT NOT NULL,
    id BLOB NOT NULL,
    owner_id BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    created_by BLOB NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by BLOB NOT NULL,
    version INTEGER NOT NULL,
    deleted_at INTEGER,
    custom TEXT,
    first_name TEXT,
    last_name TEXT,
    email TEXT,
    phone TEXT,
    mobile TEXT,
    roles TEXT,
    account_id BLOB,
    job_title TEXT,
    country TEXT,
    email_opt_in INTEGER,
    do_not_contact INTEGER,
    birth_date TEXT,
    PRIMARY KEY (tenant_id, id)
) WITHOUT ROWID;
CREATE INDEX ix_contacts_owner ON contacts (tenant_id, owner_id);
CREATE INDEX ix_contacts_updated ON contacts (tenant_id, updated_at);

CREATE TABLE account_contacts (
    tenant_id TEXT NOT NULL,
    id BLOB NOT NULL,
    owner_id BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    created_by BLOB NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by BLOB NOT NULL,
    version INTEGER NOT NULL,
    deleted_at INTEGER,
    custom TEXT,
    account_id BLOB,
    contact_id BLOB,
    job_title TEXT,
    is_primary INTEGER,
    PRIMARY KEY (tenant_id, id)
) WITHOUT ROWID;
CREATE INDEX ix_account_contacts_owner ON account_contacts (tenant_id, owner_id);
CREATE INDEX ix_account_contacts_updated ON account_contacts (tenant_id, updated_at);

CREATE TABLE leads (
    tenant_id TEXT NOT NULL,
    id BLOB NOT NULL,
    owner_id BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    created_by BLOB NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by BLOB NOT NULL,
    version INTEGER NOT NULL,
    deleted_at INTEGER,
    custom TEXT,
    first_name TEXT,
    last_name TEXT,
    company TEXT,
    email TEXT,
    phone TEXT,
    country TEXT,
    channel TEXT,
    status TEXT,
    priority TEXT,
    estimated_value INTEGER,
    estimated_value_currency TEXT,
    product_interest TEXT,
    description TEXT,
    territory_id BLOB,
    disqualify_reason TEXT,
    converted_account_id BLOB,
    converted_contact_id BLOB,
    converted_opportunity_id BLOB,
    assigned_by_rule TEXT,
    PRIMARY KEY (tenant_id, id)
) WITHOUT ROWID;
CREATE INDEX ix_leads_owner ON leads (tenant_id, owner_id);
CREATE INDEX ix_leads_updated ON leads (tenant_id, updated_at);

CREATE TABLE opportunities (
    tenant_id TEXT NOT NULL,
    id BLOB NOT NULL,
    owner_id BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    created_by BLOB NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by BLOB NOT NULL,
    version INTEGER NOT NULL,
    deleted_at INTEGER,
    custom TEXT,
    name TEXT,
    account_id BLOB,
    contact_id BLOB,
    lead_id BLOB,
    pipeline TEXT,
    stage TEXT,
    amount INTEGER,
    amount_currency TEXT,
    probability INTEGER,
    forecast_category TEXT,
    expected_close TEXT,
    lost_reason TEXT,
    closed_at INTEGER,
    PRIMARY KEY (tenant_id, id)
) WITHOUT ROWID;
CREATE INDEX ix_opportunities_owner ON opportunities (tenant_id, owner_id);
CREATE INDEX ix_opportunities_updated ON opportunities (tenant_id, updated_at);

CREATE TABLE products (
    tenant_id TEXT NOT NULL,
    id BLOB NOT NULL,
    owner_id BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    created_by BLOB NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by BLOB NOT NULL,
    version INTEGER NOT NULL,
    deleted_at INTEGER,
    custom TEXT,
    sku TEXT,
    name TEXT,
    description TEXT,
    family TEXT,
    list_price INTEGER,
    list_price_currency TEXT,
    unit_cost INTEGER,
    unit_cost_currency TEXT,
    active INTEGER,
    PRIMARY KEY (tenant_id, id)
) WITHOUT ROWID;
CREATE INDEX ix_products_owner ON products (tenant_id, owner_id);
CREATE INDEX ix_products_updated ON products (tenant_id, updated_at);
CREATE UNIQUE INDEX ux_products_sku ON products (tenant_id, sku) WHERE deleted_at IS NULL;

CREATE TABLE quotes (
    tenant_id TEXT NOT NULL,
    id BLOB NOT NULL,
    owner_id BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    created_by BLOB NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by BLOB NOT NULL,
    version INTEGER NOT NULL,
    deleted_at INTEGER,
    custom TEXT,
    number TEXT,
    account_id BLOB,
    contact_id BLOB,
    opportunity_id BLOB,
    lead_id BLOB,
    status TEXT,
    currency TEXT,
    lines TEXT,
    subtotal INTEGER,
    subtotal_currency TEXT,
    discount_total INTEGER,
    discount_total_currency TEXT,
    tax_total INTEGER,
    tax_total_currency TEXT,
    total INTEGER,
    total_currency TEXT,
    valid_until TEXT,
    email_to TEXT,
    auto_send INTEGER,
    approval_required INTEGER,
    submitted_by BLOB,
    approved_by BLOB,
    approved_at INTEGER,
    sent_at INTEGER,
    sent_to TEXT,
    rejected_reason TEXT,
    PRIMARY KEY (tenant_id, id)
) WITHOUT ROWID;
CREATE INDEX ix_quotes_owner ON quotes (tenant_id, owner_id);
CREATE INDEX ix_quotes_updated ON quotes (tenant_id, updated_at);

CREATE TABLE orders (
    tenant_id TEXT NOT NULL,
    id BLOB NOT NULL,
    owner_id BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    created_by BLOB NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by BLOB NOT NULL,
    version INTEGER NOT NULL,
    deleted_at INTEGER,
    custom TEXT,
    number TEXT,
    account_id BLOB,
    contact_id BLOB,
    quote_id BLOB,
    status TEXT,
    ordered_at INTEGER,
    currency TEXT,
    lines TEXT,
    subtotal INTEGER,
    subtotal_currency TEXT,
    discount_total INTEGER,
    discount_total_currency TEXT,
    tax_total INTEGER,
    tax_total_currency TEXT,
    total INTEGER,
    total_currency TEXT,
    PRIMARY KEY (tenant_id, id)
) WITHOUT ROWID;
CREATE INDEX ix_orders_owner ON orders (tenant_id, owner_id);
CREATE INDEX ix_orders_updated ON orders (tenant_id, updated_at);

CREATE TABLE activities (
    tenant_id TEXT NOT NULL,
    id BLOB NOT NULL,
    owner_id BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    created_by BLOB NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by BLOB NOT NULL,
    version INTEGER NOT NULL,
    deleted_at INTEGER,
    custom TEXT,
    activity_type TEXT,
    subject TEXT,
    body TEXT,
    channel TEXT,
    direction TEXT,
    outcome TEXT,
    duration_seconds INTEGER,
    occurred_at INTEGER,
    due_at INTEGER,
    completed_at INTEGER,
    performed_by BLOB,
    account_id BLOB,
    contact_id BLOB,
    lead_id BLOB,
    opportunity_id BLOB,
    quote_id BLOB,
    case_id BLOB,
    campaign_id BLOB,
    score INTEGER,
    reminded_at INTEGER,
    PRIMARY KEY (tenant_id, id)
) WITHOUT ROWID;
CREATE INDEX ix_activities_owner ON activities (tenant_id, owner_id);
CREATE INDEX ix_activities_updated ON activities (tenant_id, updated_at);

CREATE TABLE cases (
    tenant_id TEXT NOT NULL,
    id BLOB NOT NULL,
    owner_id BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    created_by BLOB NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by BLOB NOT NULL,
    version INTEGER NOT NULL,
    deleted_at INTEGER,
    custom TEXT,
    subject TEXT,
    description TEXT,
    account_id BLOB,
    contact_id BLOB,
    status TEXT,
    priority TEXT,
    channel TEXT,
    product_id BLOB,
    article_id BLOB,
    first_response_due INTEGER,
    resolution_due INTEGER,
    first_responded_at INTEGER,
    resolved_at INTEGER,
    closed_at INTEGER,
    sla_breached INTEGER,
    assigned_by_rule TEXT,
    PRIMARY KEY (tenant_id, id)
) WITHOUT ROWID;
CREATE INDEX ix_cases_owner ON cases (tenant_id, owner_id);
CREATE INDEX ix_cases_updated ON cases (tenant_id, updated_at);

CREATE TABLE knowledge_articles (
    tenant_id TEXT NOT NULL,
    id BLOB NOT NULL,
    owner_id BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    created_by BLOB NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by BLOB NOT NULL,
    version INTEGER NOT NULL,
    deleted_at INTEGER,
    custom TEXT,
    title TEXT,
    problem TEXT,
    solution TEXT,
    keywords TEXT,
    product_id BLOB,
    published INTEGER,
    PRIMARY KEY (tenant_id, id)
) WITHOUT ROWID;
CREATE INDEX ix_knowledge_articles_owner ON knowledge_articles (tenant_id, owner_id);
CREATE INDEX ix_knowledge_articles_updated ON knowledge_articles (tenant_id, updated_at);

CREATE TABLE campaigns (
    tenant_id TEXT NOT NULL,
    id BLOB NOT NULL,
    owner_id BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    created_by BLOB NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by BLOB NOT NULL,
    version INTEGER NOT NULL,
    deleted_at INTEGER,
    custom TEXT,
    name TEXT,
    description TEXT,
    status TEXT,
    channel TEXT,
    starts_on TEXT,
    ends_on TEXT,
    budget INTEGER,
    budget_currency TEXT,
    PRIMARY KEY (tenant_id, id)
) WITHOUT ROWID;
CREATE INDEX ix_campaigns_owner ON campaigns (tenant_id, owner_id);
CREATE INDEX ix_campaigns_updated ON campaigns (tenant_id, updated_at);

CREATE TABLE campaign_members (
    tenant_id TEXT NOT NULL,
    id BLOB NOT NULL,
    owner_id BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    created_by BLOB NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by BLOB NOT NULL,
    version INTEGER NOT NULL,
    deleted_at INTEGER,
    custom TEXT,
    campaign_id BLOB,
    contact_id BLOB,
    lead_id BLOB,
    status TEXT,
    responded_at INTEGER,
    PRIMARY KEY (tenant_id, id)
) WITHOUT ROWID;
CREATE INDEX ix_campaign_members_owner ON campaign_members (tenant_id, owner_id);
CREATE INDEX ix_campaign_members_updated ON campaign_members (tenant_id, updated_at);

CREATE TABLE users (
    tenant_id TEXT NOT NULL,
    id BLOB NOT NULL,
    owner_id BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    created_by BLOB NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by BLOB NOT NULL,
    version INTEGER NOT NULL,
    deleted_at INTEGER,
    custom TEXT,
    username TEXT,
    display_name TEXT,
    email TEXT,
    user_type TEXT,
    partner_account_id BLOB,
    role_id BLOB,
    team_ids TEXT,
    territory_ids TEXT,
    manager_id BLOB,
    seniority INTEGER,
    active INTEGER,
    PRIMARY KEY (tenant_id, id)
) WITHOUT ROWID;
CREATE INDEX ix_users_owner ON users (tenant_id, owner_id);
CREATE INDEX ix_users_updated ON users (tenant_id, updated_at);
CREATE UNIQUE INDEX ux_users_username ON users (tenant_id, username) WHERE deleted_at IS NULL;

CREATE TABLE teams (
    tenant_id TEXT NOT NULL,
    id BLOB NOT NULL,
    owner_id BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    created_by BLOB NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by BLOB NOT NULL,
    version INTEGER NOT NULL,
    deleted_at INTEGER,
    custom TEXT,
    name TEXT,
    description TEXT,
    PRIMARY KEY (tenant_id, id)
) WITHOUT ROWID;
CREATE INDEX ix_teams_owner ON teams (tenant_id, owner_id);
CREATE INDEX ix_teams_updated ON teams (tenant_id, updated_at);
CREATE UNIQUE INDEX ux_teams_name ON teams (tenant_id, name) WHERE deleted_at IS NULL;

CREATE TABLE roles (
    tenant_id TEXT NOT NULL,
    id BLOB NOT NULL,
    owner_id BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    created_by BLOB NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by BLOB NOT NULL,
    version INTEGER NOT NULL,
    deleted_at INTEGER,
    custom TEXT,
    name TEXT,
    description TEXT,
    policy TEXT,
    PRIMARY KEY (tenant_id, id)
) WITHOUT ROWID;
CREATE INDEX ix_roles_owner ON roles (tenant_id, owner_id);
CREATE INDEX ix_roles_updated ON roles (tenant_id, updated_at);
CREATE UNIQUE INDEX ux_roles_name ON roles (tenant_id, name) WHERE deleted_at IS NULL;

CREATE TABLE territories (
    tenant_id TEXT NOT NULL,
    id BLOB NOT NULL,
    owner_id BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    created_by BLOB NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by BLOB NOT NULL,
    version INTEGER NOT NULL,
    deleted_at INTEGER,
    custom TEXT,
    name TEXT,
    description TEXT,
    parent_id BLOB,
    PRIMARY KEY (tenant_id, id)
) WITHOUT ROWID;
CREATE INDEX ix_territories_owner ON territories (tenant_id, owner_id);
CREATE INDEX ix_territories_updated ON territories (tenant_id, updated_at);
CREATE UNIQUE INDEX ux_territories_name ON territories (tenant_id, name) WHERE deleted_at IS NULL;

CREATE TABLE attachments (
    tenant_id TEXT NOT NULL,
    id BLOB NOT NULL,
    owner_id BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    created_by BLOB NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by BLOB NOT NULL,
    version INTEGER NOT NULL,
    deleted_at INTEGER,
    custom TEXT,
    record_kind TEXT,
    record_id BLOB,
    name TEXT,
    media_type TEXT,
    size_bytes INTEGER,
    checksum TEXT,
    storage TEXT,
    host_ref TEXT,
    description TEXT,
    PRIMARY KEY (tenant_id, id)
) WITHOUT ROWID;
CREATE INDEX ix_attachments_owner ON attachments (tenant_id, owner_id);
CREATE INDEX ix_attachments_updated ON attachments (tenant_id, updated_at);

CREATE TABLE custom_fields (
    tenant_id TEXT NOT NULL,
    id BLOB NOT NULL,
    owner_id BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    created_by BLOB NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by BLOB NOT NULL,
    version INTEGER NOT NULL,
    deleted_at INTEGER,
    custom TEXT,
    entity TEXT,
    name TEXT,
    key TEXT,
    label TEXT,
    field_type TEXT,
    choices TEXT,
    reference_to TEXT,
    required INTEGER,
    archived INTEGER,
    PRIMARY KEY (tenant_id, id)
) WITHOUT ROWID;
CREATE INDEX ix_custom_fields_owner ON custom_fields (tenant_id, owner_id);
CREATE INDEX ix_custom_fields_updated ON custom_fields (tenant_id, updated_at);

CREATE TABLE shares (
    tenant_id TEXT NOT NULL,
    id BLOB NOT NULL,
    owner_id BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    created_by BLOB NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by BLOB NOT NULL,
    version INTEGER NOT NULL,
    deleted_at INTEGER,
    custom TEXT,
    record_kind TEXT,
    record_id BLOB,
    grantee_user_id BLOB,
    grantee_team_id BLOB,
    grantee_account_id BLOB,
    access TEXT,
    expires_at INTEGER,
    PRIMARY KEY (tenant_id, id)
) WITHOUT ROWID;
CREATE INDEX ix_shares_owner ON shares (tenant_id, owner_id);
CREATE INDEX ix_shares_updated ON shares (tenant_id, updated_at);

CREATE TABLE pipelines (
    tenant_id TEXT NOT NULL,
    id BLOB NOT NULL,
    owner_id BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    created_by BLOB NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by BLOB NOT NULL,
    version INTEGER NOT NULL,
    deleted_at INTEGER,
    custom TEXT,
    name TEXT,
    description TEXT,
    stages TEXT,
    is_default INTEGER,
    active INTEGER,
    PRIMARY KEY (tenant_id, id)
) WITHOUT ROWID;
CREATE INDEX ix_pipelines_owner ON pipelines (tenant_id, owner_id);
CREATE INDEX ix_pipelines_updated ON pipelines (tenant_id, updated_at);
CREATE UNIQUE INDEX ux_pipelines_name ON pipelines (tenant_id, name) WHERE deleted_at IS NULL;

CREATE TABLE transitions (
    tenant_id TEXT NOT NULL,
    id BLOB NOT NULL,
    owner_id BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    created_by BLOB NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by BLOB NOT NULL,
    version INTEGER NOT NULL,
    deleted_at INTEGER,
    custom TEXT,
    record_kind TEXT,
    record_id BLOB,
    from_state TEXT,
    to_state TEXT,
    comment TEXT,
    seconds_in_previous INTEGER,
    rule TEXT,
    PRIMARY KEY (tenant_id, id)
) WITHOUT ROWID;
CREATE INDEX ix_transitions_owner ON transitions (tenant_id, owner_id);
CREATE INDEX ix_transitions_updated ON transitions (tenant_id, updated_at);

CREATE TABLE assignment_rules (
    tenant_id TEXT NOT NULL,
    id BLOB NOT NULL,
    owner_id BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    created_by BLOB NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by BLOB NOT NULL,
    version INTEGER NOT NULL,
    deleted_at INTEGER,
    custom TEXT,
    name TEXT,
    entity TEXT,
    position INTEGER,
    active INTEGER,
    conditions TEXT,
    target_user_id BLOB,
    queue_id BLOB,
    min_seniority INTEGER,
    PRIMARY KEY (tenant_id, id)
) WITHOUT ROWID;
CREATE INDEX ix_assignment_rules_owner ON assignment_rules (tenant_id, owner_id);
CREATE INDEX ix_assignment_rules_updated ON assignment_rules (tenant_id, updated_at);

CREATE TABLE queues (
    tenant_id TEXT NOT NULL,
    id BLOB NOT NULL,
    owner_id BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    created_by BLOB NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by BLOB NOT NULL,
    version INTEGER NOT NULL,
    deleted_at INTEGER,
    custom TEXT,
    name TEXT,
    strategy TEXT,
    member_ids TEXT,
    min_seniority INTEGER,
    cursor INTEGER,
    PRIMARY KEY (tenant_id, id)
) WITHOUT ROWID;
CREATE INDEX ix_queues_owner ON queues (tenant_id, owner_id);
CREATE INDEX ix_queues_updated ON queues (tenant_id, updated_at);
CREATE UNIQUE INDEX ux_queues_name ON queues (tenant_id, name) WHERE deleted_at IS NULL;

CREATE TABLE approval_rules (
    tenant_id TEXT NOT NULL,
    id BLOB NOT NULL,
    owner_id BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    created_by BLOB NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by BLOB NOT NULL,
    version INTEGER NOT NULL,
    deleted_at INTEGER,
    custom TEXT,
    name TEXT,
    active INTEGER,
    max_discount_percent INTEGER,
    max_total INTEGER,
    max_total_currency TEXT,
    always INTEGER,
    PRIMARY KEY (tenant_id, id)
) WITHOUT ROWID;
CREATE INDEX ix_approval_rules_owner ON approval_rules (tenant_id, owner_id);
CREATE INDEX ix_approval_rules_updated ON approval_rules (tenant_id, updated_at);

CREATE TABLE follows (
    tenant_id TEXT NOT NULL,
    id BLOB NOT NULL,
    owner_id BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    created_by BLOB NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by BLOB NOT NULL,
    version INTEGER NOT NULL,
    deleted_at INTEGER,
    custom TEXT,
    record_kind TEXT,
    record_id BLOB,
    user_id BLOB,
    PRIMARY KEY (tenant_id, id)
) WITHOUT ROWID;
CREATE INDEX ix_follows_owner ON follows (tenant_id, owner_id);
CREATE INDEX ix_follows_updated ON follows (tenant_id, updated_at);

CREATE TABLE audit_settings (
    tenant_id TEXT NOT NULL,
    id BLOB NOT NULL,
    owner_id BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    created_by BLOB NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by BLOB NOT NULL,
    version INTEGER NOT NULL,
    deleted_at INTEGER,
    custom TEXT,
    entity TEXT,
    enabled INTEGER,
    PRIMARY KEY (tenant_id, id)
) WITHOUT ROWID;
CREATE INDEX ix_audit_settings_owner ON audit_settings (tenant_id, owner_id);
CREATE INDEX ix_audit_settings_updated ON audit_settings (tenant_id, updated_at);
CREATE UNIQUE INDEX ux_audit_settings_entity ON audit_settings (tenant_id, entity) WHERE deleted_at IS NULL;

CREATE TABLE segments (
    tenant_id TEXT NOT NULL,
    id BLOB NOT NULL,
    owner_id BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    created_by BLOB NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by BLOB NOT NULL,
    version INTEGER NOT NULL,
    deleted_at INTEGER,
    custom TEXT,
    name TEXT,
    entity TEXT,
    kind TEXT,
    definition TEXT,
    currency TEXT,
    member_ids TEXT,
    member_count INTEGER,
    last_refreshed_at INTEGER,
    PRIMARY KEY (tenant_id, id)
) WITHOUT ROWID;
CREATE INDEX ix_segments_owner ON segments (tenant_id, owner_id);
CREATE INDEX ix_segments_updated ON segments (tenant_id, updated_at);

-- Hot lookups and lists.
CREATE INDEX ix_accounts_last_order ON accounts (tenant_id, last_order_at);
CREATE INDEX ix_accounts_phone ON accounts (tenant_id, phone) WHERE phone IS NOT NULL;
CREATE INDEX ix_accounts_email ON accounts (tenant_id, email) WHERE email IS NOT NULL;
CREATE INDEX ix_accounts_name ON accounts (tenant_id, name);
CREATE INDEX ix_accounts_territory ON accounts (tenant_id, territory_id);
CREATE INDEX ix_accounts_parent ON accounts (tenant_id, parent_id);
CREATE INDEX ix_contacts_phone ON contacts (tenant_id, phone) WHERE phone IS NOT NULL;
CREATE INDEX ix_contacts_mobile ON contacts (tenant_id, mobile) WHERE mobile IS NOT NULL;
CREATE INDEX ix_contacts_email ON contacts (tenant_id, email) WHERE email IS NOT NULL;
CREATE INDEX ix_contacts_last_name ON contacts (tenant_id, last_name);
CREATE INDEX ix_contacts_account ON contacts (tenant_id, account_id);
CREATE INDEX ix_account_contacts_account ON account_contacts (tenant_id, account_id);
CREATE INDEX ix_account_contacts_contact ON account_contacts (tenant_id, contact_id);
CREATE INDEX ix_leads_phone ON leads (tenant_id, phone) WHERE phone IS NOT NULL;
CREATE INDEX ix_leads_email ON leads (tenant_id, email) WHERE email IS NOT NULL;
CREATE INDEX ix_leads_last_name ON leads (tenant_id, last_name);
CREATE INDEX ix_leads_channel ON leads (tenant_id, channel);
CREATE INDEX ix_leads_status ON leads (tenant_id, status);
CREATE INDEX ix_opportunities_account ON opportunities (tenant_id, account_id);
CREATE INDEX ix_opportunities_stage ON opportunities (tenant_id, stage);
CREATE INDEX ix_opportunities_name ON opportunities (tenant_id, name);
CREATE INDEX ix_opportunities_close ON opportunities (tenant_id, expected_close);
CREATE INDEX ix_products_name ON products (tenant_id, name);
CREATE INDEX ix_quotes_account ON quotes (tenant_id, account_id);
CREATE INDEX ix_quotes_status ON quotes (tenant_id, status);
CREATE INDEX ix_quotes_opportunity ON quotes (tenant_id, opportunity_id);
CREATE INDEX ix_orders_account_ordered ON orders (tenant_id, account_id, ordered_at);
CREATE INDEX ix_orders_status ON orders (tenant_id, status);
CREATE INDEX ix_activities_performer ON activities (tenant_id, performed_by, occurred_at);
CREATE INDEX ix_activities_account ON activities (tenant_id, account_id, occurred_at);
CREATE INDEX ix_activities_contact ON activities (tenant_id, contact_id, occurred_at);
CREATE INDEX ix_activities_lead ON activities (tenant_id, lead_id);
CREATE INDEX ix_activities_opportunity ON activities (tenant_id, opportunity_id);
CREATE INDEX ix_activities_case ON activities (tenant_id, case_id);
CREATE INDEX ix_cases_account ON cases (tenant_id, account_id);
CREATE INDEX ix_cases_contact ON cases (tenant_id, contact_id);
CREATE INDEX ix_cases_status ON cases (tenant_id, status);
CREATE INDEX ix_knowledge_articles_product ON knowledge_articles (tenant_id, product_id);
CREATE INDEX ix_campaign_members_campaign ON campaign_members (tenant_id, campaign_id);
CREATE INDEX ix_campaign_members_contact ON campaign_members (tenant_id, contact_id);
CREATE INDEX ix_campaign_members_lead ON campaign_members (tenant_id, lead_id);
CREATE INDEX ix_users_email ON users (tenant_id, email) WHERE email IS NOT NULL;
CREATE INDEX ix_attachments_record ON attachments (tenant_id, record_kind, record_id);
CREATE INDEX ix_custom_fields_entity ON custom_fields (tenant_id, entity);
CREATE INDEX ix_transitions_record ON transitions (tenant_id, record_kind, record_id);
CREATE INDEX ix_follows_record ON follows (tenant_id, record_kind, record_id);
CREATE INDEX ix_follows_user ON follows (tenant_id, user_id);
CREATE INDEX ix_assignment_rules_entity ON assignment_rules (tenant_id, entity, position);
CREATE INDEX ix_activities_campaign ON activities (tenant_id, campaign_id);
CREATE INDEX ix_shares_record ON shares (tenant_id, record_kind, record_id);
CREATE INDEX ix_shares_user ON shares (tenant_id, grantee_user_id);
CREATE INDEX ix_shares_team ON shares (tenant_id, grantee_team_id);
CREATE INDEX ix_shares_account ON shares (tenant_id, grantee_account_id);

-- The audit log: one hash chain per tenant.
CREATE TABLE audit_log (
    tenant_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    at INTEGER NOT NULL,
    user_id BLOB NOT NULL,
    origin_client TEXT,
    origin_address TEXT,
    origin_location TEXT,
    operation TEXT NOT NULL,
    kind TEXT NOT NULL,
    record_id BLOB NOT NULL,
    version INTEGER NOT NULL,
    changes TEXT NOT NULL,
    comment TEXT,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    PRIMARY KEY (tenant_id, seq)
) WITHOUT ROWID;
CREATE INDEX ix_audit_record ON audit_log (tenant_id, kind, record_id, seq);
CREATE INDEX ix_audit_user ON audit_log (tenant_id, user_id, at);

-- The outbox: events written with the change they describe.
CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id TEXT NOT NULL,
    at INTEGER NOT NULL,
    event_type TEXT NOT NULL,
    kind TEXT NOT NULL,
    record_id BLOB NOT NULL,
    user_id BLOB NOT NULL,
    payload TEXT NOT NULL,
    delivered_at INTEGER
);
CREATE INDEX ix_outbox_pending ON outbox (tenant_id, seq) WHERE delivered_at IS NULL;

-- Planner statistics until the first real ANALYZE: without them SQLite prefers the primary key
-- (tenant_id = ?) plus a filter over any tenant-led secondary index. These say: ten tenants of
-- 100 000 rows each, and a secondary key narrows a tenant to about ten rows.
ANALYZE sqlite_schema;
INSERT INTO sqlite_stat1 (tbl, idx, stat)
SELECT s.tbl_name, s.name,
       CASE
           WHEN s.name LIKE 'ux_%' THEN '1000000 100000 1'
           WHEN (SELECT count(*) FROM pragma_index_info(s.name)) >= 3 THEN '1000000 100000 100 10'
           ELSE '1000000 100000 10'
       END
FROM sqlite_schema AS s
WHERE s.type = 'index' AND s.tbl_name NOT IN ('audit_log', 'outbox') AND s.sql IS NOT NULL;
INSERT INTO sqlite_stat1 (tbl, idx, stat)
SELECT s.name, s.name, '1000000 100000 1'
FROM sqlite_schema AS s
WHERE s.type = 'table' AND s.name NOT IN ('audit_log', 'outbox', 'sqlite_sequence')
  AND s.name NOT LIKE 'sqlite_%';
-- Reload the statistics on this connection.
ANALYZE sqlite_schema;
