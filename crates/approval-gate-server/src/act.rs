//! The decisions both the pages and the API take, through the desk.

use approval_gate::RequestId;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ConsoleError;

/// Approves `id` as the caller, with `edit` (JSON text) as the edited arguments when
/// given. Invalid JSON is refused before anything is asked of the desk.
pub(crate) async fn approve(
    app: &AppState,
    caller: &Caller,
    id: RequestId,
    edit: Option<&str>,
) -> Result<(), ConsoleError> {
    let desk = app.gate.desk().for_approver(caller.approver.clone());
    match edit {
        None => {
            desk.approve(id, &caller.approver).await?;
        }
        Some(text) => {
            let args = approval_gate::parse_args(text)
                .map_err(|e| ConsoleError::BadEdit(e.to_string()))?;
            desk.approve_with_edits(id, &caller.approver, args).await?;
        }
    }
    Ok(())
}
