//! [`Decision`]: what the policy decided for one call, and why.

use std::sync::Arc;
use std::time::Duration;

use super::Effect;
use super::preview::PreviewTemplate;

/// The decision TTL a decision carries when no policy set one (5 minutes).
pub(crate) const DEFAULT_DECISION_TTL: Duration = Duration::from_secs(300);
/// The approval TTL a decision carries when no policy set one (15 minutes).
pub(crate) const DEFAULT_APPROVAL_TTL: Duration = Duration::from_secs(900);

/// What a [`Policy`](crate::policy::Policy) decided for one call: the effect, the rules that decided
/// it, the reason, the risk tier and the two TTLs of an approval.
///
/// Decisions are values, never errors: anything unexpected during evaluation is a
/// [`Effect::Deny`] whose reason says what went wrong. Host checks build their own with
/// [`Decision::allow`], [`Decision::deny`] and [`Decision::approval_required`].
///
/// ```
/// use approval_gate::{Decision, Effect};
///
/// let d = Decision::approval_required("refunds over 100 need a second pair of eyes")
///     .with_rule("refunds-large")
///     .with_tier("high");
/// assert_eq!(d.effect(), Effect::ApprovalRequired);
/// assert_eq!(d.rule_ids().len(), 1);
/// assert_eq!(&*d.rule_ids()[0], "refunds-large");
/// assert_eq!(d.tier(), Some("high"));
/// // Until a policy joins it, a host decision lets any role approve, once.
/// assert!(d.approver_roles().is_empty());
/// assert_eq!(d.quorum(), 1);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub(crate) effect: Effect,
    pub(crate) rule_ids: RuleIds,
    pub(crate) reason: Option<Arc<str>>,
    pub(crate) tier: Option<Arc<str>>,
    pub(crate) decision_ttl: Duration,
    pub(crate) approval_ttl: Duration,
    /// The tier's `approvers`, shared with the compiled tier; `None` for any role.
    pub(crate) approvers: Option<Arc<[Arc<str>]>>,
    /// The tier's `quorum`; at least 1.
    pub(crate) quorum: u32,
    /// The tier's `grants`; true without a tier.
    pub(crate) grants: bool,
    /// The deciding rule's `preview`, shared with the compiled rule.
    pub(crate) preview: Option<PreviewTemplate>,
    pub(crate) is_default: bool,
}

/// The ids behind a decision. One id is held without a separate allocation, so building an
/// allow decision from a rule only clones an `Arc`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RuleIds {
    None,
    One(Arc<str>),
    Many(Vec<Arc<str>>),
}

impl RuleIds {
    fn as_slice(&self) -> &[Arc<str>] {
        match self {
            RuleIds::None => &[],
            RuleIds::One(id) => std::slice::from_ref(id),
            RuleIds::Many(ids) => ids,
        }
    }

    pub(crate) fn push(&mut self, id: Arc<str>) {
        *self = match std::mem::replace(self, RuleIds::None) {
            RuleIds::None => RuleIds::One(id),
            RuleIds::One(first) => RuleIds::Many(vec![first, id]),
            RuleIds::Many(mut ids) => {
                ids.push(id);
                RuleIds::Many(ids)
            }
        };
    }

    pub(crate) fn from_vec(mut ids: Vec<Arc<str>>) -> RuleIds {
        match ids.len() {
            0 => RuleIds::None,
            1 => RuleIds::One(ids.remove(0)),
            _ => RuleIds::Many(ids),
        }
    }
}

impl Decision {
    fn new(effect: Effect, reason: Option<Arc<str>>) -> Decision {
        Decision {
            effect,
            rule_ids: RuleIds::None,
            reason,
            tier: None,
            decision_ttl: DEFAULT_DECISION_TTL,
            approval_ttl: DEFAULT_APPROVAL_TTL,
            approvers: None,
            quorum: 1,
            grants: true,
            preview: None,
            is_default: false,
        }
    }

    /// A decision that lets the call run, for host checks.
    pub fn allow() -> Decision {
        Decision::new(Effect::Allow, None)
    }

    /// A decision that refuses the call, saying why, for host checks.
    pub fn deny(reason: impl Into<Arc<str>>) -> Decision {
        Decision::new(Effect::Deny, Some(reason.into()))
    }

    /// A decision that makes the call wait for a person, saying why, for host checks.
    ///
    /// When a policy joins this decision it fills in the TTLs, the approver roles and the
    /// quorum: those of the decision's tier if the policy's config names that tier, else
    /// the config's `approvals` TTLs, any role and a quorum of 1.
    pub fn approval_required(reason: impl Into<Arc<str>>) -> Decision {
        Decision::new(Effect::ApprovalRequired, Some(reason.into()))
    }

    /// Adds the id of a rule or check that decided this, after any already there.
    pub fn with_rule(mut self, id: impl Into<Arc<str>>) -> Self {
        self.rule_ids.push(id.into());
        self
    }

    /// Sets the risk tier.
    pub fn with_tier(mut self, tier: impl Into<Arc<str>>) -> Self {
        self.tier = Some(tier.into());
        self
    }

    /// The effect: allow, deny or approval required.
    pub fn effect(&self) -> Effect {
        self.effect
    }

    /// The ids of the rules (or `check:NAME` for host checks) that decided it, in config
    /// order; empty when the config's default decided.
    ///
    /// For an allow only the first allowing rule is named; for a deny or an approval every
    /// matching rule of that effect is.
    pub fn rule_ids(&self) -> &[Arc<str>] {
        self.rule_ids.as_slice()
    }

    /// Why, in words for the person who approves and for the audit trail.
    pub fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }

    /// The risk tier of the deciding rule, if it has one.
    pub fn tier(&self) -> Option<&str> {
        self.tier.as_deref()
    }

    /// How long a person has to decide; meaningful for [`Effect::ApprovalRequired`].
    pub fn decision_ttl(&self) -> Duration {
        self.decision_ttl
    }

    /// How long an approval may wait to be used once given.
    pub fn approval_ttl(&self) -> Duration {
        self.approval_ttl
    }

    /// The roles that may approve this call, from the deciding rule's tier (its
    /// `approvers`); empty when any approver role may. Meaningful for
    /// [`Effect::ApprovalRequired`].
    pub fn approver_roles(&self) -> &[Arc<str>] {
        self.approvers.as_deref().unwrap_or(&[])
    }

    /// How many distinct approvers this call needs, from the deciding rule's tier (its
    /// `quorum`); 1 when there is no tier or the tier sets none. Meaningful for
    /// [`Effect::ApprovalRequired`].
    pub fn quorum(&self) -> u32 {
        self.quorum
    }

    /// Whether a standing grant may turn this decision into an allow, from the deciding
    /// rule's tier (its `grants`); true when there is no tier or the tier sets none.
    /// Meaningful for [`Effect::ApprovalRequired`]: a grant never lifts a deny.
    pub fn grants_allowed(&self) -> bool {
        self.grants
    }

    /// The deciding rule's `preview` template as written: for a deny or an approval, the
    /// template of the first winning rule that has one (the deciding rule's when it has
    /// one); `None` when no winning rule has one. Render it with
    /// [`Policy::preview`](crate::policy::Policy::preview), which redacts secrets first.
    pub fn preview_template(&self) -> Option<&str> {
        self.preview.as_ref().map(PreviewTemplate::as_str)
    }

    /// True when no rule and no check matched the call and the config's `policy.default`
    /// decided.
    pub fn is_default(&self) -> bool {
        self.is_default
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_decisions_carry_reason_rules_and_tier() {
        let d = Decision::deny("no refunds on weekends")
            .with_rule("weekend")
            .with_rule("finance");
        assert_eq!(d.effect(), Effect::Deny);
        assert_eq!(d.reason(), Some("no refunds on weekends"));
        let ids: Vec<&str> = d.rule_ids().iter().map(|id| &**id).collect();
        assert_eq!(ids, ["weekend", "finance"]);
        assert!(!d.is_default());

        let a = Decision::allow();
        assert_eq!(a.effect(), Effect::Allow);
        assert!(a.rule_ids().is_empty());
        assert_eq!(a.reason(), None);
        assert_eq!(a.tier(), None);
        // Host decisions have no template and, until a policy joins them, allow grants.
        assert_eq!(d.preview_template(), None);
        assert!(d.grants_allowed());
    }

    #[test]
    fn approval_decisions_default_to_five_and_fifteen_minutes() {
        let d = Decision::approval_required("needs a look");
        assert_eq!(d.decision_ttl(), Duration::from_secs(300));
        assert_eq!(d.approval_ttl(), Duration::from_secs(900));
    }
}
