//! What a notice says: the request as a person sees it, never its raw arguments.

use approval_gate::Gate;
use approval_gate::time::format_description::well_known::Rfc3339;
use approval_gate::trail::{AuditEvent, AuditRecord};
use serde_json::{Value, json};

use super::{Notice, NoticeKind, NotifyError};
use crate::RequestView;

/// The notice of `record`, of kind `kind`: for a request's event, the request as it
/// stands now ([`RequestView`]: preview, `shown_args`, tier, reason, who asked, votes,
/// expiry), who acted, and its URL in the console under `console_url`; for a spike, its
/// counts.
pub(super) async fn notice(
    gate: &Gate,
    record: &AuditRecord,
    kind: NoticeKind,
    console_url: Option<&str>,
) -> Result<Notice, NotifyError> {
    let link = record.chain.as_ref();
    let id = match link {
        Some(link) => format!("msg_{}_{}", link.seq, &link.hash.to_string()[..16]),
        None => format!("msg_{}", record.at.unix_timestamp_nanos()),
    };
    let mut data = serde_json::Map::new();
    if let Some(link) = link {
        data.insert("seq".into(), json!(link.seq));
    }
    let request = match record.request_id {
        Some(id) => match gate.store().get(id).await {
            Ok(request) => Some(request),
            // A record of a request the store no longer has still goes out, without it.
            Err(approval_gate::StoreError::NotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        },
        None => None,
    };
    if let Some(request) = request {
        let request_id = request.id();
        let view = RequestView::of(&request, gate.now());
        data.insert(
            "request".into(),
            serde_json::to_value(view).unwrap_or(Value::Null),
        );
        if let Some(base) = console_url {
            data.insert("url".into(), json!(format!("{base}/requests/{request_id}")));
        }
    }
    if let Some(actor) = record.event.actor() {
        data.insert("by".into(), json!(actor));
    }
    match &record.event {
        AuditEvent::ApprovalEscalated { to } => {
            data.insert("escalate_to".into(), json!(to));
        }
        AuditEvent::ApprovalReminded { approvers } => {
            data.insert("approver_roles".into(), json!(approvers));
        }
        AuditEvent::TimeoutSpike {
            timeouts,
            finished,
            window_seconds,
        }
        | AuditEvent::TimeoutSpikeCleared {
            timeouts,
            finished,
            window_seconds,
        } => {
            data.insert("timeouts".into(), json!(timeouts));
            data.insert("decided".into(), json!(finished));
            data.insert("window_seconds".into(), json!(window_seconds));
        }
        _ => {}
    }
    let payload = json!({
        "type": kind.as_str(),
        "timestamp": record.at.format(&Rfc3339).unwrap_or_default(),
        "data": data,
    });
    Ok(Notice {
        id,
        kind,
        payload,
        reference: None,
    })
}
