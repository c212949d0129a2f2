use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{
    ApprovalStore, AuditQuery, Filed, Notifier, RequestChange, RequestQuery, StoreError,
    Subscription,
};
use crate::{
    ApprovalRequest, ArgsHash, AuditRecord, ChainHead, Grant, GrantId, KillScope, RequestId,
    RequestState, RunUsage, Switches, ToolCall, UsageDelta,
};

/// An [`ApprovalStore`] in this process's memory: fast, and gone when the process exits.
///
/// For tests, examples, and hosts whose approvals never outlive the process. The audit
/// trail is kept in memory too, every record of it, so a long-lived process that gates
/// many calls should keep its trail in a durable store or give the gate a sink of its
/// own.
///
/// Clones share the same requests and trail, like several handles on one database.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
    notifier: Notifier,
}

#[derive(Debug, Default)]
struct Inner {
    requests: HashMap<RequestId, ApprovalRequest>,
    /// The last request filed per run, tool and args hash, for dedupe.
    by_call: HashMap<(String, String, ArgsHash), RequestId>,
    switches: Switches,
    usage: HashMap<String, RunUsage>,
    grants: Vec<Grant>,
    /// The audit trail; the first `linked` records carry their chain links.
    trail: Vec<AuditRecord>,
    linked: usize,
    head: ChainHead,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every write below completes before it can panic, so a poisoned lock still holds
        // consistent data.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn notify(&self, request: &ApprovalRequest) {
        self.notifier.notify(RequestChange {
            request_id: request.id(),
            state: request.stored_state(),
        });
    }
}

#[async_trait]
impl ApprovalStore for MemoryStore {
    async fn create(
        &self,
        request: ApprovalRequest,
        record: &AuditRecord,
        now: OffsetDateTime,
    ) -> Result<Filed, StoreError> {
        let mut inner = self.lock();
        let call = request.call();
        let key = (
            call.run_id().to_owned(),
            call.tool().to_owned(),
            request.args_hash(),
        );
        if let Some(existing) = inner
            .by_call
            .get(&key)
            .and_then(|id| inner.requests.get(id))
            .filter(|r| r.state_at(now) == RequestState::Pending)
        {
            return Ok(Filed {
                request: existing.clone(),
                created: false,
            });
        }
        let id = request.id();
        if inner.requests.contains_key(&id) {
            return Err(StoreError::Duplicate { id });
        }
        inner.by_call.insert(key, id);
        inner.requests.insert(id, request.clone());
        inner.trail.push(record.clone());
        Ok(Filed {
            request,
            created: true,
        })
    }

    async fn get(&self, id: RequestId) -> Result<ApprovalRequest, StoreError> {
        self.lock()
            .requests
            .get(&id)
            .cloned()
            .ok_or(StoreError::NotFound { id })
    }

    async fn update(&self, next: &ApprovalRequest, record: &AuditRecord) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let id = next.id();
        let stored = inner
            .requests
            .get_mut(&id)
            .ok_or(StoreError::NotFound { id })?;
        if stored.version() + 1 != next.version() {
            return Err(StoreError::Conflict {
                id,
                expected: next.version().saturating_sub(1),
                found: stored.version(),
            });
        }
        *stored = next.clone();
        inner.trail.push(record.clone());
        // Under the lock, so that notices come in the order of the changes.
        self.notify(next);
        Ok(())
    }

    async fn list(
        &self,
        query: &RequestQuery,
        now: OffsetDateTime,
    ) -> Result<Vec<ApprovalRequest>, StoreError> {
        let inner = self.lock();
        let mut found: Vec<ApprovalRequest> = inner
            .requests
            .values()
            .filter(|r| query.matches(r, now))
            .cloned()
            .collect();
        found.sort_by_key(|r| (r.created_at(), r.id()));
        if let Some(limit) = query.limit {
            found.truncate(limit);
        }
        Ok(found)
    }

    async fn sweep_expired(
        &self,
        now: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<ApprovalRequest>, StoreError> {
        let mut inner = self.lock();
        let Inner {
            requests, trail, ..
        } = &mut *inner;
        let mut expired = Vec::new();
        for request in requests.values_mut() {
            if expired.len() >= limit {
                break;
            }
            if let Ok(next) = request.expire(now) {
                *request = next.clone();
                trail.push(AuditRecord::timeout(now, &next));
                self.notify(&next);
                expired.push(next);
            }
        }
        Ok(expired)
    }

    async fn switches(&self) -> Result<Switches, StoreError> {
        Ok(self.lock().switches.clone())
    }

    async fn set_kill_switch(&self, scope: KillScope, engaged: bool) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let killed = &mut inner.switches.killed;
        killed.retain(|s| *s != scope);
        if engaged {
            killed.push(scope);
        }
        Ok(())
    }

    async fn set_read_only(&self, on: bool) -> Result<(), StoreError> {
        self.lock().switches.read_only = on;
        Ok(())
    }

    async fn add_usage(
        &self,
        run_id: &str,
        delta: UsageDelta,
        now: OffsetDateTime,
    ) -> Result<RunUsage, StoreError> {
        let mut inner = self.lock();
        let usage = inner.usage.entry(run_id.to_owned()).or_default();
        *usage = usage.add(delta, now);
        Ok(*usage)
    }

    async fn put_grant(&self, grant: &Grant, record: &AuditRecord) -> Result<(), StoreError> {
        let mut inner = self.lock();
        inner.grants.push(grant.clone());
        inner.trail.push(record.clone());
        Ok(())
    }

    async fn use_grant(
        &self,
        call: &ToolCall,
        args_hash: &ArgsHash,
        policy_version: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Grant>, StoreError> {
        let mut inner = self.lock();
        let Some(grant) = inner
            .grants
            .iter_mut()
            .find(|g| g.covers(call, args_hash, now))
        else {
            return Ok(None);
        };
        *grant = grant.used();
        let used = grant.clone();
        let record = AuditRecord::grant_used(now, call, *args_hash, policy_version, &used);
        inner.trail.push(record);
        Ok(Some(used))
    }

    async fn revoke_grant(&self, id: GrantId, now: OffsetDateTime) -> Result<Grant, StoreError> {
        let mut inner = self.lock();
        let grant = inner
            .grants
            .iter_mut()
            .find(|g| g.id() == id)
            .ok_or(StoreError::GrantNotFound { id })?;
        *grant = grant.revoked(now);
        Ok(grant.clone())
    }

    async fn grants(&self, now: OffsetDateTime) -> Result<Vec<Grant>, StoreError> {
        let mut inner = self.lock();
        inner
            .grants
            .retain(|g| g.is_live(now) || g.revoked_at().is_some());
        Ok(inner
            .grants
            .iter()
            .filter(|g| g.is_live(now))
            .cloned()
            .collect())
    }

    async fn append_audit(&self, record: &AuditRecord) -> Result<(), StoreError> {
        self.lock().trail.push(record.clone());
        Ok(())
    }

    async fn audit_records(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        let mut inner = self.lock();
        // The chain is linked when read rather than on every append: the order is
        // fixed under the lock, so the result is the same, and a gated call costs less.
        let Inner {
            trail,
            linked,
            head,
            ..
        } = &mut *inner;
        for record in &mut trail[*linked..] {
            let (chained, next) = head.link(record);
            *record = chained;
            *head = next;
        }
        *linked = trail.len();
        let matching = inner.trail.iter().filter(|r| query.matches(r));
        Ok(matching
            .take(query.limit.unwrap_or(usize::MAX))
            .cloned()
            .collect())
    }

    async fn subscribe(&self) -> Result<Subscription, StoreError> {
        Ok(self.notifier.subscribe())
    }
}
