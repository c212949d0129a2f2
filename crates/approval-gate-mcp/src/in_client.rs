//! Approval by the person at the MCP client: [`InClientApproval`], and what it puts on
//! the wire (an `elicitation/create` request, or on protocol 2026-07-28 an
//! `input_required` result) and reads back.

use approval_gate::time::format_description::well_known::Rfc3339;
use approval_gate::{ApprovalRequest, Approver};
use rmcp::RoleServer;
use rmcp::model::{
    ElicitRequest, ElicitRequestParams, ElicitationAction, ElicitationSchema, EnumSchema,
    InputRequest, InputRequests, InputRequiredResult, ProtocolVersion,
};
use rmcp::service::RequestContext;
use serde_json::Value;

/// Lets the person at the MCP client approve or deny, in the client, the calls of the
/// tiers named here: when such a call waits for approval and the client can ask its
/// user (it declared the elicitation capability), the gateway asks (`elicitation/create`
/// on the handshake protocols; an `input_required` result on 2026-07-28) with the
/// request's preview, its arguments as shown to approvers (secrets redacted), the tier,
/// who asked and the expiry, and a form: `decision` (`approve` or `deny`) and
/// `feedback`. Accepting the form decides as it says (a denial with the feedback),
/// declining it denies, and cancelling it (or no answer in time) leaves the request
/// pending, for the console or the command.
///
/// The decision is taken at the desk as [`approver`](Self::new), with all its rules:
/// the approver may not be the requester, must hold the tier's roles and tenant, and
/// counts as one vote of a quorum. Who that is comes from configuration, not from the
/// client: whoever can speak to the gateway answers as this approver, so name a tier
/// here only where the person at the client may approve it.
#[derive(Debug, Clone)]
pub struct InClientApproval {
    approver: Approver,
    tiers: Vec<String>,
}

impl InClientApproval {
    /// In-client approval as `approver`, for no tier yet: name them with
    /// [`tier`](Self::tier).
    pub fn new(approver: Approver) -> Self {
        InClientApproval {
            approver,
            tiers: Vec::new(),
        }
    }

    /// Allows in-client approval for the calls of tier `tier` (as the policy names it).
    pub fn tier(mut self, tier: impl Into<String>) -> Self {
        self.tiers.push(tier.into());
        self
    }

    /// Who decides in the client.
    pub fn approver(&self) -> &Approver {
        &self.approver
    }

    /// Whether a request of `tier` may be decided in the client.
    pub(crate) fn covers(&self, tier: Option<&str>) -> bool {
        tier.is_some_and(|tier| self.tiers.iter().any(|t| t == tier))
    }
}

/// The key of the gateway's own question among a call's `inputRequests` and
/// `inputResponses`.
pub(crate) const INPUT_KEY: &str = "approval-gate/decision";

/// The form's `decision` that approves.
const APPROVE: &str = "approve";
/// The form's `decision` that denies.
const DENY: &str = "deny";

/// What the person at the client answered.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Answer {
    /// Accept: approve.
    Approve,
    /// Decline: deny, with what they typed.
    Deny(Option<String>),
    /// Cancel, no answer, or an answer that is not one: the request stays pending.
    Undecided,
}

impl Answer {
    /// Reads an `ElicitResult` (`{"action": …, "content": {"decision", "feedback"}}`):
    /// accept with `decision: approve` approves; accept with `decision: deny` denies
    /// with the feedback; decline denies; cancel, and anything else, decides nothing.
    pub(crate) fn from_result(result: &Value) -> Answer {
        let action = serde_json::from_value::<ElicitationAction>(result["action"].clone());
        let content = &result["content"];
        let feedback = || {
            content["feedback"]
                .as_str()
                .filter(|f| !f.trim().is_empty())
                .map(str::to_owned)
        };
        match (action, content["decision"].as_str()) {
            (Ok(ElicitationAction::Accept), Some(APPROVE)) => Answer::Approve,
            (Ok(ElicitationAction::Accept), Some(DENY)) => Answer::Deny(feedback()),
            (Ok(ElicitationAction::Decline), _) => Answer::Deny(feedback()),
            _ => Answer::Undecided,
        }
    }
}

/// How to ask the client, if it can be asked.
pub(crate) enum Asking {
    /// An `elicitation/create` request to the client (handshake protocols).
    Request,
    /// An `input_required` result; the client calls again with the answer (2026-07-28).
    InputRequired,
}

/// How the client in `context` can be asked, if it declared form elicitation.
pub(crate) fn asking(context: &RequestContext<RoleServer>) -> Option<Asking> {
    let modern = context
        .protocol_version()
        .is_some_and(|v| v >= ProtocolVersion::V_2026_07_28);
    let capabilities = if modern {
        context.meta.client_capabilities()
    } else {
        context
            .peer
            .peer_info()
            .map(|info| info.capabilities.clone())
    };
    let elicitation = capabilities?.elicitation?;
    // No mode named means form, as the spec reads it.
    let form = elicitation.form.is_some() || elicitation.url.is_none();
    form.then_some(if modern {
        Asking::InputRequired
    } else {
        Asking::Request
    })
}

/// The question for `request`: its preview, arguments as shown, tier, who asked and the
/// expiry, and a form with one optional field, the feedback on a decline.
pub(crate) fn question(request: &ApprovalRequest) -> ElicitRequestParams {
    let call = request.call();
    let mut message = format!("Approve `{}`?", call.tool());
    if let Some(preview) = request.preview() {
        message.push_str(&format!("\n\n{preview}"));
    }
    message.push_str(&format!(
        "\n\nArguments: {}",
        serde_json::to_string_pretty(request.shown_args()).unwrap_or_default()
    ));
    if let Some(tier) = request.tier() {
        message.push_str(&format!("\nRisk tier: {tier}"));
    }
    if let Some(requester) = call.requester() {
        message.push_str(&format!("\nAsked by: {requester}"));
    }
    if let Ok(expires) = request.expires_at().format(&Rfc3339) {
        message.push_str(&format!("\nExpires: {expires}"));
    }
    message.push_str(&format!(
        "\nRequest: {}\n\nChoose approve or deny (and say why when you deny).",
        request.id()
    ));
    let decision = EnumSchema::builder(vec![APPROVE.to_owned(), DENY.to_owned()]).build();
    let schema = ElicitationSchema::builder()
        .required_enum_schema("decision", decision)
        .optional_string("feedback")
        .build_unchecked();
    ElicitRequestParams::FormElicitationParams {
        meta: None,
        message,
        requested_schema: schema,
    }
}

/// The `input_required` result that asks `question` (2026-07-28).
pub(crate) fn input_required(question: ElicitRequestParams) -> InputRequiredResult {
    let mut requests = InputRequests::new();
    requests.insert(
        INPUT_KEY.to_owned(),
        InputRequest::Elicitation(ElicitRequest::new(question)),
    );
    InputRequiredResult::new(Some(requests), None)
}

#[cfg(test)]
mod tests {
    use approval_gate::Approver;
    use serde_json::json;

    use super::*;

    #[test]
    fn the_form_decides_as_it_says_and_a_cancel_decides_nothing() {
        let read = |v| Answer::from_result(&v);
        assert_eq!(
            read(json!({"action": "accept", "content": {"decision": "approve"}})),
            Answer::Approve
        );
        assert_eq!(
            read(json!({"action": "accept",
                        "content": {"decision": "deny", "feedback": "use the template"}})),
            Answer::Deny(Some("use the template".into()))
        );
        assert_eq!(
            read(json!({"action": "accept", "content": {"decision": "deny", "feedback": " "}})),
            Answer::Deny(None)
        );
        assert_eq!(read(json!({"action": "decline"})), Answer::Deny(None));
        // Nothing that is not an explicit approval approves.
        for undecided in [
            json!({"action": "cancel"}),
            json!({"action": "accept"}),
            json!({"action": "accept", "content": {"decision": "yes"}}),
            json!({"action": "accept", "content": {"decision": true}}),
            json!({"action": "approve"}),
            json!("accept"),
            json!(null),
        ] {
            assert_eq!(read(undecided.clone()), Answer::Undecided, "{undecided}");
        }
    }

    #[test]
    fn only_the_named_tiers_are_decided_in_the_client() {
        let approval = InClientApproval::new(Approver::new("alice")).tier("notes");
        assert!(approval.covers(Some("notes")));
        assert!(!approval.covers(Some("payments")));
        assert!(!approval.covers(None));
        assert!(!InClientApproval::new(Approver::new("alice")).covers(Some("notes")));
    }
}
