//! `forget`: apply a retention policy (restic's semantics), or name the
//! snapshots to drop; forgotten snapshots go to the trash, which
//! `undo_forget` empties back until a gc after the grace period.

use belay_store::forget::{self, ForgetPlan};
use belay_store::retention::Policy;
use belay_store::{ObjectId, Repo, rev};
use serde::Serialize;

use crate::error::Result;

/// Which snapshots go.
pub enum ForgetWhat<'a> {
    /// These revisions.
    Snapshots(Vec<String>),
    /// One policy for every source (or `source`).
    Policy(Policy),
    /// A policy per source (a config file's `[retention.NAME]`), described
    /// as `described`.
    PerSource {
        policy_for: &'a dyn Fn(&str) -> Option<Policy>,
        described: String,
    },
}

/// What `forget` is asked to do.
pub struct ForgetOptions<'a> {
    pub what: ForgetWhat<'a>,
    /// Only this source's snapshots.
    pub source: Option<String>,
    /// Say what would go and change nothing.
    pub dry_run: bool,
}

/// One snapshot's fate.
#[derive(Clone, Debug, Serialize)]
pub struct SnapshotDecision {
    #[serde(serialize_with = "crate::json::id")]
    pub id: ObjectId,
    /// RFC 3339.
    pub time: String,
    #[serde(skip)]
    pub time_ns: i64,
    /// `keep` or `remove`.
    pub action: &'static str,
    /// Every rule that keeps it; empty when it goes.
    pub reasons: Vec<String>,
}

impl SnapshotDecision {
    pub fn keep(&self) -> bool {
        self.action == "keep"
    }
}

/// One source's plan.
#[derive(Clone, Debug, Serialize)]
pub struct SourceDecisions {
    pub source: String,
    pub policy: String,
    #[serde(serialize_with = "crate::json::opt_id")]
    pub head_before: Option<ObjectId>,
    #[serde(serialize_with = "crate::json::opt_id")]
    pub head_after: Option<ObjectId>,
    /// Newest first.
    pub snapshots: Vec<SnapshotDecision>,
}

/// What `forget` did (or would do); `--json` prints it.
#[derive(Clone, Debug, Serialize)]
pub struct ForgetResult {
    pub dry_run: bool,
    /// The policy applied, described.
    pub policy: String,
    pub kept: usize,
    pub removed: usize,
    pub sources: Vec<SourceDecisions>,
    /// The snapshots removed.
    #[serde(skip)]
    pub removed_ids: Vec<ObjectId>,
}

impl ForgetResult {
    fn new(plan: &ForgetPlan, policy: String, dry_run: bool) -> ForgetResult {
        ForgetResult {
            dry_run,
            policy,
            kept: plan.kept_count(),
            removed: plan.removed().count(),
            removed_ids: plan.removed().map(|d| d.id).collect(),
            sources: plan
                .sources
                .iter()
                .map(|s| SourceDecisions {
                    source: s.source.clone(),
                    policy: s.policy.clone(),
                    head_before: s.head_before,
                    head_after: s.head_after,
                    snapshots: s
                        .decisions
                        .iter()
                        .map(|d| SnapshotDecision {
                            id: d.id,
                            time: crate::json::rfc3339(d.time_ns),
                            time_ns: d.time_ns,
                            action: if d.keep { "keep" } else { "remove" },
                            reasons: d.reasons.clone(),
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

/// Plan what goes and, unless `dry_run`, move it to the trash. Retention
/// runs by this host's clock (boards' clocks often start at 2000-01-01).
pub fn forget(repo: &Repo, opts: &ForgetOptions) -> Result<ForgetResult> {
    let tz = jiff::tz::TimeZone::system();
    let source = opts.source.as_deref();
    let (plan, described) = match &opts.what {
        ForgetWhat::Snapshots(revs) => {
            let ids = revs
                .iter()
                .map(|r| rev::resolve(repo, r))
                .collect::<belay_store::Result<Vec<ObjectId>>>()?;
            (forget::plan_ids(repo, &ids)?, "named snapshots".to_string())
        }
        ForgetWhat::PerSource {
            policy_for,
            described,
        } => (
            forget::plan_per_source(repo, policy_for, source, &tz)?,
            described.clone(),
        ),
        ForgetWhat::Policy(policy) => (forget::plan(repo, policy, source, &tz)?, policy.describe()),
    };
    if !opts.dry_run {
        forget::execute(repo, &plan)?;
    }
    Ok(ForgetResult::new(&plan, described, opts.dry_run))
}

/// A source's head put back by `undo_forget`.
#[derive(Clone, Debug, Serialize)]
pub struct HeadBack {
    pub source: String,
    /// Where it pointed before the undo, and where it points now.
    pub before: Option<String>,
    pub after: Option<String>,
}

/// What `undo_forget` did; `--json` prints it.
#[derive(Clone, Debug, Serialize)]
pub struct UndoResult {
    #[serde(serialize_with = "crate::json::ids")]
    pub restored: Vec<ObjectId>,
    /// Snapshots a gc already removed.
    #[serde(serialize_with = "crate::json::ids")]
    pub lost: Vec<ObjectId>,
    pub heads: Vec<HeadBack>,
}

/// Bring back what the last forget removed.
pub fn undo_forget(repo: &Repo) -> Result<UndoResult> {
    let r = forget::undo(repo)?;
    Ok(UndoResult {
        restored: r.restored,
        lost: r.lost,
        // The store records the forget's move (before → after); undoing it
        // moves each head back.
        heads: r
            .heads
            .into_iter()
            .map(|h| HeadBack {
                source: h.source,
                before: h.after,
                after: h.before,
            })
            .collect(),
    })
}
