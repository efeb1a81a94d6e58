//! Lifecycles as pure state machines: leads, quotes, cases, and opportunity pipelines defined in data.
//!
//! Nothing here touches storage: the `Crm` facade loads the record, asks the machine whether a move is
//! allowed, and writes the change, its [`crate::EntityKind::Transition`] record, its audit entry and its
//! outbox events in one transaction. A refused move is a `CrmError` of kind `invalid_transition` whose
//! `rule` names the guard: `wrong_state`, `missing_field`, `role`, `approval_missing`, `same_person`,
//! `reason_required`.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::error::{CrmError, Result};

/// Guard: the move is not allowed from the current state.
pub const RULE_WRONG_STATE: &str = "wrong_state";
/// Guard: a field the target state needs is empty.
pub const RULE_MISSING_FIELD: &str = "missing_field";
/// Guard: the acting user's role may not make this move.
pub const RULE_ROLE: &str = "role";
/// Guard: the quote needs an approval first.
pub const RULE_APPROVAL_MISSING: &str = "approval_missing";
/// Guard: the author of a quote may not approve it.
pub const RULE_SAME_PERSON: &str = "same_person";
/// Guard: the move needs a reason (disqualifying, rejecting, losing).
pub const RULE_REASON_REQUIRED: &str = "reason_required";

/// A fixed lifecycle: its states and the allowed edges between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateMachine {
    /// The entity type name (`lead`, `quote`, `case`).
    pub entity: &'static str,
    /// The states, in lifecycle order; the first is the initial one.
    pub states: &'static [&'static str],
    /// The allowed moves `(from, to)`.
    pub edges: &'static [(&'static str, &'static str)],
}

/// Leads: `new → contacted → qualified → converted`, and `disqualified` from any open state.
/// `new → qualified` is allowed (a call can qualify at once). `converted` is reached only by
/// converting the lead; `disqualified` needs a reason.
pub const LEAD: StateMachine = StateMachine {
    entity: "lead",
    states: &["new", "contacted", "qualified", "converted", "disqualified"],
    edges: &[
        ("new", "contacted"),
        ("new", "qualified"),
        ("contacted", "qualified"),
        ("qualified", "converted"),
        ("new", "disqualified"),
        ("contacted", "disqualified"),
        ("qualified", "disqualified"),
    ],
};

/// Quotes: `draft → pending_approval → approved → sent → accepted | rejected | expired`. A draft that
/// needs no approval goes straight to `approved`; changing the content of a pending, approved or
/// rejected quote sends it back to `draft`.
pub const QUOTE: StateMachine = StateMachine {
    entity: "quote",
    states: &[
        "draft",
        "pending_approval",
        "approved",
        "sent",
        "accepted",
        "rejected",
        "expired",
    ],
    edges: &[
        ("draft", "pending_approval"),
        ("draft", "approved"),
        ("pending_approval", "approved"),
        ("pending_approval", "rejected"),
        ("pending_approval", "draft"),
        ("approved", "sent"),
        ("approved", "draft"),
        ("approved", "expired"),
        ("sent", "accepted"),
        ("sent", "rejected"),
        ("sent", "expired"),
        ("rejected", "draft"),
    ],
};

/// Cases: `new → assigned → in_progress ⇄ waiting_on_customer → resolved → closed`; a resolved or
/// closed case can be reopened (back to `in_progress`). `new → in_progress` is allowed (an agent
/// picks the case up directly).
pub const CASE: StateMachine = StateMachine {
    entity: "case",
    states: &[
        "new",
        "assigned",
        "in_progress",
        "waiting_on_customer",
        "resolved",
        "closed",
    ],
    edges: &[
        ("new", "assigned"),
        ("new", "in_progress"),
        ("assigned", "in_progress"),
        ("in_progress", "waiting_on_customer"),
        ("waiting_on_customer", "in_progress"),
        ("in_progress", "resolved"),
        ("waiting_on_customer", "resolved"),
        ("resolved", "closed"),
        ("resolved", "in_progress"),
        ("closed", "in_progress"),
    ],
};

impl StateMachine {
    /// Whether `state` is a state of this lifecycle.
    pub fn has_state(&self, state: &str) -> bool {
        self.states.contains(&state)
    }

    /// Whether the move `from → to` is an edge.
    pub fn allows(&self, from: &str, to: &str) -> bool {
        self.edges.iter().any(|(f, t)| *f == from && *t == to)
    }

    /// The states reachable in one move from `from`.
    pub fn targets(&self, from: &str) -> Vec<&'static str> {
        self.edges
            .iter()
            .filter(|(f, _)| *f == from)
            .map(|(_, t)| *t)
            .collect()
    }

    /// Whether no move leaves `state`.
    pub fn is_terminal(&self, state: &str) -> bool {
        self.targets(state).is_empty()
    }

    /// Checks the move `from → to`; refuses with `wrong_state` otherwise.
    pub fn check(&self, from: &str, to: &str) -> Result<()> {
        if !self.has_state(to) {
            return Err(CrmError::invalid_transition(
                self.entity,
                RULE_WRONG_STATE,
                format!("`{to}` is not a {} state", self.entity),
            ));
        }
        if self.allows(from, to) {
            Ok(())
        } else {
            Err(CrmError::invalid_transition(
                self.entity,
                RULE_WRONG_STATE,
                format!("a {} cannot move from `{from}` to `{to}`", self.entity),
            ))
        }
    }
}

/// What closing an opportunity in a stage means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The deal is won.
    Won,
    /// The deal is lost (a `lost_reason` is required).
    Lost,
}

/// One stage of an opportunity pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stage {
    /// The stage name (unique within the pipeline).
    pub name: String,
    /// Win probability in percent, 0 to 100; copied to the opportunity on entry.
    #[serde(default)]
    pub probability: Decimal,
    /// Forecast category copied to the opportunity on entry (`pipeline`, `best_case`, `commit`,
    /// `closed`, `omitted`). Defaults to `closed` for stages with an outcome, else `pipeline`.
    #[serde(default)]
    pub forecast_category: Option<String>,
    /// Fields the opportunity must have to enter this stage.
    #[serde(default)]
    pub required_fields: Vec<String>,
    /// The stages this one may move to. Absent: any other stage, unless this stage has an outcome
    /// (closed stages are final unless `next` says otherwise).
    #[serde(default)]
    pub next: Option<Vec<String>>,
    /// Role names allowed to move an opportunity into this stage. Absent: anyone who may update it.
    #[serde(default)]
    pub roles: Option<Vec<String>>,
    /// Whether entering this stage closes the deal.
    #[serde(default)]
    pub outcome: Option<Outcome>,
}

impl Stage {
    /// The forecast category of the stage.
    pub fn forecast(&self) -> &str {
        match (&self.forecast_category, self.outcome) {
            (Some(c), _) => c,
            (None, Some(_)) => "closed",
            (None, None) => "pipeline",
        }
    }
}

/// An opportunity pipeline: ordered stages, read from a Pipeline record's `stages` JSON (an array of
/// [`Stage`] objects).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineDef {
    /// The pipeline's name.
    pub name: String,
    /// Its stages in order; the first is where new opportunities start.
    pub stages: Vec<Stage>,
}

/// What the guards of a stage move need to know about the opportunity and the actor.
#[derive(Debug, Clone, Copy)]
pub struct MoveRequest<'a> {
    /// The current stage (`None` when the opportunity has none yet).
    pub from: Option<&'a str>,
    /// The target stage.
    pub to: &'a str,
    /// The acting user's role name.
    pub role: Option<&'a str>,
    /// The reason given for losing, if any.
    pub lost_reason: Option<&'a str>,
}

const FORECASTS: &[&str] = &["pipeline", "best_case", "commit", "closed", "omitted"];

impl PipelineDef {
    /// Reads and checks a pipeline definition (`stages` JSON).
    pub fn from_json(name: &str, stages: &serde_json::Value) -> Result<PipelineDef> {
        let stages: Vec<Stage> = serde_json::from_value(stages.clone()).map_err(|e| {
            CrmError::validation(
                "stages",
                "pipeline_syntax",
                format!("malformed pipeline stages: {e}"),
            )
        })?;
        if stages.is_empty() {
            return Err(CrmError::validation(
                "stages",
                "pipeline_syntax",
                "a pipeline needs at least one stage",
            ));
        }
        for (i, s) in stages.iter().enumerate() {
            if s.name.is_empty() || stages.iter().take(i).any(|o| o.name == s.name) {
                return Err(CrmError::validation(
                    "stages",
                    "pipeline_syntax",
                    "stage names must be unique and not empty",
                ));
            }
            if s.probability < Decimal::ZERO || s.probability > Decimal::from(100) {
                return Err(CrmError::validation(
                    "stages",
                    "pipeline_syntax",
                    "stage probability must be between 0 and 100",
                ));
            }
            if !FORECASTS.contains(&s.forecast()) {
                return Err(CrmError::validation(
                    "stages",
                    "pipeline_syntax",
                    "unknown forecast category",
                ));
            }
            for n in s.next.iter().flatten() {
                if !stages.iter().any(|o| &o.name == n) {
                    return Err(CrmError::validation(
                        "stages",
                        "pipeline_syntax",
                        format!("stage `{}` names an unknown next stage", s.name),
                    ));
                }
            }
        }
        Ok(PipelineDef {
            name: name.to_owned(),
            stages,
        })
    }

    /// The stage called `name`.
    pub fn stage(&self, name: &str) -> Option<&Stage> {
        self.stages.iter().find(|s| s.name == name)
    }

    /// The first stage.
    pub fn first(&self) -> Option<&Stage> {
        self.stages.first()
    }

    /// Whether the move `from → to` is an allowed edge (ignoring roles, fields and reasons).
    pub fn allows(&self, from: Option<&str>, to: &str) -> bool {
        let Some(target) = self.stage(to) else {
            return false;
        };
        let Some(from) = from.and_then(|f| self.stage(f)) else {
            // No (or an unknown) current stage: any stage may be entered.
            return true;
        };
        if from.name == target.name {
            return false;
        }
        match &from.next {
            Some(next) => next.iter().any(|n| n == to),
            None => from.outcome.is_none(),
        }
    }

    /// Checks a move against every guard, in order: `wrong_state`, `role`, `missing_field`,
    /// `reason_required`. `has_field` tells whether the opportunity has a value for a field.
    pub fn check_move(
        &self,
        m: &MoveRequest<'_>,
        has_field: &dyn Fn(&str) -> bool,
    ) -> Result<&Stage> {
        let entity = "opportunity";
        let target = self.stage(m.to).ok_or_else(|| {
            CrmError::invalid_transition(
                entity,
                RULE_WRONG_STATE,
                format!("pipeline `{}` has no stage `{}`", self.name, m.to),
            )
        })?;
        if !self.allows(m.from, m.to) {
            return Err(CrmError::invalid_transition(
                entity,
                RULE_WRONG_STATE,
                format!("cannot move from `{}` to `{}`", m.from.unwrap_or("-"), m.to),
            ));
        }
        if let Some(roles) = &target.roles {
            if !m.role.is_some_and(|r| roles.iter().any(|x| x == r)) {
                return Err(CrmError::invalid_transition(
                    entity,
                    RULE_ROLE,
                    format!("the user's role may not move deals into `{}`", m.to),
                ));
            }
        }
        for f in &target.required_fields {
            if !has_field(f) {
                let mut e = CrmError::invalid_transition(
                    entity,
                    RULE_MISSING_FIELD,
                    format!("stage `{}` needs field `{f}`", m.to),
                );
                e.field = Some(f.clone());
                return Err(e);
            }
        }
        if target.outcome == Some(Outcome::Lost)
            && m.lost_reason.is_none_or(|r| r.trim().is_empty())
        {
            let mut e = CrmError::invalid_transition(
                entity,
                RULE_REASON_REQUIRED,
                "losing a deal needs a reason",
            );
            e.field = Some("lost_reason".into());
            return Err(e);
        }
        Ok(target)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn machines_name_only_their_states() {
        for m in [LEAD, QUOTE, CASE] {
            for (f, t) in m.edges {
                assert!(m.has_state(f) && m.has_state(t), "{} {f}->{t}", m.entity);
            }
        }
        assert!(LEAD.is_terminal("converted"));
        assert!(CASE.allows("closed", "in_progress"));
        assert_eq!(
            LEAD.check("new", "converted").unwrap_err().rule.as_deref(),
            Some(RULE_WRONG_STATE)
        );
    }

    #[test]
    fn pipeline_guards() {
        let p = PipelineDef::from_json(
            "sales",
            &serde_json::json!([
                {"name": "prospecting", "probability": 10},
                {"name": "proposal", "probability": 50, "required_fields": ["amount"], "forecast_category": "best_case"},
                {"name": "won", "probability": 100, "outcome": "won", "roles": ["director"]},
                {"name": "lost", "probability": 0, "outcome": "lost"}
            ]),
        )
        .unwrap();
        let m = |from, to, role, reason| MoveRequest {
            from,
            to,
            role,
            lost_reason: reason,
        };
        let rule = |r: Result<&Stage>| r.unwrap_err().rule.unwrap();
        assert_eq!(
            rule(p.check_move(&m(Some("prospecting"), "proposal", None, None), &|_| false)),
            "missing_field"
        );
        assert!(p
            .check_move(&m(Some("prospecting"), "proposal", None, None), &|_| true)
            .is_ok());
        assert_eq!(
            rule(p.check_move(&m(Some("proposal"), "won", Some("rep"), None), &|_| true)),
            "role"
        );
        assert_eq!(
            rule(p.check_move(&m(Some("proposal"), "lost", None, None), &|_| true)),
            "reason_required"
        );
        assert_eq!(
            rule(p.check_move(&m(Some("lost"), "proposal", None, None), &|_| true)),
            "wrong_state"
        );
        assert_eq!(p.stage("lost").unwrap().forecast(), "closed");
    }
}
