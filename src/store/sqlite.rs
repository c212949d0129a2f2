//! [`SqliteStore`]: approval requests in one SQLite file.

use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::query::Query;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{Executor as _, Row, Sqlite, Transaction};
use time::OffsetDateTime;

use super::sql::{
    AUDIT_HEAD, AuditRow, DUE, DataError, Db, GrantRow, INSERT_AUDIT, INSERT_GRANT, LIVE_GRANT,
    PENDING_TWINS, Param, RequestRow, SELECT_USAGE, SET_READ_ONLY, SPENT_GRANT, Sql, UPDATE_GRANT,
    UPDATE_REQUEST, UPSERT_USAGE, audit_query, list_query, nanos, parse_audit, parse_grant,
    parse_head, parse_request, parse_scope, pending_twin, scope_key, usage, usage_columns,
};
use super::{
    ApprovalStore, AuditQuery, Filed, Notifier, RequestChange, RequestQuery, StoreError,
    Subscription,
};
use crate::{
    ApprovalRequest, ArgsHash, AuditRecord, ChainHead, Grant, GrantId, KillScope, RequestId,
    RunUsage, Switches, ToolCall, UsageDelta,
};

/// The schema migrations, in order: version and SQL.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/sqlite_1.sql")),
    (2, include_str!("migrations/sqlite_2.sql")),
];

/// How long a connection waits for another one's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a write waits for its turn on this process's writer connection.
const WRITER_WAIT: Duration = Duration::from_secs(30);

/// An [`ApprovalStore`] in one SQLite file: the durable default on one machine.
///
/// Several processes on the same machine may open the same file: each transition is a
/// compare-and-set, and every write that reads first (`create` with its dedupe, grant
/// uses, budget counters, sweeps) runs in one `BEGIN IMMEDIATE` transaction, so writers
/// take turns. The file is in WAL mode, so readers never wait for writers. For workers
/// on several hosts, use `PostgresStore` (feature `postgres`).
///
/// ```no_run
/// # async fn demo() -> Result<(), approval_gate::StoreError> {
/// use approval_gate::SqliteStore;
///
/// // Creates the file if it is missing and brings its schema up to date.
/// let store = SqliteStore::connect("approvals.db").await?;
/// # let _ = store;
/// # Ok(())
/// # }
/// ```
///
/// # Durability: `synchronous`
///
/// [`connect`](Self::connect) sets `PRAGMA synchronous = FULL`: every commit waits for
/// the write-ahead log to reach the disk (one `fsync` per commit: under a millisecond
/// on a server SSD, several milliseconds on many other disks), so a decision or a
/// claim that was written survives a power cut or an OS crash. `NORMAL` skips that
/// `fsync` and syncs only at checkpoints: commits are faster and the file still never
/// corrupts, but the last transactions before a power cut or OS crash can be lost (a
/// crash of the process alone loses nothing). Losing a recorded claim could let an
/// approved tool run a second time after the machine comes back, which is why `FULL` is
/// the default. Choose `NORMAL` only when re-running a tool is harmless:
///
/// ```no_run
/// # async fn demo() -> Result<(), approval_gate::StoreError> {
/// use approval_gate::SqliteStore;
/// use approval_gate::sqlx::sqlite::SqliteSynchronous;
///
/// let options = SqliteStore::options("approvals.db")?.synchronous(SqliteSynchronous::Normal);
/// let store = SqliteStore::connect_with(options).await?;
/// # let _ = store;
/// # Ok(())
/// # }
/// ```
///
/// # Connections
///
/// Reads use [`pool`](Self::pool). Writes take turns on one more connection of their
/// own, so that this process's writers queue in order instead of meeting SQLite's lock
/// and backing off (which would make many concurrent tasks slower than one). Writers in
/// other processes still meet the lock and wait up to the busy timeout.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// One connection, for every write transaction of this process.
    writer: SqlitePool,
    /// The head of the audit trail as this process last wrote it: a guess that saves
    /// reading it before each append (see `append`).
    head: Arc<Mutex<Option<ChainHead>>>,
    /// Tells this store's (and its clones') subscribers of the changes it commits.
    notifier: Notifier,
}

impl SqliteStore {
    /// Opens (creating it if missing) the database at `url_or_path`, a file path or a
    /// `sqlite:` URL, with [`options`](Self::options), and brings its schema up to date
    /// ([`migrate`](Self::migrate)).
    pub async fn connect(url_or_path: &str) -> Result<Self, StoreError> {
        Self::connect_with(Self::options(url_or_path)?).await
    }

    /// Opens the database with `options` as given (start from [`options`](Self::options)
    /// to keep this crate's defaults) and brings its schema up to date.
    pub async fn connect_with(options: SqliteConnectOptions) -> Result<Self, StoreError> {
        let pool = SqlitePool::connect_with(options).await.db()?;
        let store = Self::from_pool(pool);
        store.migrate().await?;
        Ok(store)
    }

    /// The connection options [`connect`](Self::connect) uses for `url_or_path` (a file
    /// path, or a URL starting with `sqlite:`): create the file if missing, WAL journal,
    /// `synchronous = FULL` (see [the type's docs](Self#durability-synchronous)), a
    /// five-second busy timeout.
    pub fn options(url_or_path: &str) -> Result<SqliteConnectOptions, StoreError> {
        let options = if url_or_path.starts_with("sqlite:") {
            SqliteConnectOptions::from_str(url_or_path).db()?
        } else {
            SqliteConnectOptions::new().filename(url_or_path)
        };
        Ok(options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT))
    }

    /// A store on a pool the host configured. Does not migrate: call
    /// [`migrate`](Self::migrate) once before use.
    ///
    /// Writes go through one more connection, opened when first needed with the pool's
    /// own connect options.
    pub fn from_pool(pool: SqlitePool) -> Self {
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(WRITER_WAIT)
            .connect_lazy_with((*pool.connect_options()).clone());
        SqliteStore {
            pool,
            writer,
            head: Arc::default(),
            notifier: Notifier::new(),
        }
    }

    /// Closes every connection: the pool's and the writer's. The store (and its clones)
    /// cannot be used afterwards.
    pub async fn close(&self) {
        self.writer.close().await;
        self.pool.close().await;
    }

    /// The connection pool for reads, for the host's own queries. Close the store with
    /// [`close`](Self::close), which closes the writer's connection too.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Creates the tables and indexes this store needs, or brings them up to date.
    /// Idempotent, and safe to run from several processes at once. Fails, changing
    /// nothing, on a database migrated by a newer version of this crate.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        tx.execute(
            "CREATE TABLE IF NOT EXISTS approval_schema_version \
             (version INTEGER PRIMARY KEY NOT NULL)",
        )
        .await
        .db()?;
        let current: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM approval_schema_version")
                .fetch_one(&mut *tx)
                .await
                .db()?;
        let known = MIGRATIONS.last().map_or(0, |(v, _)| *v);
        if current > known {
            return Err(DataError::SchemaTooNew {
                found: current,
                known,
            }
            .into());
        }
        for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
            tx.execute(*sql).await.db()?;
            sqlx::query("INSERT INTO approval_schema_version (version) VALUES ($1)")
                .bind(version)
                .execute(&mut *tx)
                .await
                .db()?;
        }
        tx.commit().await.db()
    }

    /// Commits `tx`, then tells subscribers of the requests it changed.
    async fn commit_changed(
        &self,
        tx: Transaction<'static, Sqlite>,
        changed: &[ApprovalRequest],
    ) -> Result<(), StoreError> {
        tx.commit().await.db()?;
        for request in changed {
            self.notifier.notify(RequestChange {
                request_id: request.id(),
                state: request.stored_state(),
            });
        }
        Ok(())
    }

    /// A transaction holding the write lock from its start, so that what it reads
    /// cannot change before it writes.
    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        self.writer.begin_with("BEGIN IMMEDIATE").await.db()
    }
}

type SqliteQuery<'q> = Query<'q, Sqlite, SqliteArguments<'q>>;

fn bind_request<'q>(q: SqliteQuery<'q>, r: &'q RequestRow) -> SqliteQuery<'q> {
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

fn bind_grant<'q>(q: SqliteQuery<'q>, g: &'q GrantRow) -> SqliteQuery<'q> {
    q.bind(&g.id)
        .bind(g.expires_at)
        .bind(g.max_uses)
        .bind(g.uses)
        .bind(g.revoked_at)
        .bind(&g.body)
}

fn read_request(row: &SqliteRow) -> Result<ApprovalRequest, StoreError> {
    let id: &str = row.try_get("id").db()?;
    let body: &str = row.try_get("body").db()?;
    Ok(parse_request(id, body)?)
}

fn read_grant(row: &SqliteRow) -> Result<Grant, StoreError> {
    let id: &str = row.try_get("id").db()?;
    let body: &str = row.try_get("body").db()?;
    Ok(parse_grant(id, body)?)
}

fn read_usage(run_id: &str, row: Option<&SqliteRow>) -> Result<RunUsage, StoreError> {
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

/// Appends `record` to the trail inside `tx`, which holds the trail's write lock.
/// Appends `record` to the trail inside `tx` (which began with `BEGIN IMMEDIATE`, so it
/// holds the database's write lock).
///
/// The chain's head is taken from `guess`, the head this process last wrote, and the
/// insert checks in the same statement that the trail still ends there; only when
/// another process appended since (or a transaction rolled back) is the head read
/// first. Either way the record links to the trail's real last record.
async fn append(
    tx: &mut Transaction<'static, Sqlite>,
    record: &AuditRecord,
    guess: &Mutex<Option<ChainHead>>,
) -> Result<(), StoreError> {
    let guessed = *guess.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(head) = guessed {
        let (row, next) = AuditRow::linked(record, head)?;
        if insert_audit(tx, &row, INSERT_AUDIT_AFTER).await? {
            *guess.lock().unwrap_or_else(PoisonError::into_inner) = Some(next);
            return Ok(());
        }
    }
    let last: Option<(i64, String)> = sqlx::query_as(AUDIT_HEAD)
        .fetch_optional(&mut **tx)
        .await
        .db()?;
    let (row, next) = AuditRow::linked(record, parse_head(last)?)?;
    insert_audit(tx, &row, INSERT_AUDIT).await?;
    *guess.lock().unwrap_or_else(PoisonError::into_inner) = Some(next);
    Ok(())
}

/// Runs `sql` (one of the audit inserts) for `row`; whether it inserted.
async fn insert_audit(
    tx: &mut Transaction<'static, Sqlite>,
    row: &AuditRow,
    sql: &'static str,
) -> Result<bool, StoreError> {
    let done = sqlx::query(sql)
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
    Ok(done.rows_affected() == 1)
}

/// The request in the order of [`RequestRow`]'s binds, unless a request for the same
/// run, tool and args hash is pending at `$13` (mirrors [`pending_twin`]) or the id is
/// taken.
const INSERT_UNLESS_PENDING: &str = "INSERT INTO approval_requests \
     (id, version, state, run_id, tool, args_hash, tenant, tier, created_at, expires_at, \
      approval_expires_at, body) \
     SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12 \
     WHERE NOT EXISTS (SELECT 1 FROM approval_requests WHERE run_id = $4 AND tool = $5 \
       AND args_hash = $6 AND state = 'pending' AND expires_at > $13) \
     ON CONFLICT (id) DO NOTHING";

/// [`INSERT_AUDIT`], only if the trail ends right before the new record: its last
/// record is number `$1 - 1` with hash `$2`.
const INSERT_AUDIT_AFTER: &str = "INSERT INTO approval_audit \
     (seq, prev_hash, hash, at, event, run_id, request_id, actor, body) \
     SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9 \
     WHERE COALESCE((SELECT MAX(seq) FROM approval_audit), 0) = $1 - 1 \
     AND ($1 = 1 OR (SELECT hash FROM approval_audit WHERE seq = $1 - 1) = $2)";

fn read_audit(row: &SqliteRow) -> Result<AuditRecord, StoreError> {
    let seq: i64 = row.try_get("seq").db()?;
    let body: &str = row.try_get("body").db()?;
    Ok(parse_audit(seq, body)?)
}

/// The rows `sql` selects.
async fn fetch(pool: &SqlitePool, sql: &Sql) -> Result<Vec<SqliteRow>, StoreError> {
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
    tx: &mut Transaction<'static, Sqlite>,
    next: &ApprovalRequest,
) -> Result<bool, StoreError> {
    let row = RequestRow::of(next)?;
    let done = bind_request(sqlx::query(UPDATE_REQUEST), &row)
        .bind(row.version - 1)
        .execute(&mut **tx)
        .await
        .db()?;
    Ok(done.rows_affected() == 1)
}

#[async_trait]
impl ApprovalStore for SqliteStore {
    async fn create(
        &self,
        request: ApprovalRequest,
        record: &AuditRecord,
        now: OffsetDateTime,
    ) -> Result<Filed, StoreError> {
        let row = RequestRow::of(&request)?;
        let mut tx = self.begin_write().await?;
        // Insert unless an identical call is pending: one statement on the common path.
        let done = bind_request(sqlx::query(INSERT_UNLESS_PENDING), &row)
            .bind(nanos(now))
            .execute(&mut *tx)
            .await
            .db()?;
        if done.rows_affected() == 0 {
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
            return match pending_twin(twins, now) {
                Some(existing) => Ok(Filed {
                    request: existing,
                    created: false,
                }),
                None => Err(StoreError::Duplicate { id: request.id() }),
            };
        }
        append(&mut tx, record, &self.head).await?;
        tx.commit().await.db()?;
        Ok(Filed {
            request,
            created: true,
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

    async fn update(&self, next: &ApprovalRequest, record: &AuditRecord) -> Result<(), StoreError> {
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
        append(&mut tx, record, &self.head).await?;
        self.commit_changed(tx, std::slice::from_ref(next)).await
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
    ) -> Result<Vec<ApprovalRequest>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut tx = self.begin_write().await?;
        let rows = sqlx::query(&format!(
            "SELECT id, body FROM approval_requests WHERE {DUE} ORDER BY created_at, id LIMIT $2"
        ))
        .bind(nanos(now))
        .bind(super::sql::limit(limit))
        .fetch_all(&mut *tx)
        .await
        .db()?;
        let mut expired = Vec::with_capacity(rows.len());
        for row in &rows {
            let Ok(next) = read_request(row)?.expire(now) else {
                continue;
            };
            if write_over(&mut tx, &next).await? {
                append(&mut tx, &AuditRecord::timeout(now, &next), &self.head).await?;
                expired.push(next);
            }
        }
        self.commit_changed(tx, &expired).await?;
        Ok(expired)
    }

    async fn switches(&self) -> Result<Switches, StoreError> {
        // One statement, so one snapshot and one round trip to the connection.
        let rows: Vec<(Option<String>, Option<String>, i64)> = sqlx::query_as(
            "SELECT scope, NULL, seq FROM approval_kill_switches \
             UNION ALL SELECT NULL, value, 0 FROM approval_settings WHERE name = 'read_only' \
             ORDER BY 3",
        )
        .fetch_all(&self.pool)
        .await
        .db()?;
        let mut scopes = Vec::new();
        let mut read_only = None;
        for (scope, value, _) in rows {
            match scope {
                Some(scope) => scopes.push(scope),
                None => read_only = value,
            }
        }
        Ok(Switches {
            killed: scopes
                .iter()
                .map(|s| parse_scope(s))
                .collect::<Result<_, _>>()?,
            read_only: read_only.as_deref() == Some("true"),
        })
    }

    async fn set_kill_switch(&self, scope: KillScope, engaged: bool) -> Result<(), StoreError> {
        let key = scope_key(&scope)?;
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM approval_kill_switches WHERE scope = $1")
            .bind(&key)
            .execute(&mut *tx)
            .await
            .db()?;
        if engaged {
            sqlx::query("INSERT INTO approval_kill_switches (scope) VALUES ($1)")
                .bind(&key)
                .execute(&mut *tx)
                .await
                .db()?;
        }
        tx.commit().await.db()
    }

    async fn set_read_only(&self, on: bool) -> Result<(), StoreError> {
        sqlx::query(SET_READ_ONLY)
            .bind(if on { "true" } else { "false" })
            .execute(&self.writer)
            .await
            .db()?;
        Ok(())
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
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(SELECT_USAGE)
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

    async fn put_grant(&self, grant: &Grant, record: &AuditRecord) -> Result<(), StoreError> {
        let row = GrantRow::of(grant)?;
        let mut tx = self.begin_write().await?;
        bind_grant(sqlx::query(INSERT_GRANT), &row)
            .execute(&mut *tx)
            .await
            .db()?;
        append(&mut tx, record, &self.head).await?;
        tx.commit().await.db()
    }

    async fn use_grant(
        &self,
        call: &ToolCall,
        args_hash: &ArgsHash,
        policy_version: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Grant>, StoreError> {
        let live = format!("SELECT id, body FROM approval_grants WHERE {LIVE_GRANT} ORDER BY seq");
        // Look without the write lock first: most calls have no grant covering them.
        let rows = sqlx::query(&live)
            .bind(nanos(now))
            .fetch_all(&self.pool)
            .await
            .db()?;
        let mut covered = false;
        for row in &rows {
            if read_grant(row)?.covers(call, args_hash, now) {
                covered = true;
                break;
            }
        }
        if !covered {
            return Ok(None);
        }
        // Then again under the lock, where the use is counted.
        let mut tx = self.begin_write().await?;
        let rows = sqlx::query(&live)
            .bind(nanos(now))
            .fetch_all(&mut *tx)
            .await
            .db()?;
        for row in &rows {
            let grant = read_grant(row)?;
            if grant.covers(call, args_hash, now) {
                let used = grant.used();
                let row = GrantRow::of(&used)?;
                bind_grant(sqlx::query(UPDATE_GRANT), &row)
                    .execute(&mut *tx)
                    .await
                    .db()?;
                let record = AuditRecord::grant_used(now, call, *args_hash, policy_version, &used);
                append(&mut tx, &record, &self.head).await?;
                tx.commit().await.db()?;
                return Ok(Some(used));
            }
        }
        Ok(None)
    }

    async fn revoke_grant(
        &self,
        id: GrantId,
        by: &str,
        now: OffsetDateTime,
    ) -> Result<Grant, StoreError> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query("SELECT id, body FROM approval_grants WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await
            .db()?
            .ok_or(StoreError::GrantNotFound { id })?;
        let revoked = read_grant(&row)?.revoked(now);
        let row = GrantRow::of(&revoked)?;
        bind_grant(sqlx::query(UPDATE_GRANT), &row)
            .execute(&mut *tx)
            .await
            .db()?;
        let request_id = revoked.request_id();
        let request = sqlx::query("SELECT id, body FROM approval_requests WHERE id = $1")
            .bind(request_id.to_string())
            .fetch_optional(&mut *tx)
            .await
            .db()?
            .ok_or(StoreError::NotFound { id: request_id })?;
        let record = AuditRecord::grant_revoked(now, &read_request(&request)?, id, by);
        append(&mut tx, &record, &self.head).await?;
        tx.commit().await.db()?;
        Ok(revoked)
    }

    async fn grants(&self, now: OffsetDateTime) -> Result<Vec<Grant>, StoreError> {
        let now_n = nanos(now);
        let mut tx = self.begin_write().await?;
        sqlx::query(&format!("DELETE FROM approval_grants WHERE {SPENT_GRANT}"))
            .bind(now_n)
            .execute(&mut *tx)
            .await
            .db()?;
        let rows = sqlx::query(&format!(
            "SELECT id, body FROM approval_grants WHERE {LIVE_GRANT} ORDER BY seq"
        ))
        .bind(now_n)
        .fetch_all(&mut *tx)
        .await
        .db()?;
        tx.commit().await.db()?;
        let mut live = Vec::with_capacity(rows.len());
        for row in &rows {
            let grant = read_grant(row)?;
            if grant.is_live(now) {
                live.push(grant);
            }
        }
        Ok(live)
    }

    async fn append_audit(&self, record: &AuditRecord) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        append(&mut tx, record, &self.head).await?;
        tx.commit().await.db()
    }

    async fn audit_records(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = fetch(&self.pool, &audit_query(query)).await?;
        rows.iter().map(read_audit).collect()
    }

    async fn subscribe(&self) -> Result<Subscription, StoreError> {
        Ok(self.notifier.subscribe())
    }
}
