//! What the SQL stores share: a request's and a grant's columns, times as integers, the
//! text of the queries whose filters vary, and the errors for data a store cannot read.
//!
//! Every row keeps the whole value as JSON in `body`; the other columns are copies of
//! the fields the queries filter and sort on, always written together with `body`.

use std::fmt::Write as _;

use thiserror::Error;
use time::OffsetDateTime;

use super::same_caller;
use super::{AuditQuery, RequestQuery, StoreError};
use crate::approval::{ApprovalRequest, RequestState};
use crate::audit::{AuditRecord, ChainHead};
use crate::call::ToolCall;
use crate::grant::Grant;
use crate::run::{KillScope, RunUsage};

/// Why stored data could not be read or written. Wrapped in [`StoreError::Backend`].
#[derive(Debug, Error)]
#[non_exhaustive]
pub(crate) enum DataError {
    /// A row's JSON is not what this crate writes.
    #[error("stored {what} `{key}` cannot be read")]
    Unreadable {
        what: &'static str,
        key: String,
        #[source]
        source: serde_json::Error,
    },
    /// A value could not be turned into JSON.
    #[error("{what} `{key}` cannot be written")]
    Unwritable {
        what: &'static str,
        key: String,
        #[source]
        source: serde_json::Error,
    },
    /// A number column holds a value out of its range.
    #[error("stored {what} `{key}` has an out-of-range `{column}`")]
    OutOfRange {
        what: &'static str,
        key: String,
        column: &'static str,
    },
    /// A schema name that cannot be quoted as an identifier.
    #[cfg(feature = "postgres")]
    #[error("`{0}` is not a usable schema name")]
    SchemaName(String),
    /// The database was migrated by a newer version of this crate.
    #[error(
        "the database schema is version {found}, newer than version {known} that this build knows"
    )]
    SchemaTooNew { found: i64, known: i64 },
}

impl From<DataError> for StoreError {
    fn from(e: DataError) -> Self {
        StoreError::backend(e)
    }
}

/// The migrations of `migrations` (version and SQL, in order) that a database at schema
/// version `current` still needs; an error, changing nothing, if a newer version of this
/// crate migrated it.
pub(crate) fn migrations_due(
    migrations: &'static [(i64, &'static str)],
    current: i64,
) -> Result<impl Iterator<Item = &'static (i64, &'static str)>, DataError> {
    let known = migrations.last().map_or(0, |(v, _)| *v);
    if current > known {
        return Err(DataError::SchemaTooNew {
            found: current,
            known,
        });
    }
    Ok(migrations.iter().filter(move |(v, _)| *v > current))
}

/// `?` on a driver's result: its error becomes [`StoreError::Backend`].
pub(crate) trait Db<T> {
    fn db(self) -> Result<T, StoreError>;
}

#[cfg(feature = "postgres")]
impl<T> Db<T> for Result<T, sqlx::Error> {
    fn db(self) -> Result<T, StoreError> {
        self.map_err(StoreError::backend)
    }
}

#[cfg(feature = "sqlite")]
impl<T> Db<T> for Result<T, rusqlite::Error> {
    fn db(self) -> Result<T, StoreError> {
        self.map_err(StoreError::backend)
    }
}

/// A time as Unix nanoseconds, clamped to the range of `i64` (years 1677 to 2262).
///
/// Nanoseconds keep the order and the expiry comparisons of [`ApprovalRequest`] exact;
/// the clamp only touches times no request has.
pub(crate) fn nanos(t: OffsetDateTime) -> i64 {
    let n = t.unix_timestamp_nanos();
    i64::try_from(n).unwrap_or(if n < 0 { i64::MIN } else { i64::MAX })
}

/// A count as `i64`, clamped.
pub(crate) fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A `limit` as `i64`, clamped.
pub(crate) fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The columns of `approval_requests` for one request.
pub(crate) struct RequestRow {
    pub id: String,
    pub version: i64,
    pub state: &'static str,
    pub run_id: String,
    pub tool: String,
    pub args_hash: String,
    pub tenant: Option<String>,
    pub tier: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub approval_expires_at: Option<i64>,
    pub body: String,
}

impl RequestRow {
    pub fn of(r: &ApprovalRequest) -> Result<Self, DataError> {
        let id = r.id().to_string();
        let body = serde_json::to_string(r).map_err(|source| DataError::Unwritable {
            what: "approval request",
            key: id.clone(),
            source,
        })?;
        let version = i64::try_from(r.version()).map_err(|_| DataError::OutOfRange {
            what: "approval request",
            key: id.clone(),
            column: "version",
        })?;
        let call = r.call();
        Ok(RequestRow {
            id,
            version,
            state: r.stored_state().as_str(),
            run_id: call.run_id().to_owned(),
            tool: call.tool().to_owned(),
            args_hash: r.args_hash().to_string(),
            tenant: call.tenant().map(str::to_owned),
            tier: r.tier().map(|t| t.as_str().to_owned()),
            created_at: nanos(r.created_at()),
            expires_at: nanos(r.expires_at()),
            approval_expires_at: r.approval_expires_at().map(nanos),
            body,
        })
    }
}

/// The columns of `approval_grants` for one grant (`seq` aside, which the database
/// assigns in insertion order).
pub(crate) struct GrantRow {
    pub id: String,
    pub expires_at: i64,
    pub max_uses: Option<i64>,
    pub uses: i64,
    pub revoked_at: Option<i64>,
    pub body: String,
    pub version: i64,
}

impl GrantRow {
    pub fn of(g: &Grant) -> Result<Self, DataError> {
        let id = g.id().to_string();
        let body = serde_json::to_string(g).map_err(|source| DataError::Unwritable {
            what: "grant",
            key: id.clone(),
            source,
        })?;
        Ok(GrantRow {
            id,
            expires_at: nanos(g.expires_at()),
            max_uses: g.max_uses().map(i64::from),
            uses: i64::from(g.uses()),
            revoked_at: g.revoked_at().map(nanos),
            body,
            version: i64::try_from(g.version()).map_err(|_| DataError::OutOfRange {
                what: "grant",
                key: g.id().to_string(),
                column: "version",
            })?,
        })
    }
}

/// The columns of `approval_audit` for one record, linked into the chain.
pub(crate) struct AuditRow {
    pub seq: i64,
    pub prev_hash: String,
    pub hash: String,
    pub at: i64,
    pub event: String,
    pub run_id: String,
    pub request_id: Option<String>,
    pub actor: Option<String>,
    pub body: String,
}

impl AuditRow {
    /// The row of `record` linked after `head`, and the new head.
    pub fn linked(record: &AuditRecord, head: ChainHead) -> Result<(Self, ChainHead), DataError> {
        let (linked, next) = head.link(record);
        let key = next.seq.to_string();
        let body = serde_json::to_string(&linked).map_err(|source| DataError::Unwritable {
            what: "audit record",
            key: key.clone(),
            source,
        })?;
        let seq = i64::try_from(next.seq).map_err(|_| DataError::OutOfRange {
            what: "audit record",
            key,
            column: "seq",
        })?;
        let row = AuditRow {
            seq,
            prev_hash: head.hash.to_string(),
            hash: next.hash.to_string(),
            at: nanos(linked.at),
            // An event this version does not know keeps the name it was written with.
            event: linked.event.written_name().to_owned(),
            run_id: linked.run_id.clone(),
            request_id: linked.request_id.map(|id| id.to_string()),
            actor: linked.event.actor().map(str::to_owned),
            body,
        };
        Ok((row, next))
    }
}

/// The chain's head from the last row's `seq` and `hash` (`None`: an empty trail).
pub(crate) fn parse_head(last: Option<(i64, String)>) -> Result<ChainHead, DataError> {
    let Some((seq, hash)) = last else {
        return Ok(ChainHead::GENESIS);
    };
    let bad = |column| DataError::OutOfRange {
        what: "audit record",
        key: seq.to_string(),
        column,
    };
    Ok(ChainHead {
        seq: u64::try_from(seq).map_err(|_| bad("seq"))?,
        hash: hash.parse().map_err(|_| bad("hash"))?,
    })
}

/// The audit record stored in `body` at `seq`.
pub(crate) fn parse_audit(seq: i64, body: &str) -> Result<AuditRecord, DataError> {
    serde_json::from_str(body).map_err(|source| DataError::Unreadable {
        what: "audit record",
        key: seq.to_string(),
        source,
    })
}

/// The request stored in `body`.
pub(crate) fn parse_request(id: &str, body: &str) -> Result<ApprovalRequest, DataError> {
    serde_json::from_str(body).map_err(|source| DataError::Unreadable {
        what: "approval request",
        key: id.to_owned(),
        source,
    })
}

/// The grant stored in `body`.
pub(crate) fn parse_grant(id: &str, body: &str) -> Result<Grant, DataError> {
    serde_json::from_str(body).map_err(|source| DataError::Unreadable {
        what: "grant",
        key: id.to_owned(),
        source,
    })
}

/// A kill switch's scope as stored in `approval_kill_switches.scope`.
pub(crate) fn scope_key(scope: &KillScope) -> Result<String, DataError> {
    serde_json::to_string(scope).map_err(|source| DataError::Unwritable {
        what: "kill switch",
        key: scope.to_string(),
        source,
    })
}

/// The kill switch's scope stored as `key`.
pub(crate) fn parse_scope(key: &str) -> Result<KillScope, DataError> {
    serde_json::from_str(key).map_err(|source| DataError::Unreadable {
        what: "kill switch",
        key: key.to_owned(),
        source,
    })
}

/// A run's usage from its columns.
pub(crate) fn usage(
    run_id: &str,
    steps: i64,
    tool_calls: i64,
    usd: f64,
    started_at: Option<i64>,
) -> Result<RunUsage, DataError> {
    let out_of_range = |column| DataError::OutOfRange {
        what: "run usage",
        key: run_id.to_owned(),
        column,
    };
    let started_at = match started_at {
        Some(n) => Some(
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(n))
                .map_err(|_| out_of_range("started_at"))?,
        ),
        None => None,
    };
    Ok(RunUsage {
        steps: u64::try_from(steps).map_err(|_| out_of_range("steps"))?,
        tool_calls: u64::try_from(tool_calls).map_err(|_| out_of_range("tool_calls"))?,
        usd,
        started_at,
    })
}

/// A run's usage as columns: steps, tool calls, dollars and start.
pub(crate) fn usage_columns(u: &RunUsage) -> (i64, i64, f64, Option<i64>) {
    (
        count(u.steps),
        count(u.tool_calls),
        u.usd,
        u.started_at.map(nanos),
    )
}

/// The newest of `candidates` (newest first, same run, tool and args hash) still pending
/// at `now` and asked for by the same tenant and requester as `call`: the request that
/// `call` joins instead of filing its own.
pub(crate) fn pending_twin(
    candidates: Vec<ApprovalRequest>,
    call: &ToolCall,
    now: OffsetDateTime,
) -> Option<ApprovalRequest> {
    candidates
        .into_iter()
        .find(|r| r.state_at(now) == RequestState::Pending && same_caller(r.call(), call))
}

/// A bound value of a query built at run time.
pub(crate) enum Param {
    Int(i64),
    Text(String),
}

/// SQL text with its parameters, built clause by clause, with numbered placeholders
/// (`$1`, `$2`, …), which both SQLite and PostgreSQL read.
pub(crate) struct Sql {
    pub text: String,
    pub params: Vec<Param>,
}

impl Sql {
    fn new(text: &str) -> Self {
        Sql {
            text: text.to_owned(),
            params: Vec::new(),
        }
    }

    /// Appends `text`, then a placeholder for `param`.
    fn bind(&mut self, text: &str, param: Param) -> &mut Self {
        self.text.push_str(text);
        self.params.push(param);
        // Writing to a `String` cannot fail.
        let _ = write!(self.text, "${}", self.params.len());
        self
    }

    fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }
}

/// The query behind [`RequestStore::list`](super::RequestStore::list): `id, body` of
/// the matching requests, oldest first. Mirrors [`RequestQuery::matches`], expiry included.
#[cfg(feature = "postgres")]
pub(crate) fn list_query(query: &RequestQuery, now: OffsetDateTime) -> Sql {
    list_query_ordered(query, now, "approval_requests", " ORDER BY created_at, id")
}

/// `list_query` reading `from` (the table, with an `INDEXED BY` clause, say) and with
/// `order` (an `ORDER BY` clause with a leading space) in place of `ORDER BY created_at,
/// id`, for a store whose planner needs a hint.
pub(crate) fn list_query_ordered(
    query: &RequestQuery,
    now: OffsetDateTime,
    from: &str,
    order: &str,
) -> Sql {
    let now = nanos(now);
    let mut sql = Sql::new(&format!("SELECT id, body FROM {from} WHERE TRUE"));
    if let Some(state) = query.state {
        match state {
            RequestState::Pending => {
                sql.push(" AND state = 'pending'")
                    .bind(" AND expires_at > ", Param::Int(now));
            }
            RequestState::Approved => {
                sql.push(" AND state = 'approved'")
                    .bind(
                        " AND (approval_expires_at IS NULL OR approval_expires_at > ",
                        Param::Int(now),
                    )
                    .push(")");
            }
            RequestState::Expired => {
                sql.bind(
                    " AND (state = 'expired' OR (state = 'pending' AND expires_at <= ",
                    Param::Int(now),
                )
                .bind(
                    ") OR (state = 'approved' AND approval_expires_at <= ",
                    Param::Int(now),
                )
                .push("))");
            }
            other => {
                sql.bind(" AND state = ", Param::Text(other.as_str().to_owned()));
            }
        }
    }
    if let Some(run_id) = &query.run_id {
        sql.bind(" AND run_id = ", Param::Text(run_id.clone()));
    }
    if let Some(tenant) = &query.tenant {
        sql.bind(" AND tenant = ", Param::Text(tenant.clone()));
    }
    if let Some(tool) = &query.tool {
        sql.bind(" AND tool = ", Param::Text(tool.clone()));
    }
    if let Some(tier) = &query.tier {
        sql.bind(" AND tier = ", Param::Text(tier.clone()));
    }
    if let Some(before) = query.created_before {
        sql.bind(" AND created_at < ", Param::Int(nanos(before)));
    }
    if let Some(after) = query.after {
        // Ids are kept as lowercase hyphenated text, whose order is the ids' order. A row
        // value comparison, which both databases answer from an index on
        // `(created_at, id)` as one range.
        sql.bind(
            " AND (created_at, id) > (",
            Param::Int(nanos(after.created_at)),
        )
        .bind(", ", Param::Text(after.id.to_string()))
        .push(")");
    }
    sql.push(order);
    if let Some(n) = query.limit {
        sql.bind(" LIMIT ", Param::Int(limit(n)));
    }
    sql
}

/// The query behind [`TrailReader::audit_records`](super::TrailReader::audit_records):
/// `seq, body` of the matching records, in order.
pub(crate) fn audit_query(query: &AuditQuery) -> Sql {
    let mut sql = Sql::new("SELECT seq, body FROM approval_audit WHERE TRUE");
    if let Some(id) = query.request_id {
        sql.bind(" AND request_id = ", Param::Text(id.to_string()));
    }
    if let Some(run_id) = &query.run_id {
        sql.bind(" AND run_id = ", Param::Text(run_id.clone()));
    }
    if let Some(actor) = &query.actor {
        sql.bind(" AND actor = ", Param::Text(actor.clone()));
    }
    if let Some(from) = query.from {
        sql.bind(" AND at >= ", Param::Int(nanos(from)));
    }
    if let Some(until) = query.until {
        sql.bind(" AND at < ", Param::Int(nanos(until)));
    }
    if let Some(after) = query.after_seq {
        sql.bind(" AND seq > ", Param::Int(count(after)));
    }
    sql.push(" ORDER BY seq");
    if let Some(n) = query.limit {
        sql.bind(" LIMIT ", Param::Int(limit(n)));
    }
    sql
}

/// `WHERE` condition: the requests due to expire at `$1` (mirrors
/// [`ApprovalRequest::expire`]).
pub(crate) const DUE: &str = "((state = 'pending' AND expires_at <= $1) \
     OR (state = 'approved' AND approval_expires_at <= $1))";

/// `WHERE` condition: the grants that can never cover a call again at `$1` and were not
/// revoked, which nothing needs any more.
pub(crate) const SPENT_GRANT: &str = "(revoked_at IS NULL \
     AND (expires_at <= $1 OR (max_uses IS NOT NULL AND uses >= max_uses)))";

/// The columns of `approval_requests`, in the order of [`RequestRow`]'s binds.
pub(crate) const INSERT_REQUEST: &str = "INSERT INTO approval_requests \
     (id, version, state, run_id, tool, args_hash, tenant, tier, created_at, expires_at, \
      approval_expires_at, body) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (id) DO NOTHING";

/// The columns of `approval_grants`, in the order of [`GrantRow`]'s binds.
pub(crate) const INSERT_GRANT: &str = "INSERT INTO approval_grants \
     (id, expires_at, max_uses, uses, revoked_at, body, version) \
     VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// Writes the grant whose id is `$1` at version `$7` over the version before it
/// (compare-and-set: it writes no row when the stored version is another).
pub(crate) const UPDATE_GRANT: &str = "UPDATE approval_grants SET \
     expires_at = $2, max_uses = $3, uses = $4, revoked_at = $5, body = $6, version = $7 \
     WHERE id = $1 AND version = $7 - 1";

/// The grants live at `$1`, oldest first (mirrors [`Grant::is_live`]).
pub(crate) const SELECT_LIVE_GRANTS: &str = "SELECT id, body FROM approval_grants WHERE \
     revoked_at IS NULL AND expires_at > $1 AND (max_uses IS NULL OR uses < max_uses) \
     ORDER BY seq";

/// The grant whose id is `$1`.
pub(crate) const SELECT_GRANT: &str = "SELECT id, body FROM approval_grants WHERE id = $1";

/// The stored version of the grant whose id is `$1`.
pub(crate) const GRANT_VERSION: &str = "SELECT version FROM approval_grants WHERE id = $1";

/// Turns read-only mode on (`$1` = `true`) or off.
pub(crate) const SET_READ_ONLY: &str = "INSERT INTO approval_settings (name, value) \
     VALUES ('read_only', $1) ON CONFLICT (name) DO UPDATE SET value = excluded.value";

/// The usage of run `$1`.
pub(crate) const SELECT_USAGE: &str = "SELECT steps, tool_calls, usd, started_at \
     FROM approval_run_usage WHERE run_id = $1";

/// Writes the usage of run `$1`.
pub(crate) const UPSERT_USAGE: &str = "INSERT INTO approval_run_usage \
     (run_id, steps, tool_calls, usd, started_at) VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (run_id) DO UPDATE SET steps = excluded.steps, \
     tool_calls = excluded.tool_calls, usd = excluded.usd, started_at = excluded.started_at";

/// Adds one tool call to the usage of run `$1`, which starts at `$2` (nanoseconds) if it
/// has not started: what a store does with a record that
/// [counts its call](crate::audit::AuditRecord::counts_call), in one statement.
pub(crate) const COUNT_CALL: &str = "INSERT INTO approval_run_usage \
     (run_id, steps, tool_calls, usd, started_at) VALUES ($1, 0, 1, 0, $2) \
     ON CONFLICT (run_id) DO UPDATE SET tool_calls = approval_run_usage.tool_calls + 1, \
     started_at = COALESCE(approval_run_usage.started_at, excluded.started_at)";

/// The last record's `seq` and `hash`: the chain's head.
pub(crate) const AUDIT_HEAD: &str =
    "SELECT seq, hash FROM approval_audit ORDER BY seq DESC LIMIT 1";

/// Appends a linked record, in the order of [`AuditRow`]'s fields.
pub(crate) const INSERT_AUDIT: &str = "INSERT INTO approval_audit \
     (seq, prev_hash, hash, at, event, run_id, request_id, actor, body) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

/// Compare-and-set: writes the request whose id is `$1` if its version is `$5`: its
/// new version `$2`, state `$3`, approval expiry `$4` and body `$6`.
///
/// Sets only the columns a transition changes: what a request was filed with (run,
/// tool, args hash, tenant, tier, times) never changes, and SQLite rewrites the entries
/// of every index on a column an `UPDATE` sets, changed or not.
pub(crate) const UPDATE_REQUEST: &str = "UPDATE approval_requests SET \
     version = $2, state = $3, approval_expires_at = $4, body = $6 \
     WHERE id = $1 AND version = $5";

/// The requests pending for one call (`$1` run, `$2` tool, `$3` args hash), newest first,
/// of any tenant and requester ([`pending_twin`] picks the one of the same caller).
pub(crate) const PENDING_TWINS: &str = "SELECT id, body FROM approval_requests \
     WHERE run_id = $1 AND tool = $2 AND args_hash = $3 AND state = 'pending' \
     ORDER BY created_at DESC, id DESC";

/// The queries of a first and a later page of the pending queue (the later one
/// filtered), whose plans the stores' unit tests check.
#[cfg(test)]
pub(crate) fn queue_pages() -> [RequestQuery; 2] {
    let first = RequestQuery {
        state: Some(RequestState::Pending),
        limit: Some(50),
        ..RequestQuery::default()
    };
    let later = RequestQuery {
        after: Some(super::ListCursor {
            created_at: OffsetDateTime::UNIX_EPOCH,
            id: crate::approval::RequestId::new(),
        }),
        tool: Some("email.send".into()),
        tenant: Some("acme".into()),
        ..first.clone()
    };
    [first, later]
}

/// Takes or renews the lease on cursor `$1` for holder `$2` until `$4`, unless another
/// holder's lease runs past `$3`; a new cursor starts at the end of the trail. Answers
/// the cursor as held, or no row.
pub(crate) const LEASE_CURSOR: &str = "INSERT INTO approval_cursors \
     (name, after_seq, holder, lease_until) \
     VALUES ($1, COALESCE((SELECT MAX(seq) FROM approval_audit), 0), $2, $4) \
     ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
     lease_until = excluded.lease_until \
     WHERE approval_cursors.holder = excluded.holder OR approval_cursors.lease_until <= $3 \
     RETURNING name, after_seq, holder, lease_until";

/// Moves cursor `$1` to `$3` and renews its lease until `$4`, if `$2` holds it.
pub(crate) const ADVANCE_CURSOR: &str = "UPDATE approval_cursors \
     SET after_seq = $3, lease_until = $4 WHERE name = $1 AND holder = $2";

/// Ends the lease of `$2` on cursor `$1` (it ran out at the epoch).
pub(crate) const RELEASE_CURSOR: &str =
    "UPDATE approval_cursors SET lease_until = 0 WHERE name = $1 AND holder = $2";

/// Every cursor, by name.
pub(crate) const SELECT_CURSORS: &str =
    "SELECT name, after_seq, holder, lease_until FROM approval_cursors ORDER BY name";

/// A cursor from its columns.
pub(crate) fn parse_cursor(
    name: String,
    after_seq: i64,
    holder: String,
    lease_until: i64,
) -> Result<crate::store::TrailCursor, DataError> {
    let out_of_range = |column| DataError::OutOfRange {
        what: "cursor",
        key: name.clone(),
        column,
    };
    let after_seq = u64::try_from(after_seq).map_err(|_| out_of_range("after_seq"))?;
    let lease_until = OffsetDateTime::from_unix_timestamp_nanos(i128::from(lease_until))
        .map_err(|_| out_of_range("lease_until"))?;
    Ok(crate::store::TrailCursor {
        name,
        after_seq,
        holder,
        lease_until,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nanos_keep_order_and_clamp() {
        let t = time::macros::datetime!(2026-01-01 00:00:00.000000001 UTC);
        assert_eq!(nanos(t) - nanos(t - time::Duration::nanoseconds(1)), 1);
        assert_eq!(
            nanos(OffsetDateTime::new_utc(
                time::Date::from_calendar_date(9999, time::Month::January, 1).expect("date"),
                time::Time::MIDNIGHT,
            )),
            i64::MAX
        );
    }

    #[test]
    fn list_query_numbers_its_placeholders_in_order() {
        let q = RequestQuery {
            state: Some(RequestState::Expired),
            tenant: Some("t".into()),
            limit: Some(3),
            ..RequestQuery::default()
        };
        let now = time::macros::datetime!(2026-01-01 00:00:00 UTC);
        let sql = list_query_ordered(&q, now, "approval_requests", " ORDER BY created_at, id");
        assert!(sql.text.contains("expires_at <= $1"));
        assert!(sql.text.contains("approval_expires_at <= $2"));
        assert!(sql.text.contains("tenant = $3"));
        assert!(sql.text.ends_with("LIMIT $4"));
        assert_eq!(sql.params.len(), 4);
    }

    #[test]
    fn a_corrupt_body_is_an_error_not_a_panic() {
        let err = parse_request("x", "{not json").expect_err("corrupt");
        assert!(err.to_string().contains("`x`"));
        assert!(parse_grant("g", "[]").is_err());
        assert!(usage("r", -1, 0, 0.0, None).is_err());
    }
}
