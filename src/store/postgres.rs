//! [`PostgresStore`]: approval requests in PostgreSQL, shared by many workers and hosts.

use std::time::Duration;

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use sqlx::postgres::{PgArguments, PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::query::Query;
use sqlx::{Executor as _, Postgres, Row, Transaction};
use time::OffsetDateTime;

use super::sql::{
    ADVANCE_CURSOR, AUDIT_HEAD, AuditRow, COUNT_CALL, DUE, DataError, Db, GRANT_VERSION, GrantRow,
    INSERT_AUDIT, INSERT_GRANT, INSERT_REQUEST, LEASE_CURSOR, PENDING_TWINS, Param, RELEASE_CURSOR,
    RequestRow, SELECT_CURSORS, SELECT_GRANT, SELECT_LIVE_GRANTS, SELECT_USAGE, SET_READ_ONLY,
    SPENT_GRANT, Sql, UPDATE_GRANT, UPDATE_REQUEST, UPSERT_USAGE, audit_query, count, list_query,
    migrations_due, nanos, parse_audit, parse_cursor, parse_grant, parse_head, parse_request,
    parse_scope, pending_twin, scope_key, usage, usage_columns,
};
use super::{
    AuditQuery, ChangeSource, ControlStore, CursorStore, Expired, Filed, GrantStore, RequestChange,
    RequestQuery, RequestStore, StoreError, Subscription, TrailCursor, TrailReader, TrailWriter,
    end_grant, ends_grants,
};
use crate::approval::{ApprovalRequest, RequestId};
use crate::audit::AuditRecord;
use crate::grant::{Grant, GrantId};
use crate::run::{KillScope, RunUsage, Switches, UsageDelta};

/// The schema migrations, in order: version and SQL.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/postgres_1.sql")),
    (2, include_str!("migrations/postgres_2.sql")),
    (3, include_str!("migrations/postgres_3.sql")),
    (4, include_str!("migrations/postgres_4.sql")),
    (5, include_str!("migrations/postgres_5.sql")),
];

/// The advisory lock that makes concurrent migrations take turns ("ag-migra").
const MIGRATION_LOCK: i64 = 0x6167_2d6d_6967_7261;

/// The advisory lock that makes appends to the audit trail take turns ("ag-trail").
const TRAIL_LOCK: i64 = 0x6167_2d74_7261_696c;

/// The `NOTIFY` channel of the store in the schema a connection works in (its
/// `current_schema()`), as an SQL expression: `approval_gate_` and the first 16 hex digits
/// of the SHA-256 of the schema's name (channel names are at most 63 bytes; schema names
/// may be as long).
///
/// Read on the connection that notifies or listens, so that every constructor, a host's
/// own pool included, uses the channel of the schema its tables are in.
const CHANNEL: &str =
    "'approval_gate_' || left(encode(sha256(convert_to(current_schema(), 'UTF8')), 'hex'), 16)";

/// An [`ApprovalStore`](super::ApprovalStore) in PostgreSQL: for many workers, and for an approval surface on
/// other hosts than the agents.
///
/// Changes are announced to [`subscribe`](super::RequestStore::subscribe)rs with `NOTIFY` on a
/// channel of the schema the store works in (`approval_gate_` and 16 hex digits of a
/// hash of the schema's name), however the store was made: stores in one schema hear
/// each other, stores in different schemas do not.
///
/// Each transition is a compare-and-set (`UPDATE … WHERE id = $1 AND version = $2`).
/// `create` holds a transaction-scoped advisory lock keyed on the run, tool and args
/// hash while it looks for an identical pending request (of the same tenant and
/// requester), so two workers filing the same call get one request. Grant uses lock the grant's row; budget counters and sweeps run
/// in one transaction each.
///
/// ```no_run
/// # async fn demo() -> Result<(), approval_gate::StoreError> {
/// use approval_gate::PostgresStore;
///
/// // Connects and brings the schema up to date.
/// let store = PostgresStore::connect("postgres://app@db.internal/app").await?;
/// // Or keep the tables in a schema of their own, with at most 20 connections.
/// let options = PostgresStore::options("postgres://app@db.internal/app")
///     .schema("approvals")
///     .max_connections(20);
/// let store = PostgresStore::connect_with(options).await?;
/// store.close().await;
/// # let _ = store;
/// # Ok(())
/// # }
/// ```
///
/// TLS: this crate enables no TLS backend of `sqlx`. For `sslmode=require`, enable one
/// in your own `Cargo.toml` (features unify), for example
/// `sqlx = { version = "0.8", default-features = false, features = ["tls-rustls"] }`.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    /// The schema the pool's `search_path` names, which `migrate` creates if missing.
    schema: Option<String>,
}

/// How [`PostgresStore::connect_with`] connects: the database, the schema the tables go
/// in, and the pool's size. Made by [`PostgresStore::options`].
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    url: String,
    schema: Option<String>,
    max_connections: u32,
    acquire_timeout: Duration,
}

impl PostgresOptions {
    /// The options of a store on the database at `url`: tables in the first schema of
    /// the server's `search_path`, at most 10 pooled connections, and 30 seconds to
    /// wait for one.
    pub fn new(url: &str) -> Self {
        PostgresOptions {
            url: url.to_owned(),
            schema: None,
            max_connections: 10,
            acquire_timeout: Duration::from_secs(30),
        }
    }

    /// Keeps the tables in `schema` (created if missing), and hears notices of that
    /// schema only. Any name PostgreSQL takes as a quoted identifier: it is quoted, never
    /// pasted into SQL.
    pub fn schema(mut self, schema: &str) -> Self {
        self.schema = Some(schema.to_owned());
        self
    }

    /// At most `n` pooled connections (at least 1). A subscription takes a connection of
    /// its own, outside the pool.
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// How long a call waits for a pooled connection before it fails with a backend
    /// error.
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }
}

impl PostgresStore {
    /// A transaction for a write.
    async fn begin_write(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        self.pool.begin().await.db()
    }

    /// Announces the requests `tx` changed on the channel of the schema `tx` works in
    /// (delivered when, and only if, it commits), then commits it.
    async fn commit_changed(
        &self,
        mut tx: Transaction<'static, Postgres>,
        changed: &[ApprovalRequest],
    ) -> Result<(), StoreError> {
        for request in changed {
            let change = RequestChange {
                request_id: request.id(),
                state: request.stored_state(),
            };
            let payload = serde_json::to_string(&change).map_err(StoreError::backend)?;
            sqlx::query(&format!("SELECT pg_notify({CHANNEL}, $1)"))
                .bind(payload)
                .execute(&mut *tx)
                .await
                .db()?;
        }
        tx.commit().await.db()
    }

    /// Connects to the database at `url` (`postgres://user:password@host/database`) with
    /// the default [`PostgresOptions`] and brings its schema up to date
    /// ([`migrate`](Self::migrate)). The tables go into the first schema of the server's
    /// `search_path` (usually `public`).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(Self::options(url)).await
    }

    /// The options of a store on the database at `url`, to change before
    /// [`connect_with`](Self::connect_with).
    pub fn options(url: &str) -> PostgresOptions {
        PostgresOptions::new(url)
    }

    /// Connects as `options` say and brings the tables up to date
    /// ([`migrate`](Self::migrate)). With [`PostgresOptions::schema`], every pooled
    /// connection's `search_path` is that schema only, and the schema is created if it
    /// is missing: several hosts, or tests, share a database apart.
    pub async fn connect_with(options: PostgresOptions) -> Result<Self, StoreError> {
        let mut pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout);
        if let Some(schema) = &options.schema {
            let set_path = format!("SET search_path TO {}", quote_ident(schema)?);
            pool = pool.after_connect(move |conn, _meta| {
                let set_path = set_path.clone();
                Box::pin(async move {
                    conn.execute(set_path.as_str()).await?;
                    Ok(())
                })
            });
        }
        let pool = pool.connect(&options.url).await.db()?;
        let store = PostgresStore {
            pool,
            schema: options.schema,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Closes the pool: waits for the connections in use to come back, then closes them
    /// all. Later calls on this store, or its clones, fail with a backend error. A
    /// subscription already open keeps its own connection until it is dropped.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A store on a pool the host configured, working in the first schema of its
    /// connections' `search_path` (and notifying on that schema's channel). Does not
    /// migrate: call [`migrate`](Self::migrate) once before use.
    pub fn from_pool(pool: PgPool) -> Self {
        PostgresStore { pool, schema: None }
    }

    /// The connection pool, for the host's own queries.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Creates the tables and indexes this store needs (and the schema named by
    /// [`PostgresOptions::schema`]), or brings them up to date. Idempotent, and
    /// safe to run from several processes at once: migrations take turns on an advisory
    /// lock. Fails, changing nothing, on a database migrated by a newer version of this
    /// crate.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.db()?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *tx)
            .await
            .db()?;
        if let Some(schema) = &self.schema {
            let sql = format!("CREATE SCHEMA IF NOT EXISTS {}", quote_ident(schema)?);
            tx.execute(sql.as_str()).await.db()?;
        }
        tx.execute(
            "CREATE TABLE IF NOT EXISTS approval_schema_version (version BIGINT PRIMARY KEY)",
        )
        .await
        .db()?;
        let current: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM approval_schema_version")
                .fetch_one(&mut *tx)
                .await
                .db()?;
        for (version, sql) in migrations_due(MIGRATIONS, current)? {
            tx.execute(*sql).await.db()?;
            sqlx::query("INSERT INTO approval_schema_version (version) VALUES ($1)")
                .bind(version)
                .execute(&mut *tx)
                .await
                .db()?;
        }
        tx.commit().await.db()
    }
}

/// A subscription's end: a `LISTEN` on the store's channel.
struct Listener {
    listener: PgListener,
}

#[async_trait]
impl ChangeSource for Listener {
    async fn next(&mut self) -> Result<RequestChange, StoreError> {
        loop {
            match self.listener.try_recv().await.db()? {
                Some(notice) => {
                    // A payload this crate did not write is not a change of ours.
                    if let Ok(change) = serde_json::from_str(notice.payload()) {
                        return Ok(change);
                    }
                }
                // The connection dropped (notices in between are lost) and was made again.
                None => return Err(StoreError::Lagged { missed: None }),
            }
        }
    }
}

/// `name` as a quoted SQL identifier.
fn quote_ident(name: &str) -> Result<String, DataError> {
    if name.is_empty() || name.contains('\0') {
        return Err(DataError::SchemaName(name.chars().take(64).collect()));
    }
    Ok(format!("\"{}\"", name.replace('"', "\"\"")))
}

/// The advisory lock key of one call: the first 8 bytes of a SHA-256 over run, tool and
/// args hash. Two calls sharing a key only wait for each other.
fn call_lock(row: &RequestRow) -> i64 {
    let mut hasher = Sha256::new();
    for part in [&row.run_id, &row.tool, &row.args_hash] {
        hasher.update(part.len().to_be_bytes());
        hasher.update(part.as_bytes());
    }
    let digest = hasher.finalize();
    let mut key = [0u8; 8];
    key.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(key)
}

type PgQuery<'q> = Query<'q, Postgres, PgArguments>;

fn bind_request<'q>(q: PgQuery<'q>, r: &'q RequestRow) -> PgQuery<'q> {
    q.bind(&r.id)
        .bind(r.version)
        .bind(r.state)
        .bind(&r.run_id)
        .bind(&r.tool)
        .bind(&r.args_hash)
        .bind(&r.tenant)
        .bind(&r.tier)
        .bind(r.created_at)
        .bind(r.expires_at)
        .bind(r.approval_expires_at)
        .bind(&r.body)
}

fn bind_grant<'q>(q: PgQuery<'q>, g: &'q GrantRow) -> PgQuery<'q> {
    q.bind(&g.id)
        .bind(g.expires_at)
        .bind(g.max_uses)
        .bind(g.uses)
        .bind(g.revoked_at)
        .bind(&g.body)
        .bind(g.version)
}

fn read_request(row: &PgRow) -> Result<ApprovalRequest, StoreError> {
    let id: &str = row.try_get("id").db()?;
    let body: &str = row.try_get("body").db()?;
    Ok(parse_request(id, body)?)
}

fn read_grant(row: &PgRow) -> Result<Grant, StoreError> {
    let id: &str = row.try_get("id").db()?;
    let body: &str = row.try_get("body").db()?;
    Ok(parse_grant(id, body)?)
}

fn read_usage(run_id: &str, row: Option<&PgRow>) -> Result<RunUsage, StoreError> {
    let Some(row) = row else {
        return Ok(RunUsage::default());
    };
    Ok(usage(
        run_id,
        row.try_get("steps").db()?,
        row.try_get("tool_calls").db()?,
        row.try_get("usd").db()?,
        row.try_get("started_at").db()?,
    )?)
}

/// Appends `record` to the trail inside `tx`, which holds the trail's write lock. A
/// record that [counts its call](AuditRecord::counts_call) adds it to its run's usage
/// here, in the same transaction.
async fn append(
    tx: &mut Transaction<'static, Postgres>,
    record: &AuditRecord,
) -> Result<(), StoreError> {
    // Like every row lock, taken before the trail's lock below. A run's usage row is
    // locked only here and by `add_usage`, which takes no other lock.
    if record.counts_call() {
        sqlx::query(COUNT_CALL)
            .bind(&record.run_id)
            .bind(nanos(record.at))
            .execute(&mut **tx)
            .await
            .db()?;
    }
    // Appends take turns, so `seq` follows the order of commits. Taken last in every
    // transaction (after any row or call lock), so it cannot close a cycle of waits.
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(TRAIL_LOCK)
        .execute(&mut **tx)
        .await
        .db()?;
    let last: Option<(i64, String)> = sqlx::query_as(AUDIT_HEAD)
        .fetch_optional(&mut **tx)
        .await
        .db()?;
    let (row, _) = AuditRow::linked(record, parse_head(last)?)?;
    sqlx::query(INSERT_AUDIT)
        .bind(row.seq)
        .bind(&row.prev_hash)
        .bind(&row.hash)
        .bind(row.at)
        .bind(row.event)
        .bind(&row.run_id)
        .bind(&row.request_id)
        .bind(&row.actor)
        .bind(&row.body)
        .execute(&mut **tx)
        .await
        .db()?;
    Ok(())
}

fn read_audit(row: &PgRow) -> Result<AuditRecord, StoreError> {
    let seq: i64 = row.try_get("seq").db()?;
    let body: &str = row.try_get("body").db()?;
    Ok(parse_audit(seq, body)?)
}

/// The rows `sql` selects.
async fn fetch(pool: &PgPool, sql: &Sql) -> Result<Vec<PgRow>, StoreError> {
    let mut q = sqlx::query(&sql.text);
    for param in &sql.params {
        q = match param {
            Param::Int(n) => q.bind(*n),
            Param::Text(s) => q.bind(s.as_str()),
        };
    }
    q.fetch_all(pool).await.db()
}

/// Writes `next` over the version before it inside `tx`; whether it was written.
async fn write_over(
    tx: &mut Transaction<'static, Postgres>,
    next: &ApprovalRequest,
) -> Result<bool, StoreError> {
    let row = RequestRow::of(next)?;
    let done = sqlx::query(UPDATE_REQUEST)
        .bind(&row.id)
        .bind(row.version)
        .bind(row.state)
        .bind(row.approval_expires_at)
        .bind(row.version - 1)
        .bind(&row.body)
        .execute(&mut **tx)
        .await
        .db()?;
    Ok(done.rows_affected() == 1)
}

#[async_trait]
impl RequestStore for PostgresStore {
    async fn create(
        &self,
        request: ApprovalRequest,
        record: &AuditRecord,
        now: OffsetDateTime,
    ) -> Result<Filed, StoreError> {
        let row = RequestRow::of(&request)?;
        let mut tx = self.pool.begin().await.db()?;
        // Held until the transaction ends: a second `create` of the same call waits here,
        // then sees this one's request.
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(call_lock(&row))
            .execute(&mut *tx)
            .await
            .db()?;
        let twins = sqlx::query(PENDING_TWINS)
            .bind(&row.run_id)
            .bind(&row.tool)
            .bind(&row.args_hash)
            .fetch_all(&mut *tx)
            .await
            .db()?
            .iter()
            .map(read_request)
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(joined) = pending_twin(twins, request.call(), now) {
            let merged = AuditRecord::merged(now, request.call(), request.args_hash(), &joined)
                .counting_call(record.counts_call());
            append(&mut tx, &merged).await?;
            tx.commit().await.db()?;
            return Ok(Filed {
                request: joined,
                created: false,
                record: merged,
            });
        }
        let done = bind_request(sqlx::query(INSERT_REQUEST), &row)
            .execute(&mut *tx)
            .await
            .db()?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Duplicate { id: request.id() });
        }
        append(&mut tx, record).await?;
        self.commit_changed(tx, std::slice::from_ref(&request))
            .await?;
        Ok(Filed {
            request,
            created: true,
            record: record.clone(),
        })
    }

    async fn get(&self, id: RequestId) -> Result<ApprovalRequest, StoreError> {
        let row = sqlx::query("SELECT id, body FROM approval_requests WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .db()?
            .ok_or(StoreError::NotFound { id })?;
        read_request(&row)
    }

    async fn update(
        &self,
        next: &ApprovalRequest,
        record: &AuditRecord,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let mut tx = self.begin_write().await?;
        if !write_over(&mut tx, next).await? {
            let id = next.id();
            let found: i64 =
                sqlx::query_scalar("SELECT version FROM approval_requests WHERE id = $1")
                    .bind(id.to_string())
                    .fetch_optional(&mut *tx)
                    .await
                    .db()?
                    .ok_or(StoreError::NotFound { id })?;
            return Err(StoreError::Conflict {
                id,
                expected: next.version().saturating_sub(1),
                found: u64::try_from(found).unwrap_or_default(),
            });
        }
        // A cancel or a denial ends the request's grants: lock them first (the trail's
        // lock is taken last, after every row lock), then record the change and each
        // revocation after it.
        let mut ended = Vec::new();
        if ends_grants(next) {
            let rows = sqlx::query(
                "SELECT id, body FROM approval_grants WHERE revoked_at IS NULL \
                 AND body::jsonb ->> 'request_id' = $1 ORDER BY seq FOR UPDATE",
            )
            .bind(next.id().to_string())
            .fetch_all(&mut *tx)
            .await
            .db()?;
            for row in &rows {
                let grant = read_grant(row)?;
                if grant.request_id() == next.id() {
                    ended.push(end_grant(next, &grant, record.at));
                }
            }
        }
        append(&mut tx, record).await?;
        let mut records = vec![record.clone()];
        for (revoked, revocation) in ended {
            let row = GrantRow::of(&revoked)?;
            bind_grant(sqlx::query(UPDATE_GRANT), &row)
                .execute(&mut *tx)
                .await
                .db()?;
            append(&mut tx, &revocation).await?;
            records.push(revocation);
        }
        self.commit_changed(tx, std::slice::from_ref(next)).await?;
        Ok(records)
    }

    async fn list(
        &self,
        query: &RequestQuery,
        now: OffsetDateTime,
    ) -> Result<Vec<ApprovalRequest>, StoreError> {
        let rows = fetch(&self.pool, &list_query(query, now)).await?;
        let mut found = Vec::with_capacity(rows.len());
        for row in &rows {
            let request = read_request(row)?;
            if query.matches(&request, now) {
                found.push(request);
            }
        }
        Ok(found)
    }

    async fn sweep_expired(
        &self,
        now: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<Expired>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin().await.db()?;
        let rows = sqlx::query(&format!(
            "SELECT id, body FROM approval_requests WHERE {DUE} \
             ORDER BY created_at, id LIMIT $2 FOR UPDATE"
        ))
        .bind(nanos(now))
        .bind(super::sql::limit(limit))
        .fetch_all(&mut *tx)
        .await
        .db()?;
        let mut expired = Vec::with_capacity(rows.len());
        let mut records = Vec::with_capacity(rows.len());
        for row in &rows {
            let Ok(next) = read_request(row)?.expire(now) else {
                continue;
            };
            if write_over(&mut tx, &next).await? {
                let record = AuditRecord::timeout(now, &next);
                append(&mut tx, &record).await?;
                expired.push(next);
                records.push(record);
            }
        }
        self.commit_changed(tx, &expired).await?;
        Ok(expired
            .into_iter()
            .zip(records)
            .map(|(request, record)| Expired { request, record })
            .collect())
    }

    async fn subscribe(&self) -> Result<Subscription, StoreError> {
        let mut listener = PgListener::connect_with(&self.pool).await.db()?;
        // The channel of the schema the listening connection works in, which is the one
        // every connection of the pool works in.
        let channel: String = sqlx::query_scalar(&format!("SELECT {CHANNEL}"))
            .fetch_one(&mut listener)
            .await
            .db()?;
        listener.listen(&channel).await.db()?;
        Ok(Subscription::new(Listener { listener }))
    }
}

#[async_trait]
impl GrantStore for PostgresStore {
    async fn put_grant(&self, grant: &Grant, record: &AuditRecord) -> Result<(), StoreError> {
        let row = GrantRow::of(grant)?;
        let mut tx = self.begin_write().await?;
        // Forget the grants that can never cover a call again at the time of `record`
        // (revoked ones stay): writes prune, so that reads change nothing.
        sqlx::query(&format!("DELETE FROM approval_grants WHERE {SPENT_GRANT}"))
            .bind(nanos(record.at))
            .execute(&mut *tx)
            .await
            .db()?;
        bind_grant(sqlx::query(INSERT_GRANT), &row)
            .execute(&mut *tx)
            .await
            .db()?;
        append(&mut tx, record).await?;
        tx.commit().await.db()
    }

    async fn grant(&self, id: GrantId) -> Result<Grant, StoreError> {
        let row = sqlx::query(SELECT_GRANT)
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .db()?
            .ok_or(StoreError::GrantNotFound { id })?;
        read_grant(&row)
    }

    async fn grants(&self, now: OffsetDateTime) -> Result<Vec<Grant>, StoreError> {
        let rows = sqlx::query(SELECT_LIVE_GRANTS)
            .bind(nanos(now))
            .fetch_all(&self.pool)
            .await
            .db()?;
        let mut live = Vec::with_capacity(rows.len());
        for row in &rows {
            let grant = read_grant(row)?;
            if grant.is_live(now) {
                live.push(grant);
            }
        }
        Ok(live)
    }

    async fn update_grant(&self, next: &Grant, record: &AuditRecord) -> Result<(), StoreError> {
        let row = GrantRow::of(next)?;
        let id = next.id();
        let mut tx = self.begin_write().await?;
        let done = bind_grant(sqlx::query(UPDATE_GRANT), &row)
            .execute(&mut *tx)
            .await
            .db()?;
        if done.rows_affected() == 0 {
            let found: i64 = sqlx::query_scalar(GRANT_VERSION)
                .bind(&row.id)
                .fetch_optional(&mut *tx)
                .await
                .db()?
                .ok_or(StoreError::GrantNotFound { id })?;
            return Err(StoreError::GrantConflict {
                id,
                expected: next.version().saturating_sub(1),
                found: u64::try_from(found).unwrap_or_default(),
            });
        }
        append(&mut tx, record).await?;
        tx.commit().await.db()
    }
}

#[async_trait]
impl ControlStore for PostgresStore {
    async fn switches(&self) -> Result<Switches, StoreError> {
        // One snapshot for both reads.
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .db()?;
        let scopes: Vec<String> =
            sqlx::query_scalar("SELECT scope FROM approval_kill_switches ORDER BY seq")
                .fetch_all(&mut *tx)
                .await
                .db()?;
        let read_only: Option<String> =
            sqlx::query_scalar("SELECT value FROM approval_settings WHERE name = 'read_only'")
                .fetch_optional(&mut *tx)
                .await
                .db()?;
        tx.commit().await.db()?;
        Ok(Switches {
            killed: scopes
                .iter()
                .map(|s| parse_scope(s))
                .collect::<Result<_, _>>()?,
            read_only: read_only.as_deref() == Some("true"),
        })
    }

    async fn set_kill_switch(
        &self,
        scope: KillScope,
        engaged: bool,
        record: &AuditRecord,
    ) -> Result<(), StoreError> {
        let key = scope_key(&scope)?;
        let sql = if engaged {
            // A switch engaged again moves to the end, as if released and engaged.
            "INSERT INTO approval_kill_switches (scope) VALUES ($1) \
             ON CONFLICT (scope) DO UPDATE SET seq = excluded.seq"
        } else {
            "DELETE FROM approval_kill_switches WHERE scope = $1"
        };
        let mut tx = self.begin_write().await?;
        sqlx::query(sql).bind(&key).execute(&mut *tx).await.db()?;
        append(&mut tx, record).await?;
        tx.commit().await.db()
    }

    async fn set_read_only(&self, on: bool, record: &AuditRecord) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(SET_READ_ONLY)
            .bind(if on { "true" } else { "false" })
            .execute(&mut *tx)
            .await
            .db()?;
        append(&mut tx, record).await?;
        tx.commit().await.db()
    }

    async fn add_usage(
        &self,
        run_id: &str,
        delta: UsageDelta,
        now: OffsetDateTime,
    ) -> Result<RunUsage, StoreError> {
        if delta == UsageDelta::default() {
            let row = sqlx::query(SELECT_USAGE)
                .bind(run_id)
                .fetch_optional(&self.pool)
                .await
                .db()?;
            return read_usage(run_id, row.as_ref());
        }
        let mut tx = self.pool.begin().await.db()?;
        // Make sure the row exists, then lock it: concurrent adds take turns.
        sqlx::query(
            "INSERT INTO approval_run_usage (run_id, steps, tool_calls, usd, started_at) \
             VALUES ($1, 0, 0, 0, NULL) ON CONFLICT (run_id) DO NOTHING",
        )
        .bind(run_id)
        .execute(&mut *tx)
        .await
        .db()?;
        let row = sqlx::query(&format!("{SELECT_USAGE} FOR UPDATE"))
            .bind(run_id)
            .fetch_optional(&mut *tx)
            .await
            .db()?;
        let next = read_usage(run_id, row.as_ref())?.add(delta, now);
        let (steps, tool_calls, usd, started_at) = usage_columns(&next);
        sqlx::query(UPSERT_USAGE)
            .bind(run_id)
            .bind(steps)
            .bind(tool_calls)
            .bind(usd)
            .bind(started_at)
            .execute(&mut *tx)
            .await
            .db()?;
        tx.commit().await.db()?;
        Ok(next)
    }

    async fn usage(&self, run_id: &str) -> Result<RunUsage, StoreError> {
        let row = sqlx::query(SELECT_USAGE)
            .bind(run_id)
            .fetch_optional(&self.pool)
            .await
            .db()?;
        read_usage(run_id, row.as_ref())
    }
}

#[async_trait]
impl TrailWriter for PostgresStore {
    async fn append_audit(&self, record: &AuditRecord) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        append(&mut tx, record).await?;
        tx.commit().await.db()
    }
}

/// A cursor from a row of `name, after_seq, holder, lease_until`.
fn read_cursor(row: &PgRow) -> Result<TrailCursor, StoreError> {
    Ok(parse_cursor(
        row.try_get("name").db()?,
        row.try_get("after_seq").db()?,
        row.try_get("holder").db()?,
        row.try_get("lease_until").db()?,
    )?)
}

#[async_trait]
impl CursorStore for PostgresStore {
    async fn lease_cursor(
        &self,
        name: &str,
        holder: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<Option<TrailCursor>, StoreError> {
        let row = sqlx::query(LEASE_CURSOR)
            .bind(name)
            .bind(holder)
            .bind(nanos(now))
            .bind(nanos(until))
            .fetch_optional(&self.pool)
            .await
            .db()?;
        row.as_ref().map(read_cursor).transpose()
    }

    async fn advance_cursor(
        &self,
        name: &str,
        holder: &str,
        after_seq: u64,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(ADVANCE_CURSOR)
            .bind(name)
            .bind(holder)
            .bind(count(after_seq))
            .bind(nanos(until))
            .execute(&self.pool)
            .await
            .db()?;
        Ok(done.rows_affected() == 1)
    }

    async fn release_cursor(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        sqlx::query(RELEASE_CURSOR)
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await
            .db()?;
        Ok(())
    }

    async fn cursors(&self) -> Result<Vec<TrailCursor>, StoreError> {
        let rows = sqlx::query(SELECT_CURSORS)
            .fetch_all(&self.pool)
            .await
            .db()?;
        rows.iter().map(read_cursor).collect()
    }
}

#[async_trait]
impl TrailReader for PostgresStore {
    async fn audit_records(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = fetch(&self.pool, &audit_query(query)).await?;
        rows.iter().map(read_audit).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_quoted_and_bad_ones_refused() {
        assert_eq!(quote_ident("ag_test").expect("ok"), "\"ag_test\"");
        assert_eq!(quote_ident("a\"b").expect("ok"), "\"a\"\"b\"");
        assert!(quote_ident("").is_err());
        assert!(quote_ident("a\0b").is_err());
    }

    /// A page of the pending queue walks the queue index and stops after the page, even
    /// when every request ever decided is older than the pending ones (where walking
    /// `approval_requests_created` would read them all first).
    #[tokio::test]
    async fn a_page_of_the_pending_queue_reads_in_index_order() {
        let Ok(url) = std::env::var("APPROVAL_GATE_TEST_POSTGRES_URL") else {
            eprintln!("skipped: APPROVAL_GATE_TEST_POSTGRES_URL is not set");
            return;
        };
        let schema = format!("ag_unit_plan_{}", uuid::Uuid::new_v4().simple());
        let store = PostgresStore::connect_with(PostgresOptions::new(&url).schema(&schema))
            .await
            .expect("connect");
        sqlx::query(
            "INSERT INTO approval_requests SELECT md5(i::text), 1, \
             CASE WHEN i > 19000 THEN 'pending' ELSE 'executed' END, 'run', 'email.send', \
             md5(i::text), 'acme', NULL, i, 9000000000000000000, NULL, '{}' \
             FROM generate_series(1, 20000) i",
        )
        .execute(&store.pool)
        .await
        .expect("fill");
        sqlx::query("ANALYZE approval_requests")
            .execute(&store.pool)
            .await
            .expect("analyze");
        for query in super::super::sql::queue_pages() {
            let mut sql = list_query(&query, OffsetDateTime::UNIX_EPOCH);
            sql.text = format!("EXPLAIN {}", sql.text);
            let plan: Vec<String> = fetch(&store.pool, &sql)
                .await
                .expect("explain")
                .iter()
                .map(|row| row.try_get::<String, _>(0).expect("a plan line"))
                .collect();
            assert!(
                plan.iter()
                    .any(|step| step.contains("approval_requests_pending_queue")),
                "{plan:#?}"
            );
        }
        let drop = format!(
            "DROP SCHEMA {} CASCADE",
            quote_ident(&schema).expect("name")
        );
        sqlx::query(&drop).execute(&store.pool).await.expect("drop");
        store.close().await;
    }
}
