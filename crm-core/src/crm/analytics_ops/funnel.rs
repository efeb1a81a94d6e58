//! The sales funnel: how far opportunities get through a pipeline's stages, and how long they take.

use super::*;
use crate::pipeline::Outcome;

/// Which opportunities [`Sales::funnel`](crate::Sales::funnel) follows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunnelOptions {
    /// The pipeline by name (default: the tenant's default pipeline).
    pub pipeline: Option<String>,
    /// Opportunities created at or after this instant (default: any).
    pub from: Option<DateTime<Utc>>,
    /// … and before this one (default: any).
    pub to: Option<DateTime<Utc>>,
}

/// One stage of the funnel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunnelStage {
    /// The stage name.
    pub stage: String,
    /// Opportunities that reached this stage or a later one (skipping a stage passes it).
    pub reached: u64,
    /// Opportunities in this stage now.
    pub current: u64,
    /// `reached` of the next stage / `reached` of this one (`None` for the last stage, or when
    /// none reached this one): the stage-to-stage conversion rate.
    pub conversion_to_next: Option<f64>,
}

/// How the opportunities of one pipeline went through its stages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Funnel {
    /// The pipeline.
    pub pipeline: String,
    /// Its stages in order, the won stages last; lost stages are not steps of the funnel.
    pub stages: Vec<FunnelStage>,
    /// Opportunities followed.
    pub opportunities: u64,
    /// … of which won.
    pub won: u64,
    /// … of which lost.
    pub lost: u64,
    /// Won / (won + lost) (`None` when none closed).
    pub win_rate: Option<f64>,
    /// Mean days from creation to `closed_at` of the won ones (`None` without any).
    pub average_days_to_win: Option<f64>,
    /// Mean days from creation to `closed_at` of the won and lost ones (`None` without any).
    pub average_cycle_days: Option<f64>,
}

impl Engine {
    /// The funnel of a pipeline over the opportunities the user may read (created in the period,
    /// when given): for each stage, how many reached it or a later stage — from the recorded stage
    /// moves, so an opportunity that was in a stage and went back still counts as having reached
    /// it — the stage-to-stage conversion rates, the win rate and the average cycle time.
    /// Refuses (naming the field) when `stage` or `closed_at` is hidden from the user.
    pub(crate) fn funnel(&self, ctx: &Context, opts: &FunnelOptions) -> Result<Funnel> {
        self.require_fields(
            ctx,
            EntityKind::Opportunity,
            &["pipeline", "stage", "closed_at"],
        )?;
        let def = {
            let tx = self.door().read()?;
            self.load_pipeline(tx.view(), &ctx.tenant, opts.pipeline.as_deref())?
        };
        let Some(def) = def else {
            return Err(CrmError::validation(
                "pipeline",
                "reference",
                "the tenant has no default pipeline: name one",
            ));
        };
        // Funnel steps: open stages in order, then the won ones; lost stages are no step.
        let mut steps: Vec<&str> = def
            .stages
            .iter()
            .filter(|s| s.outcome.is_none())
            .map(|s| s.name.as_str())
            .collect();
        steps.extend(
            def.stages
                .iter()
                .filter(|s| s.outcome == Some(Outcome::Won))
                .map(|s| s.name.as_str()),
        );
        let outcome = |stage: &str| def.stage(stage).and_then(|s| s.outcome);
        let mut filter = Filter::cmp("pipeline", Op::Eq, def.name.as_str());
        if let Some(from) = opts.from {
            filter = filter.and(Filter::cmp("created_at", Op::Ge, from));
        }
        if let Some(to) = opts.to {
            filter = filter.and(Filter::cmp("created_at", Op::Lt, to));
        }
        let opps = self.scan(
            ctx,
            EntityKind::Opportunity,
            Some(filter),
            &["stage", "closed_at"],
        )?;
        // Every stage each opportunity has been in: its moves, and where it is now.
        let mut visited: HashMap<RecordId, BTreeSet<String>> = opps
            .iter()
            .map(|o| {
                let now: BTreeSet<String> =
                    o.text("stage").map(str::to_owned).into_iter().collect();
                (o.meta.id, now)
            })
            .collect();
        if !visited.is_empty() {
            let q = Query::all(EntityKind::Transition, ctx.tenant.clone()).and(
                super::super::process::eq(EntityKind::Transition, "record_kind", "opportunity")?,
            );
            // Transitions of the opportunities listed above (read through the scoped reader); the
            // others are skipped below.
            for t in self.door().read()?.unscoped(Why::OfVisible).query(&q)? {
                let Some(seen) = t.reference("record_id").and_then(|id| visited.get_mut(&id))
                else {
                    continue;
                };
                for s in [t.text("from_state"), t.text("to_state")]
                    .into_iter()
                    .flatten()
                {
                    seen.insert(s.to_owned());
                }
            }
        }
        let mut reached = vec![0u64; steps.len()];
        let mut current = vec![0u64; steps.len()];
        let (mut won, mut lost) = (0u64, 0u64);
        let (mut win_days, mut close_days) = (Vec::new(), Vec::new());
        for o in &opps {
            let furthest = visited
                .get(&o.meta.id)
                .into_iter()
                .flatten()
                .filter_map(|s| steps.iter().position(|x| x == s))
                .max();
            if let Some(k) = furthest {
                reached.iter_mut().take(k + 1).for_each(|n| *n += 1);
            }
            let stage = o.text("stage").unwrap_or_default();
            if let Some(k) = steps.iter().position(|x| *x == stage) {
                current[k] += 1;
            }
            let days = o
                .get("closed_at")
                .as_timestamp()
                .map(|c| (c - o.meta.created_at).num_seconds() as f64 / 86_400.0);
            match outcome(stage) {
                Some(Outcome::Won) => {
                    won += 1;
                    win_days.extend(days);
                    close_days.extend(days);
                }
                Some(Outcome::Lost) => {
                    lost += 1;
                    close_days.extend(days);
                }
                None => {}
            }
        }
        let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
        let stages = steps
            .iter()
            .enumerate()
            .map(|(k, s)| FunnelStage {
                stage: (*s).to_owned(),
                reached: reached[k],
                current: current[k],
                conversion_to_next: reached
                    .get(k + 1)
                    .filter(|_| reached[k] > 0)
                    .map(|next| *next as f64 / reached[k] as f64),
            })
            .collect();
        Ok(Funnel {
            pipeline: def.name.clone(),
            stages,
            opportunities: opps.len() as u64,
            won,
            lost,
            win_rate: (won + lost > 0).then(|| won as f64 / (won + lost) as f64),
            average_days_to_win: mean(&win_days),
            average_cycle_days: mean(&close_days),
        })
    }
}
