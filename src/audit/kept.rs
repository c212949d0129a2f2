//! [`KeptRecord`]: an audit record as the in-memory trails ([`MemoryStore`]'s and
//! [`MemorySink`]'s) keep it.
//!
//! The records of one run repeat the same run id, tool, policy version, requester and
//! tenant; the two records of one call (`allow`, then `executed`) the same call id; and
//! the calls of a run the same few events. Kept as [`AuditRecord`]s, each record would
//! hold its own copy of every one of them: seven or eight allocations per record, and new
//! memory for each. A [`Keeper`] shares a string with the record before whenever it is the
//! same, and an event with one of the two records before, so keeping a record mostly bumps
//! reference counts; a [`KeptRecord`] turns back into the same [`AuditRecord`] when read.
//!
//! [`MemoryStore`]: crate::store::MemoryStore
//! [`MemorySink`]: crate::audit::MemorySink

use std::sync::Arc;

use time::OffsetDateTime;

use super::{AuditEvent, AuditRecord, ChainLink};
use crate::approval::RequestId;
use crate::call::ArgsHash;

/// An [`AuditRecord`] with its repeated strings shared (see the module docs).
#[derive(Debug)]
pub(crate) struct KeptRecord {
    schema: u32,
    /// Boxed: the memory store links records only when they are read, and the sink
    /// never does, so most kept records have none.
    chain: Option<Box<ChainLink>>,
    pub(crate) at: OffsetDateTime,
    pub(crate) run_id: Arc<str>,
    call_id: Arc<str>,
    tool: Arc<str>,
    args_hash: Option<ArgsHash>,
    pub(crate) request_id: Option<RequestId>,
    policy_version: Arc<str>,
    requested_by: Option<Arc<str>>,
    tenant: Option<Arc<str>>,
    pub(crate) event: Arc<AuditEvent>,
    extra: Option<Box<serde_json::Map<String, serde_json::Value>>>,
}

impl KeptRecord {
    /// The record as it was kept, with its chain link if it has one since.
    pub(crate) fn to_record(&self) -> AuditRecord {
        AuditRecord {
            schema: self.schema,
            chain: self.chain.as_deref().copied(),
            at: self.at,
            run_id: self.run_id.to_string(),
            call_id: self.call_id.to_string(),
            tool: self.tool.to_string(),
            args_hash: self.args_hash,
            request_id: self.request_id,
            policy_version: self.policy_version.to_string(),
            requested_by: self.requested_by.as_deref().map(str::to_owned),
            tenant: self.tenant.as_deref().map(str::to_owned),
            event: AuditEvent::clone(&self.event),
            extra: self.extra.clone(),
            counts_call: Default::default(),
        }
    }

    /// Its chain link, once linked.
    pub(crate) fn chain(&self) -> Option<&ChainLink> {
        self.chain.as_deref()
    }

    /// Sets its chain link.
    pub(crate) fn link(&mut self, link: ChainLink) {
        self.chain = Some(Box::new(link));
    }
}

/// Turns records into [`KeptRecord`]s, sharing each string with the record kept before
/// it when the two are equal.
#[derive(Debug, Default)]
pub(crate) struct Keeper {
    run_id: Option<Arc<str>>,
    call_id: Option<Arc<str>>,
    tool: Option<Arc<str>>,
    policy_version: Option<Arc<str>>,
    requested_by: Option<Arc<str>>,
    tenant: Option<Arc<str>>,
    /// The events of the last two records kept, newest first: a call's records alternate
    /// between two events, so a record's event is most often the one two records before.
    events: [Option<Arc<AuditEvent>>; 2],
}

impl Keeper {
    /// `record`, to keep.
    pub(crate) fn keep(&mut self, record: &AuditRecord) -> KeptRecord {
        KeptRecord {
            schema: record.schema,
            chain: record.chain.map(Box::new),
            at: record.at,
            run_id: share(&mut self.run_id, &record.run_id),
            call_id: share(&mut self.call_id, &record.call_id),
            tool: share(&mut self.tool, &record.tool),
            args_hash: record.args_hash,
            request_id: record.request_id,
            policy_version: share(&mut self.policy_version, &record.policy_version),
            requested_by: record
                .requested_by
                .as_deref()
                .map(|s| share(&mut self.requested_by, s)),
            tenant: record.tenant.as_deref().map(|s| share(&mut self.tenant, s)),
            event: self.share_event(&record.event),
            extra: record.extra.clone(),
        }
    }

    /// `event`, shared with one of the last two records kept if it holds the same event;
    /// otherwise a new one, which becomes the newest of the two.
    fn share_event(&mut self, event: &AuditEvent) -> Arc<AuditEvent> {
        if let Some(shared) = self.events.iter().flatten().find(|e| ***e == *event) {
            return shared.clone();
        }
        let new = Arc::new(event.clone());
        self.events = [Some(new.clone()), self.events[0].take()];
        new
    }
}

/// `s`, shared with `last` if that holds the same text; otherwise a new string, which
/// becomes `last`.
fn share(last: &mut Option<Arc<str>>, s: &str) -> Arc<str> {
    match last {
        Some(shared) if **shared == *s => shared.clone(),
        _ => last.insert(Arc::from(s)).clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditHash;
    use crate::call::{ArgsHash, ToolCall};
    use serde_json::json;

    fn record(run: &str, tool: &str, requester: Option<&str>, tenant: Option<&str>) -> AuditRecord {
        let mut call = ToolCall::new(run, "call-1", tool, json!({"n": 1}));
        if let Some(r) = requester {
            call = call.with_requester(r);
        }
        if let Some(t) = tenant {
            call = call.with_tenant(t);
        }
        let hash = ArgsHash::compute(call.args()).unwrap();
        let event = AuditEvent::Allow {
            rule_ids: vec!["reads".into()],
        };
        AuditRecord::new(OffsetDateTime::UNIX_EPOCH, &call, Some(hash), "v1", event)
    }

    #[test]
    fn a_kept_record_reads_back_as_it_was_whatever_came_before() {
        let mut linked = record("run-1", "crm.read", Some("ann"), Some("acme"));
        linked.request_id = Some(RequestId::new());
        linked.chain = Some(ChainLink {
            seq: 7,
            prev_hash: AuditHash::GENESIS,
            hash: AuditHash::GENESIS,
        });
        let records = [
            record("run-1", "crm.read", Some("ann"), Some("acme")),
            record("run-1", "crm.read", Some("ann"), Some("acme")),
            linked,
            record("run-2", "crm.read", None, Some("acme")),
            record("run-2", "email.send", Some("bob"), None),
            record("run-1", "crm.read", Some("ann"), Some("acme")),
        ];
        let mut keeper = Keeper::default();
        let kept: Vec<KeptRecord> = records.iter().map(|r| keeper.keep(r)).collect();
        for (kept, original) in kept.iter().zip(&records) {
            assert_eq!(&kept.to_record(), original);
        }
        // Equal neighbours share their strings.
        assert!(Arc::ptr_eq(&kept[0].run_id, &kept[1].run_id));
        assert!(Arc::ptr_eq(
            &kept[0].policy_version,
            &kept[4].policy_version
        ));
        assert!(!Arc::ptr_eq(&kept[2].run_id, &kept[3].run_id));
        assert!(Arc::ptr_eq(&kept[0].call_id, &kept[1].call_id));
        assert!(Arc::ptr_eq(&kept[0].event, &kept[1].event));
    }

    #[test]
    fn a_call_shares_its_events_with_the_call_before() {
        let allow = record("run-1", "crm.read", None, None);
        let mut executed = allow.clone();
        executed.event = AuditEvent::Executed {
            status: "ok".into(),
        };
        let records = [allow.clone(), executed.clone(), allow, executed];
        let mut keeper = Keeper::default();
        let kept: Vec<KeptRecord> = records.iter().map(|r| keeper.keep(r)).collect();
        for (kept, original) in kept.iter().zip(&records) {
            assert_eq!(&kept.to_record(), original);
        }
        assert!(Arc::ptr_eq(&kept[0].event, &kept[2].event));
        assert!(Arc::ptr_eq(&kept[1].event, &kept[3].event));
        assert!(!Arc::ptr_eq(&kept[0].event, &kept[1].event));
    }

    #[test]
    fn a_link_set_later_reads_back() {
        let mut kept = Keeper::default().keep(&record("run-1", "crm.read", None, None));
        assert_eq!(kept.chain(), None);
        let link = ChainLink {
            seq: 1,
            prev_hash: AuditHash::GENESIS,
            hash: AuditHash::GENESIS,
        };
        kept.link(link);
        assert_eq!(kept.chain(), Some(&link));
        assert_eq!(kept.to_record().chain, Some(link));
    }
}
