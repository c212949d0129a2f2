//! The decisions both the pages and the API take, through the desk.

use std::time::Duration;

use approval_gate::serde_json::Value;
use approval_gate::{GrantScope, GrantSpec, RequestId};
use serde::Deserialize;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ConsoleError;

/// What a redacted value reads as on the request page and in the JSON API.
const REDACTED: &str = "[redacted]";

/// A standing grant asked for with an approval: the form's or the API's fields.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct GrantAsk {
    /// `run`, `user` or `tenant`.
    pub(crate) scope: String,
    /// How long the grant lives, in minutes.
    #[serde(default)]
    pub(crate) minutes: Option<u64>,
    /// How many calls it covers at most.
    #[serde(default)]
    pub(crate) max_uses: Option<u32>,
    /// Whether it covers only calls with the approved arguments.
    #[serde(default)]
    pub(crate) same_args: bool,
}

impl GrantAsk {
    /// The grant spec asked for; a scope it does not know, or a lifetime of zero, is a
    /// bad form.
    fn spec(&self) -> Result<GrantSpec, ConsoleError> {
        let scope = match self.scope.trim() {
            "run" => GrantScope::Run,
            "user" => GrantScope::User,
            "tenant" => GrantScope::Tenant,
            _ => {
                return Err(ConsoleError::BadForm(
                    "a grant's scope is run, user or tenant",
                ));
            }
        };
        let minutes = self.minutes.unwrap_or(60);
        if minutes == 0 {
            return Err(ConsoleError::BadForm("a grant lives at least one minute"));
        }
        let mut spec = GrantSpec::new(scope, Duration::from_secs(minutes.saturating_mul(60)));
        if let Some(n) = self.max_uses {
            spec = spec.max_uses(n);
        }
        if self.same_args {
            spec = spec.same_args();
        }
        Ok(spec)
    }
}

/// Approves `id` as the caller: as it stands, with `edit` as the edited arguments, or
/// with a standing grant (not both: the desk grants what was filed). A value left as
/// `"[redacted]"` where the page showed one keeps the filed value: the person never saw
/// the secret, and approving an edit does not overwrite it with the placeholder.
pub(crate) async fn approve(
    app: &AppState,
    caller: &Caller,
    id: RequestId,
    edit: Option<Value>,
    grant: Option<&GrantAsk>,
) -> Result<(), ConsoleError> {
    let desk = app.gate.desk().for_approver(caller.approver.clone());
    match (edit, grant) {
        (Some(_), Some(_)) => Err(ConsoleError::BadForm(
            "approve with edited arguments or with a grant, not both",
        )),
        (None, None) => desk
            .approve(id, &caller.approver)
            .await
            .map(drop)
            .map_err(Into::into),
        (None, Some(ask)) => {
            let spec = ask.spec()?;
            desk.approve_with_grant(id, &caller.approver, &spec)
                .await
                .map(drop)
                .map_err(Into::into)
        }
        (Some(mut args), None) => {
            let request = desk.show(id).await?;
            restore_redacted(&mut args, request.shown_args(), request.approved_args());
            desk.approve_with_edits(id, &caller.approver, args)
                .await
                .map(drop)
                .map_err(Into::into)
        }
    }
}

/// Parses the approve form's `edit` text; invalid JSON is refused before anything is
/// asked of the desk.
pub(crate) fn parse_edit(text: &str) -> Result<Value, ConsoleError> {
    approval_gate::parse_args(text).map_err(|e| ConsoleError::BadEdit(e.to_string()))
}

/// Puts the filed value back wherever `edit` still holds the placeholder that `shown`
/// (the arguments as the page showed them) holds at the same place.
fn restore_redacted(edit: &mut Value, shown: &Value, filed: &Value) {
    match (edit, shown) {
        (edit @ Value::String(_), Value::String(s))
            if s == REDACTED && edit.as_str() == Some(REDACTED) =>
        {
            *edit = filed.clone();
        }
        (Value::Object(edit), Value::Object(shown)) => {
            for (key, value) in edit.iter_mut() {
                if let (Some(s), Some(f)) = (shown.get(key), filed.get(key)) {
                    restore_redacted(value, s, f);
                }
            }
        }
        (Value::Array(edit), Value::Array(shown)) => {
            for (i, value) in edit.iter_mut().enumerate() {
                if let (Some(s), Some(f)) = (shown.get(i), filed.get(i)) {
                    restore_redacted(value, s, f);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approval_gate::serde_json::json;

    #[test]
    fn placeholders_left_in_place_keep_the_filed_secret() {
        let filed = json!({"to": "bob", "api_key": "sk-1", "list": ["a", "s3cret"]});
        let shown = json!({"to": "bob", "api_key": REDACTED, "list": ["a", REDACTED]});
        let mut edit = json!({"to": "eve", "api_key": REDACTED, "list": ["b", REDACTED]});
        restore_redacted(&mut edit, &shown, &filed);
        assert_eq!(
            edit,
            json!({"to": "eve", "api_key": "sk-1", "list": ["b", "s3cret"]})
        );

        // A person who types a new value sets it; a placeholder where nothing was
        // redacted stays what was typed.
        let mut edit = json!({"to": REDACTED, "api_key": "sk-2"});
        restore_redacted(&mut edit, &shown, &filed);
        assert_eq!(edit, json!({"to": REDACTED, "api_key": "sk-2"}));
    }
}
