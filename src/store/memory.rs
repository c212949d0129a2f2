use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{
    AuditQuery, ControlStore, CursorStore, Expired, Filed, GrantStore, Notifier, RequestChange,
    RequestQuery, RequestStore, StoreError, Subscription, TrailCursor, TrailReader, TrailWriter,
    end_grant, ends_grants,
};
use crate::approval::{ApprovalRequest, RequestId, RequestState};
use crate::audit::{AuditRecord, ChainHead};
use crate::audit::{Keeper, KeptRecord};
use crate::call::ArgsHash;
use crate::chunked::Chunked;
use crate::grant::{Grant, GrantId};
use crate::run::{KillScope, RunUsage, Switches, UsageDelta};

/// An [`ApprovalStore`](crate::ApprovalStore) in this process's memory: fast, and gone when the process exits.
///
/// For tests, examples, and hosts whose approvals never outlive the process. The audit
/// trail is kept in memory too, every record of it, so a long-lived process that gates
/// many calls should keep its trail in a durable store or give the gate a sink of its
/// own.
///
/// Clones share the same requests and trail, like several handles on one database.
///
/// `create`, `get` and `update` cost the same however many requests it holds, and
/// [`sweep_expired`](RequestStore::sweep_expired) reads only the requests that are due,
/// earliest deadline first.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
    notifier: Notifier,
}

/// What makes two calls identical for dedupe: run, tool, args hash, tenant, requester.
type CallKey = (String, String, ArgsHash, Option<String>, Option<String>);

#[derive(Debug, Default)]
struct Inner {
    /// Boxed, so that the table holds pointers: growing it moves 24 bytes a request
    /// rather than the whole request, and its spare capacity costs little.
    requests: HashMap<RequestId, Box<ApprovalRequest>>,
    /// The requests that can still expire, by the instant they do
    /// ([`ApprovalRequest::deadline`]: pending ones at `expires_at`, approved ones at
    /// `approval_expires_at`), so that a sweep reads only what is due.
    deadlines: BTreeSet<(OffsetDateTime, RequestId)>,
    /// The last request filed per call (run, tool, args hash, tenant and requester),
    /// for dedupe.
    by_call: HashMap<CallKey, RequestId>,
    switches: Switches,
    usage: HashMap<String, RunUsage>,
    grants: Vec<Grant>,
    /// The audit trail; the first `linked` records carry their chain links.
    trail: Chunked<KeptRecord>,
    /// Shares the strings of each record appended with the one before.
    keeper: Keeper,
    linked: usize,
    head: ChainHead,
    /// The places of the trail's readers, by name.
    cursors: BTreeMap<String, TrailCursor>,
}

impl Inner {
    /// Appends `record` to the trail.
    fn append(&mut self, record: &AuditRecord) {
        if record.counts_call() {
            let call = UsageDelta {
                tool_calls: 1,
                ..UsageDelta::default()
            };
            self.add_usage(&record.run_id, call, record.at);
        }
        let kept = self.keeper.keep(record);
        self.trail.push_back(kept);
    }

    /// Adds `delta` to the usage of run `run_id` and returns the new totals.
    fn add_usage(&mut self, run_id: &str, delta: UsageDelta, now: OffsetDateTime) -> RunUsage {
        // A run counted before needs no new key: no allocation on the path of every call.
        if let Some(usage) = self.usage.get_mut(run_id) {
            *usage = usage.add(delta, now);
            return *usage;
        }
        let usage = RunUsage::default().add(delta, now);
        self.usage.insert(run_id.to_owned(), usage);
        usage
    }

    /// Keeps `request` and its deadline, replacing the stored version and its deadline.
    fn put(&mut self, request: ApprovalRequest) {
        if let Some(old) = self.requests.get(&request.id())
            && let Some(at) = old.deadline()
        {
            self.deadlines.remove(&(at, old.id()));
        }
        if let Some(at) = request.deadline() {
            self.deadlines.insert((at, request.id()));
        }
        self.requests.insert(request.id(), Box::new(request));
    }
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
impl RequestStore for MemoryStore {
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
            call.tenant().map(str::to_owned),
            call.requester().map(str::to_owned),
        );
        if let Some(existing) = inner
            .by_call
            .get(&key)
            .and_then(|id| inner.requests.get(id))
            .filter(|r| r.state_at(now) == RequestState::Pending)
        {
            let joined = ApprovalRequest::clone(existing);
            let merged = AuditRecord::merged(now, request.call(), request.args_hash(), &joined)
                .counting_call(record.counts_call());
            inner.append(&merged);
            return Ok(Filed {
                request: joined,
                created: false,
                record: merged,
            });
        }
        let id = request.id();
        if inner.requests.contains_key(&id) {
            return Err(StoreError::Duplicate { id });
        }
        inner.by_call.insert(key, id);
        inner.put(request.clone());
        inner.append(record);
        self.notify(&request);
        Ok(Filed {
            request,
            created: true,
            record: record.clone(),
        })
    }

    async fn get(&self, id: RequestId) -> Result<ApprovalRequest, StoreError> {
        self.lock()
            .requests
            .get(&id)
            .map(|r| ApprovalRequest::clone(r))
            .ok_or(StoreError::NotFound { id })
    }

    async fn update(
        &self,
        next: &ApprovalRequest,
        record: &AuditRecord,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let mut inner = self.lock();
        let id = next.id();
        let stored = inner.requests.get(&id).ok_or(StoreError::NotFound { id })?;
        if stored.version() + 1 != next.version() {
            return Err(StoreError::Conflict {
                id,
                expected: next.version().saturating_sub(1),
                found: stored.version(),
            });
        }
        inner.put(next.clone());
        inner.append(record);
        let mut records = vec![record.clone()];
        if ends_grants(next) {
            let Inner { grants, .. } = &mut *inner;
            for grant in grants
                .iter_mut()
                .filter(|g| g.request_id() == id && g.revoked_at().is_none())
            {
                let (revoked, revocation) = end_grant(next, grant, record.at);
                *grant = revoked;
                records.push(revocation);
            }
            for revocation in &records[1..] {
                inner.append(revocation);
            }
        }
        // Under the lock, so that notices come in the order of the changes.
        self.notify(next);
        Ok(records)
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
            .map(|r| ApprovalRequest::clone(r))
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
    ) -> Result<Vec<Expired>, StoreError> {
        let mut inner = self.lock();
        // Only the requests due by `now`, earliest deadline first: the cost follows what
        // expires, not what is stored.
        let due: Vec<(OffsetDateTime, RequestId)> = inner
            .deadlines
            .iter()
            .take_while(|(at, _)| *at <= now)
            .take(limit)
            .copied()
            .collect();
        let mut expired = Vec::with_capacity(due.len());
        for (at, id) in due {
            let next = inner.requests.get(&id).map(|r| r.expire(now));
            let Some(Ok(next)) = next else {
                // Unreachable while the index is kept right; a stale entry must not
                // take the place of a due request in every later sweep.
                inner.deadlines.remove(&(at, id));
                continue;
            };
            inner.put(next.clone());
            let record = AuditRecord::timeout(now, &next);
            inner.append(&record);
            self.notify(&next);
            expired.push(Expired {
                request: next,
                record,
            });
        }
        Ok(expired)
    }

    async fn subscribe(&self) -> Result<Subscription, StoreError> {
        Ok(self.notifier.subscribe())
    }
}

#[async_trait]
impl GrantStore for MemoryStore {
    async fn put_grant(&self, grant: &Grant, record: &AuditRecord) -> Result<(), StoreError> {
        let mut inner = self.lock();
        // Forget the grants that can never cover a call again at the time of `record`
        // (revoked ones stay, for `grant`): writes prune, so that reads change nothing.
        let now = record.at;
        inner
            .grants
            .retain(|g| g.is_live(now) || g.revoked_at().is_some());
        inner.grants.push(grant.clone());
        inner.append(record);
        Ok(())
    }

    async fn grant(&self, id: GrantId) -> Result<Grant, StoreError> {
        let inner = self.lock();
        let found = inner.grants.iter().find(|g| g.id() == id);
        found.cloned().ok_or(StoreError::GrantNotFound { id })
    }

    async fn grants(&self, now: OffsetDateTime) -> Result<Vec<Grant>, StoreError> {
        let inner = self.lock();
        Ok(inner
            .grants
            .iter()
            .filter(|g| g.is_live(now))
            .cloned()
            .collect())
    }

    async fn update_grant(&self, next: &Grant, record: &AuditRecord) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let id = next.id();
        let stored = inner
            .grants
            .iter_mut()
            .find(|g| g.id() == id)
            .ok_or(StoreError::GrantNotFound { id })?;
        if stored.version().saturating_add(1) != next.version() {
            return Err(StoreError::GrantConflict {
                id,
                expected: next.version().saturating_sub(1),
                found: stored.version(),
            });
        }
        *stored = next.clone();
        inner.append(record);
        Ok(())
    }
}

#[async_trait]
impl ControlStore for MemoryStore {
    async fn switches(&self) -> Result<Switches, StoreError> {
        Ok(self.lock().switches.clone())
    }

    async fn set_kill_switch(
        &self,
        scope: KillScope,
        engaged: bool,
        record: &AuditRecord,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let killed = &mut inner.switches.killed;
        killed.retain(|s| *s != scope);
        if engaged {
            killed.push(scope);
        }
        inner.append(record);
        Ok(())
    }

    async fn set_read_only(&self, on: bool, record: &AuditRecord) -> Result<(), StoreError> {
        let mut inner = self.lock();
        inner.switches.read_only = on;
        inner.append(record);
        Ok(())
    }

    async fn add_usage(
        &self,
        run_id: &str,
        delta: UsageDelta,
        now: OffsetDateTime,
    ) -> Result<RunUsage, StoreError> {
        Ok(self.lock().add_usage(run_id, delta, now))
    }

    async fn usage(&self, run_id: &str) -> Result<RunUsage, StoreError> {
        Ok(self.lock().usage.get(run_id).copied().unwrap_or_default())
    }

    async fn switches_then_add_usage(
        &self,
        stops: &(dyn for<'s> Fn(&'s Switches) -> bool + Sync),
        run_id: &str,
        delta: UsageDelta,
        now: OffsetDateTime,
    ) -> Result<(Switches, Option<RunUsage>), StoreError> {
        let mut inner = self.lock();
        let switches = inner.switches.clone();
        if stops(&switches) {
            return Ok((switches, None));
        }
        Ok((switches, Some(inner.add_usage(run_id, delta, now))))
    }
}

#[async_trait]
impl TrailWriter for MemoryStore {
    async fn append_audit(&self, record: &AuditRecord) -> Result<(), StoreError> {
        self.lock().append(record);
        Ok(())
    }
}

#[async_trait]
impl CursorStore for MemoryStore {
    async fn lease_cursor(
        &self,
        name: &str,
        holder: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<Option<TrailCursor>, StoreError> {
        let mut inner = self.lock();
        // Records are numbered from 1 in the order appended: the last one's is the count.
        let end = inner.trail.len() as u64;
        let cursor = inner
            .cursors
            .entry(name.to_owned())
            .or_insert_with(|| TrailCursor {
                name: name.to_owned(),
                after_seq: end,
                holder: holder.to_owned(),
                lease_until: until,
            });
        if cursor.holder != holder && cursor.lease_until > now {
            return Ok(None);
        }
        cursor.holder = holder.to_owned();
        cursor.lease_until = until;
        Ok(Some(cursor.clone()))
    }

    async fn advance_cursor(
        &self,
        name: &str,
        holder: &str,
        after_seq: u64,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        match inner.cursors.get_mut(name) {
            Some(cursor) if cursor.holder == holder => {
                cursor.after_seq = after_seq;
                cursor.lease_until = until;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn release_cursor(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if let Some(cursor) = inner.cursors.get_mut(name)
            && cursor.holder == holder
        {
            cursor.lease_until = OffsetDateTime::UNIX_EPOCH;
        }
        Ok(())
    }

    async fn cursors(&self) -> Result<Vec<TrailCursor>, StoreError> {
        Ok(self.lock().cursors.values().cloned().collect())
    }
}

#[async_trait]
impl TrailReader for MemoryStore {
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
        for kept in trail.iter_mut_from(*linked) {
            let (chained, next) = head.link(&kept.to_record());
            if let Some(link) = chained.chain {
                kept.link(link);
            }
            *head = next;
        }
        *linked = trail.len();
        let matching = inner.trail.iter().filter(|r| query.matches_kept(r));
        Ok(matching
            .take(query.limit.unwrap_or(usize::MAX))
            .map(KeptRecord::to_record)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;
    use time::macros::datetime;

    use super::*;
    use crate::approval::Approver;
    use crate::audit::AuditEvent;
    use crate::call::ToolCall;
    use crate::policy::Policy;

    const POLICY: &str = "\
approvals:
  ttl_seconds: 300
  approval_ttl_seconds: 60
tiers:
  pair: { approvers: [lead], quorum: 2 }
rules:
  - { id: sends, tool: email.send, effect: approval_required }
  - { id: drops, tool: db.drop, effect: approval_required, tier: pair }
";
    const T0: OffsetDateTime = datetime!(2026-01-01 00:00 UTC);

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    /// A request for `tool` in run `run`, filed at `now`: pending for 300 s, usable for
    /// 60 s once approved.
    fn request(run: &str, tool: &str, now: OffsetDateTime) -> ApprovalRequest {
        let policy = Policy::from_yaml_str(POLICY).expect("policy");
        let call = ToolCall::new(run, "c1", tool, json!({})).with_tenant("t1");
        let decision = policy.evaluate(&call);
        let hash = call.args_hash().expect("hash");
        let version = policy.version().clone();
        ApprovalRequest::new(RequestId::new(), call, hash, &decision, version, now)
    }

    fn record(r: &ApprovalRequest, at: OffsetDateTime) -> AuditRecord {
        let event = AuditEvent::ApprovalRequired {
            rule_ids: r.rule_ids().iter().map(ToString::to_string).collect(),
            reason: None,
            tier: None,
            expires_at: r.expires_at(),
        };
        AuditRecord::for_request(at, r, event)
    }

    fn lead(id: &str) -> Approver {
        Approver::new(id).with_role("lead").with_tenant("t1")
    }

    async fn file(store: &MemoryStore, run: &str, now: OffsetDateTime) -> ApprovalRequest {
        let r = request(run, "email.send", now);
        store
            .create(r.clone(), &record(&r, now), now)
            .await
            .expect("create");
        r
    }

    async fn write(store: &MemoryStore, next: &ApprovalRequest) {
        let at = next.decided_at().unwrap_or(T0);
        store.update(next, &record(next, at)).await.expect("update");
    }

    fn ids(found: &[Expired]) -> Vec<RequestId> {
        found.iter().map(|e| e.request.id()).collect()
    }

    fn timeouts(store: &MemoryStore) -> Vec<(RequestId, String)> {
        store
            .lock()
            .trail
            .iter()
            .filter_map(|r| match &*r.event {
                AuditEvent::ApprovalTimeout { from } => Some((r.request_id?, from.clone())),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn sweep_skips_what_was_decided_and_expires_approvals_by_their_ttl() {
        let store = MemoryStore::new();
        let pending = file(&store, "pending", T0).await;
        let approved = file(&store, "approved", T0).await;
        let denied = file(&store, "denied", T0).await;
        let cancelled = file(&store, "cancelled", T0).await;
        let at = T0 + secs(10);
        let ok = approved.approve(&lead("ann"), at).expect("approve");
        write(&store, &ok).await;
        write(&store, &denied.deny(&lead("ann"), None, at).expect("deny")).await;
        write(
            &store,
            &cancelled.cancel(&lead("ops"), None, at).expect("cancel"),
        )
        .await;

        // Every decision TTL has passed: only the pending request and the approval,
        // whose own TTL ended at t0 + 70, are due, earliest deadline first.
        let swept = store
            .sweep_expired(T0 + secs(300), usize::MAX)
            .await
            .expect("sweep");
        assert_eq!(ids(&swept), [approved.id(), pending.id()]);
        assert!(
            swept
                .iter()
                .all(|e| e.request.stored_state() == RequestState::Expired)
        );
        for (r, state) in [
            (denied, RequestState::Denied),
            (cancelled, RequestState::Cancelled),
        ] {
            assert_eq!(store.get(r.id()).await.expect("get").stored_state(), state);
        }
        assert_eq!(
            timeouts(&store),
            [
                (approved.id(), "approved".into()),
                (pending.id(), "pending".into())
            ]
        );
        assert!(
            store.lock().deadlines.is_empty(),
            "nothing left that can expire"
        );
    }

    #[tokio::test]
    async fn an_approval_expires_at_its_approval_ttl_not_its_decision_ttl() {
        let store = MemoryStore::new();
        let r = file(&store, "run", T0).await;
        let ok = r.approve(&lead("ann"), T0 + secs(10)).expect("approve");
        write(&store, &ok).await;
        let used_by = ok.approval_expires_at().expect("approved");
        assert_eq!(used_by, T0 + secs(70));

        let ns = time::Duration::nanoseconds(1);
        assert!(
            store
                .sweep_expired(used_by - ns, usize::MAX)
                .await
                .expect("sweep")
                .is_empty()
        );
        let swept = store
            .sweep_expired(used_by, usize::MAX)
            .await
            .expect("sweep");
        assert_eq!(ids(&swept), [r.id()]);
        assert_eq!(
            store.get(r.id()).await.expect("get").stored_state(),
            RequestState::Expired
        );
        // Its decision TTL passing later expires nothing again.
        assert!(
            store
                .sweep_expired(T0 + secs(300), usize::MAX)
                .await
                .expect("sweep")
                .is_empty()
        );
        assert_eq!(timeouts(&store), [(r.id(), "approved".into())]);
    }

    #[tokio::test]
    async fn sweep_honours_its_limit_and_expires_each_request_once() {
        let store = MemoryStore::new();
        // Filed out of deadline order.
        let mut filed = Vec::new();
        for n in [3, 0, 4, 1, 2] {
            filed.push((n, file(&store, &format!("run-{n}"), T0 + secs(n)).await));
        }
        filed.sort_by_key(|(n, _)| *n);
        let by_deadline: Vec<RequestId> = filed.iter().map(|(_, r)| r.id()).collect();

        let late = T0 + secs(1000);
        let mut swept = Vec::new();
        for limit in [2, 2, usize::MAX, usize::MAX] {
            let batch = store.sweep_expired(late, limit).await.expect("sweep");
            assert!(batch.len() <= limit);
            swept.extend(ids(&batch));
        }
        assert_eq!(swept, by_deadline, "each once, earliest deadline first");
        assert_eq!(timeouts(&store).len(), 5, "one timeout record each");
        assert!(
            store
                .sweep_expired(late, 0)
                .await
                .expect("sweep")
                .is_empty()
        );
    }

    #[tokio::test]
    async fn a_vote_short_of_quorum_keeps_one_deadline() {
        let store = MemoryStore::new();
        let r = request("run", "db.drop", T0);
        store
            .create(r.clone(), &record(&r, T0), T0)
            .await
            .expect("create");
        let voted = r.approve(&lead("ann"), T0 + secs(1)).expect("vote");
        assert_eq!(voted.stored_state(), RequestState::Pending);
        write(&store, &voted).await;
        assert_eq!(
            store.lock().deadlines.iter().copied().collect::<Vec<_>>(),
            [(r.expires_at(), r.id())]
        );
        let swept = store
            .sweep_expired(r.expires_at(), usize::MAX)
            .await
            .expect("sweep");
        assert_eq!(ids(&swept), [r.id()]);
        assert_eq!(swept[0].request.approvers(), ["ann"]);
    }
}
