//! Run controls as values: kill switches, read-only mode, and per-run budget usage.
//!
//! The store holds them so that every worker of every process sees the same switches and
//! counters; the gate consults them on each `call` and `resume`.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::call::ToolCall;

use crate::policy::Budgets;

/// What a kill switch stops: everything, one tenant, or one tool.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "scope", content = "name")]
pub enum KillScope {
    /// Every call.
    Global,
    /// Calls of this tenant.
    Tenant(String),
    /// Calls of this tool.
    Tool(String),
}

impl KillScope {
    /// Whether this switch stops `call`.
    pub fn covers(&self, call: &ToolCall) -> bool {
        match self {
            KillScope::Global => true,
            KillScope::Tenant(t) => call.tenant() == Some(t.as_str()),
            KillScope::Tool(t) => call.tool() == t,
        }
    }
}

impl fmt::Display for KillScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KillScope::Global => f.write_str("global"),
            KillScope::Tenant(t) => write!(f, "tenant `{t}`"),
            KillScope::Tool(t) => write!(f, "tool `{t}`"),
        }
    }
}

/// The run-time switches a store holds, flipped by any process.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Switches {
    /// The kill switches engaged.
    pub killed: Vec<KillScope>,
    /// Whether read-only mode is on: every tool that is not a read is denied.
    pub read_only: bool,
}

impl Switches {
    /// The first engaged kill switch that stops `call`.
    pub fn kill_switch_for(&self, call: &ToolCall) -> Option<&KillScope> {
        self.killed.iter().find(|s| s.covers(call))
    }
}

/// Which budget a run exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Budget {
    /// `budgets.max_steps`: agent steps the host reported.
    Steps,
    /// `budgets.max_tool_calls`: gated calls.
    ToolCalls,
    /// `budgets.max_seconds`: time since the run's first gated call or step.
    Seconds,
    /// `budgets.max_usd`: cost the host reported.
    Usd,
}

impl Budget {
    /// The config key: `max_steps`, `max_tool_calls`, `max_seconds`, `max_usd`.
    pub fn key(self) -> &'static str {
        match self {
            Budget::Steps => "max_steps",
            Budget::ToolCalls => "max_tool_calls",
            Budget::Seconds => "max_seconds",
            Budget::Usd => "max_usd",
        }
    }
}

impl fmt::Display for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// What a run has used so far, as the store counts it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RunUsage {
    /// Agent steps reported.
    pub steps: u64,
    /// Gated calls made.
    pub tool_calls: u64,
    /// Cost reported, in US dollars.
    pub usd: f64,
    /// When the run was first seen.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
}

/// An increment to a run's usage.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct UsageDelta {
    /// Steps to add.
    pub steps: u64,
    /// Tool calls to add.
    pub tool_calls: u64,
    /// Cost to add, in US dollars.
    pub usd: f64,
}

impl RunUsage {
    /// The usage after `delta` at `now`. The run starts at its first counted use; an
    /// empty delta (a read) does not start it.
    pub fn add(mut self, delta: UsageDelta, now: OffsetDateTime) -> RunUsage {
        if delta == UsageDelta::default() {
            return self;
        }
        self.steps = self.steps.saturating_add(delta.steps);
        self.tool_calls = self.tool_calls.saturating_add(delta.tool_calls);
        if delta.usd.is_finite() && delta.usd > 0.0 {
            self.usd += delta.usd;
        }
        self.started_at.get_or_insert(now);
        self
    }

    /// The first budget this usage exceeds at `now`, with its limit and the amount used.
    /// A count equal to its limit is within budget; one more is over.
    pub fn exceeded(&self, budgets: &Budgets, now: OffsetDateTime) -> Option<(Budget, f64, f64)> {
        let over = |limit: Option<u64>, used: u64| limit.filter(|l| used > *l);
        if let Some(l) = over(budgets.max_tool_calls, self.tool_calls) {
            return Some((Budget::ToolCalls, l as f64, self.tool_calls as f64));
        }
        if let Some(l) = over(budgets.max_steps, self.steps) {
            return Some((Budget::Steps, l as f64, self.steps as f64));
        }
        if let (Some(l), Some(start)) = (budgets.max_seconds, self.started_at) {
            let elapsed = (now - start).whole_seconds().max(0) as u64;
            if elapsed > l {
                return Some((Budget::Seconds, l as f64, elapsed as f64));
            }
        }
        if let Some(l) = budgets.max_usd.filter(|l| self.usd > *l) {
            return Some((Budget::Usd, l, self.usd));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-01-01 00:00:00 UTC);

    fn budgets() -> Budgets {
        Budgets {
            max_steps: Some(2),
            max_tool_calls: Some(3),
            max_seconds: Some(60),
            max_usd: Some(1.5),
        }
    }

    fn calls(n: u64) -> UsageDelta {
        UsageDelta {
            tool_calls: n,
            ..UsageDelta::default()
        }
    }

    #[test]
    fn a_count_at_its_limit_is_within_budget_and_one_more_is_over() {
        let at = RunUsage::default().add(calls(3), T0);
        assert_eq!(at.exceeded(&budgets(), T0), None);
        let over = at.add(calls(1), T0);
        assert_eq!(
            over.exceeded(&budgets(), T0),
            Some((Budget::ToolCalls, 3.0, 4.0))
        );
    }

    #[test]
    fn time_runs_from_the_first_counted_use_and_a_read_does_not_start_it() {
        let read = RunUsage::default().add(UsageDelta::default(), T0);
        assert_eq!(read.started_at, None);
        let started = read.add(calls(1), T0);
        let t = |s: i64| T0 + time::Duration::seconds(s);
        assert_eq!(started.exceeded(&budgets(), t(60)), None);
        assert_eq!(
            started.exceeded(&budgets(), t(61)),
            Some((Budget::Seconds, 60.0, 61.0))
        );
    }

    #[test]
    fn cost_ignores_negative_and_non_finite_reports() {
        let mut u = RunUsage::default();
        for usd in [1.0, -5.0, f64::NAN, f64::INFINITY, 0.75] {
            u = u.add(
                UsageDelta {
                    usd,
                    ..UsageDelta::default()
                },
                T0,
            );
        }
        assert_eq!(u.usd, 1.75);
        assert_eq!(u.exceeded(&budgets(), T0), Some((Budget::Usd, 1.5, 1.75)));
    }

    #[test]
    fn kill_switches_cover_their_scope_only() {
        let call = ToolCall::new("r", "c", "email.send", serde_json::json!({})).with_tenant("acme");
        assert!(KillScope::Global.covers(&call));
        assert!(KillScope::Tenant("acme".into()).covers(&call));
        assert!(!KillScope::Tenant("globex".into()).covers(&call));
        assert!(KillScope::Tool("email.send".into()).covers(&call));
        assert!(!KillScope::Tool("email".into()).covers(&call));
    }
}
