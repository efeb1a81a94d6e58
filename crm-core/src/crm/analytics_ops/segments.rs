//! The filter language and segments: parse, count, list, refresh.

use super::*;

impl Engine {
    // ----------------------------------------------------------------- filter language

    /// Parses filter-language text over `kind` into a [`Filter`], checked against the schema and the
    /// user's field rules. Errors are `InvalidQuery` naming the field, with the column in the message.
    /// Amounts without a currency are in `currency`.
    pub(crate) fn parse_filter(
        &self,
        ctx: &Context,
        kind: EntityKind,
        text: &str,
        currency: Option<Currency>,
    ) -> Result<Filter> {
        let (p, cache) = self.principal(ctx)?;
        self.filter_in(&p, &cache, kind, text, currency)
    }

    /// [`Engine::parse_filter`] for `p` with the custom fields of `cache`.
    fn filter_in(
        &self,
        p: &crate::access::Principal,
        cache: &TenantCache,
        kind: EntityKind,
        text: &str,
        currency: Option<Currency>,
    ) -> Result<Filter> {
        let expr = segment::parse(text)?;
        let env = CrmEnv {
            resolver: Resolver {
                kind,
                principal: p,
                customs: &cache.customs,
                phones: &self.phones,
            },
            now: self.now(),
            currency,
        };
        expr.to_filter(&env)
    }

    /// Refuses (naming the field) when one of `fields` of `kind` is hidden from the user.
    pub(crate) fn require_fields(
        &self,
        ctx: &Context,
        kind: EntityKind,
        fields: &[&str],
    ) -> Result<()> {
        let (p, cache) = self.principal(ctx)?;
        let resolver = Resolver {
            kind,
            principal: &p,
            customs: &cache.customs,
            phones: &self.phones,
        };
        for f in fields {
            resolver.column(f)?;
        }
        Ok(())
    }

    /// Every record of `kind` matching `filter` that the user may read, with only the built-in
    /// `fields` (plus meta and custom values), redacted like a list, in one statement: the input of
    /// aggregates over the whole customer base.
    pub(crate) fn scan(
        &self,
        ctx: &Context,
        kind: EntityKind,
        filter: Option<Filter>,
        fields: &[&'static str],
    ) -> Result<Vec<Record>> {
        let (p, cache) = self.principal(ctx)?;
        self.scan_in(
            Reader::Store(self.door()),
            &p,
            &cache,
            ctx,
            kind,
            filter,
            fields,
        )
    }

    /// [`Engine::scan`] through `reader`.
    #[allow(clippy::too_many_arguments)] // reader, principal, configuration, context and the scan
    pub(crate) fn scan_in(
        &self,
        reader: Reader<'_>,
        p: &Principal,
        cache: &TenantCache,
        ctx: &Context,
        kind: EntityKind,
        filter: Option<Filter>,
        fields: &[&'static str],
    ) -> Result<Vec<Record>> {
        self.require(p, Action::Read, kind)?;
        let req = ListRequest {
            filter,
            ..Default::default()
        };
        let mut q = self.build_query(p, cache, ctx, kind, &req)?;
        q.fields = Some(fields.to_vec());
        let who = self.who(p, cache, ctx);
        let rows = reader.with_once(|tx| tx.scoped(who).query(q, Action::Read))?;
        Ok(rows
            .into_iter()
            .map(|r| self.present(p, cache, r))
            .collect())
    }

    /// Every record of `kind` matching `filter` that the user may read, as its id and the values of
    /// `fields` (built-in fields, or [`crate::store::OWNER_FIELD`] for the owner), handed to `each` in one
    /// narrow store read — no records. A field hidden from the user reads as `Null`, as in a
    /// redacted list.
    pub(crate) fn scan_narrow(
        &self,
        ctx: &Context,
        kind: EntityKind,
        filter: Option<Filter>,
        fields: &[&'static str],
        each: &mut dyn FnMut(RecordId, &[Value]),
    ) -> Result<()> {
        let (p, cache) = self.principal(ctx)?;
        self.require(&p, Action::Read, kind)?;
        let req = ListRequest {
            filter,
            ..Default::default()
        };
        let q = self.build_query(&p, &cache, ctx, kind, &req)?;
        let hidden: Vec<bool> = fields
            .iter()
            .map(|f| {
                *f != crate::store::OWNER_FIELD
                    && crate::access::field_access(&p, kind, f)
                        == Some(crate::access::FieldAccess::Hidden)
            })
            .collect();
        let mut shown: Vec<Value> = Vec::with_capacity(fields.len());
        let tx = self.door().read()?;
        tx.scoped(self.who(&p, &cache, ctx))
            .scan_fields(q, fields, &mut |id, v| {
                shown.clear();
                shown.extend(
                    v.iter()
                        .zip(&hidden)
                        .map(|(v, h)| if *h { Value::Null } else { v.clone() }),
                );
                each(id, &shown);
                Ok(())
            })
    }

    /// Every record of `kind` matching `filter` that the user may read (paged internally).
    pub(crate) fn list_all(
        &self,
        ctx: &Context,
        kind: EntityKind,
        filter: Option<Filter>,
    ) -> Result<Vec<Record>> {
        let mut req = ListRequest {
            filter,
            limit: Some(MAX_PAGE),
            ..Default::default()
        };
        let mut out = Vec::new();
        loop {
            let page = self.list(ctx, kind, &req)?;
            out.extend(page.items);
            match page.next {
                Some(n) => req.after = Some(n),
                None => return Ok(out),
            }
        }
    }

    // ----------------------------------------------------------------- segments

    /// The entity type and filter of a segment the user may read.
    pub(crate) fn segment_filter(
        &self,
        ctx: &Context,
        id: RecordId,
    ) -> Result<(EntityKind, Filter)> {
        let (kind, f) = self.member_filter(ctx, id)?;
        // A static segment's filter lists its members: only those the user may read are named.
        let f = match f {
            Filter::In { field, values } if field == "id" => {
                let (p, cache) = self.principal(ctx)?;
                let ids: Vec<Value> = self
                    .scan_in(
                        Reader::Store(self.door()),
                        &p,
                        &cache,
                        ctx,
                        kind,
                        Some(Filter::In {
                            field: "id".into(),
                            values,
                        }),
                        &[],
                    )?
                    .into_iter()
                    .map(|r| Value::Ref(r.meta.id))
                    .collect();
                Filter::In { field, values: ids }
            }
            f => f,
        };
        Ok((kind, f))
    }

    /// The entity type and the filter selecting a segment's members (a static segment's whole
    /// stored list): what the scoped queries of `count`, `members` and `refresh` run.
    fn member_filter(&self, ctx: &Context, id: RecordId) -> Result<(EntityKind, Filter)> {
        let seg = self.stored_segment(ctx, id)?;
        self.filter_of(ctx, &seg)
    }

    /// A segment the user may read, as stored: a static segment's member list is its definition
    /// (the list query that runs it applies the user's scope), even where the stored list itself is
    /// hidden from them.
    fn stored_segment(&self, ctx: &Context, id: RecordId) -> Result<Record> {
        let (p, cache) = self.principal(ctx)?;
        self.require(&p, Action::Read, EntityKind::Segment)
            .map_err(|_| CrmError::not_found("segment", id))?;
        let tx = self.door().read()?;
        self.fetch_visible(
            tx.view(),
            &p,
            &cache,
            ctx,
            EntityKind::Segment,
            id,
            Action::Read,
        )
    }

    pub(crate) fn filter_of(&self, ctx: &Context, seg: &Record) -> Result<(EntityKind, Filter)> {
        if seg.text("kind") == Some("static") {
            let kind: EntityKind = seg.text("entity").unwrap_or("account").parse()?;
            return Ok((
                kind,
                Filter::In {
                    field: "id".into(),
                    values: member_ids(seg).into_iter().map(Value::Ref).collect(),
                },
            ));
        }
        let (p, cache) = self.principal(ctx)?;
        self.definition_filter(&p, &cache, seg)
    }

    /// A dynamic segment's entity type and its definition as a filter for `p`; errors are named
    /// under `definition`.
    fn definition_filter(
        &self,
        p: &crate::access::Principal,
        cache: &TenantCache,
        seg: &Record,
    ) -> Result<(EntityKind, Filter)> {
        let kind: EntityKind = seg.text("entity").unwrap_or("account").parse()?;
        let currency = match seg.get("currency") {
            Value::Text(c) => Some(c.parse::<Currency>()?),
            _ => None,
        };
        let text = seg.text("definition").unwrap_or_default();
        let f = self
            .filter_in(p, cache, kind, text, currency)
            .map_err(|e| e.in_field("definition"))?;
        Ok((kind, f))
    }

    /// Checks a dynamic segment's definition as it is saved, against the schema and the saving
    /// user's field rules (as when it is evaluated): an unknown or hidden field, a type mismatch or a
    /// syntax error is refused, named under `definition` with its position in the text. A dynamic
    /// segment needs a definition; a static one lists its members instead.
    pub(crate) fn check_segment(
        &self,
        cache: &TenantCache,
        ctx: &Context,
        seg: &Record,
    ) -> Result<()> {
        if seg.text("kind") == Some("static") {
            return Ok(());
        }
        if seg.text("definition").is_none_or(|t| t.trim().is_empty()) {
            return Err(CrmError::validation(
                "definition",
                "required",
                "a dynamic segment needs a definition (filter-language text)",
            ));
        }
        let p = principal_in(cache, ctx)?;
        self.definition_filter(&p, cache, seg).map(|_| ())
    }

    /// How many records the user may read are in the segment now (dynamic: evaluated now).
    pub(crate) fn segment_count(&self, ctx: &Context, id: RecordId) -> Result<u64> {
        let (kind, f) = self.member_filter(ctx, id)?;
        self.count(ctx, kind, Some(&f))
    }

    /// A page of the segment's members the user may read; `req.filter` narrows further, sort and
    /// keyset paging as in [`Engine::list`].
    pub(crate) fn segment_members(
        &self,
        ctx: &Context,
        id: RecordId,
        req: &ListRequest,
    ) -> Result<Page<Record>> {
        let (kind, f) = self.member_filter(ctx, id)?;
        if let Some(g) = &req.filter {
            g.check_limits()?;
        }
        let mut req = req.clone();
        req.filter = Some(match req.filter.take() {
            Some(g) => f.and(g),
            None => f,
        });
        self.list(ctx, kind, &req)
    }

    /// Materialises a dynamic segment's members (those the acting user may read) into `member_ids`,
    /// with `member_count` and `last_refreshed_at`, recorded as an audited update; reports who entered
    /// and left since the previous refresh. A static segment's members are only recounted.
    pub(crate) fn refresh_segment(&self, ctx: &Context, id: RecordId) -> Result<SegmentDiff> {
        let seg = self.stored_segment(ctx, id)?;
        let (kind, f) = self.filter_of(ctx, &seg)?;
        // The stored members are everyone's view of the segment: only a user who reads every record
        // of its kind computes them (anyone else would store their own narrower view, and the
        // members who left would name records they may not read).
        let (p, _) = self.principal(ctx)?;
        if !crate::access::sees_members(&p, kind) {
            return Err(CrmError::permission_denied(
                "refresh",
                "segment",
                "derived_scope",
            ));
        }
        let now_ids: BTreeSet<RecordId> = self
            .list_all(ctx, kind, Some(f))?
            .iter()
            .map(|r| r.meta.id)
            .collect();
        let before: BTreeSet<RecordId> = member_ids(&seg).into_iter().collect();
        let diff = SegmentDiff {
            entered: now_ids.difference(&before).copied().collect(),
            left: before.difference(&now_ids).copied().collect(),
            member_count: now_ids.len() as u64,
        };
        let (p, cache) = self.principal(ctx)?;
        let mut uow = self.begin(ctx, self.now())?;
        let old =
            self.fetch_for_write(&uow, &p, &cache, EntityKind::Segment, id, Action::Update)?;
        let mut new = old.clone();
        if old.text("kind") != Some("static") {
            new.fields.insert(
                "member_ids".into(),
                Value::Json(serde_json::Value::Array(
                    now_ids
                        .iter()
                        .map(|i| serde_json::Value::String(i.to_string()))
                        .collect(),
                )),
            );
        }
        new.fields.insert(
            "member_count".into(),
            Value::Int(i64::try_from(now_ids.len()).unwrap_or(i64::MAX)),
        );
        new.fields
            .insert("last_refreshed_at".into(), Value::Timestamp(uow.now));
        uow.replace(&old, new, Operation::Update, "segment.refreshed", None)?;
        uow.commit(self)?;
        Ok(diff)
    }
}
