//! Standing grants, above the stores: which grant covers a call, counting its use and
//! revoking it are decided here, once for every backend, and written with the store's
//! compare-and-set ([`GrantStore::update_grant`]).

use time::OffsetDateTime;

use crate::approval::ApprovalRequest;
use crate::audit::AuditRecord;
use crate::call::{ArgsHash, ToolCall};
use crate::grant::{Grant, GrantId};
use crate::policy::Decision;
use crate::store::GrantStore;
use crate::store::StoreError;

/// How many times a use or a revocation that lost a race to another write of the same
/// grant is tried again before the conflict is returned. Each loss means another worker
/// changed the grant, so a grant of `n` uses is lost to at most `n` times by a use.
const RETRIES: usize = 64;

/// Finds a grant live at `now` that covers `call` ([`Grant::covers`], given `decision`,
/// the policy's verdict on the call now), and counts one use of it in `store`, with its
/// [`AuditRecord::grant_used`] (with `policy_version`) in the same transaction. Returns
/// the grant as used and the record the store kept, or `None` when no grant covers the
/// call. With `counts_call`, the store counts the call with the record
/// ([`AuditRecord::counts_call`]).
///
/// A grant of `n` uses covers at most `n` calls across all workers: a use that lost the
/// race to another write of the grant reads the grants again and decides again.
pub(crate) async fn use_grant(
    store: &dyn GrantStore,
    call: &ToolCall,
    args_hash: &ArgsHash,
    decision: &Decision,
    policy_version: &str,
    counts_call: bool,
    now: OffsetDateTime,
) -> Result<Option<(Grant, AuditRecord)>, StoreError> {
    let mut tries = 0;
    loop {
        let grants = store.grants(now).await?;
        let Some(grant) = grants
            .iter()
            .find(|g| g.covers(call, args_hash, decision, now))
        else {
            return Ok(None);
        };
        let used = grant.used();
        let record = AuditRecord::grant_used(now, call, *args_hash, policy_version, &used)
            .counting_call(counts_call);
        match store.update_grant(&used, &record).await {
            Ok(()) => return Ok(Some((used, record))),
            Err(StoreError::GrantConflict { .. } | StoreError::GrantNotFound { .. })
                if tries < RETRIES =>
            {
                tries += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Revokes grant `id`, left on `request`, at `now` on behalf of `by`, with its
/// [`AuditRecord::grant_revoked`] in the same transaction. Returns the grant as revoked
/// and the record the store kept. A grant revoked already is returned as it stands,
/// with no record (`None`).
pub(crate) async fn revoke_grant(
    store: &dyn GrantStore,
    id: GrantId,
    request: &ApprovalRequest,
    by: &str,
    now: OffsetDateTime,
) -> Result<(Grant, Option<AuditRecord>), StoreError> {
    let mut tries = 0;
    loop {
        let grant = store.grant(id).await?;
        if grant.revoked_at().is_some() {
            return Ok((grant, None));
        }
        let revoked = grant.revoked(now);
        let record = AuditRecord::grant_revoked(now, request, id, by);
        match store.update_grant(&revoked, &record).await {
            Ok(()) => return Ok((revoked, Some(record))),
            Err(StoreError::GrantConflict { .. }) if tries < RETRIES => tries += 1,
            Err(e) => return Err(e),
        }
    }
}
