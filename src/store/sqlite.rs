//! [`SqliteStore`]: approval requests in one SQLite file.
//!
//! Each store method runs its whole transaction synchronously on a [`rusqlite`]
//! connection inside one [`tokio::task::spawn_blocking`]: one hop to a blocking thread
//! per method, however many statements the transaction runs.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::types::ToSql;
use rusqlite::{Connection, OpenFlags, Row, Statement, Transaction, TransactionBehavior};
use thiserror::Error;
use time::OffsetDateTime;

use super::sql::{
    ADVANCE_CURSOR, AUDIT_HEAD, AuditRow, COUNT_CALL, DUE, Db, GRANT_VERSION, GrantRow,
    INSERT_AUDIT, INSERT_GRANT, INSERT_REQUEST, LEASE_CURSOR, PENDING_TWINS, Param, RELEASE_CURSOR,
    RequestRow, SELECT_CURSORS, SELECT_GRANT, SELECT_LIVE_GRANTS, SELECT_USAGE, SET_READ_ONLY,
    SPENT_GRANT, Sql, UPDATE_GRANT, UPDATE_REQUEST, UPSERT_USAGE, audit_query, count,
    list_query_ordered, migrations_due, nanos, parse_audit, parse_cursor, parse_grant, parse_head,
    parse_request, parse_scope, pending_twin, scope_key, usage, usage_columns,
};
use super::{
    AuditQuery, ControlStore, CursorStore, Expired, Filed, GrantStore, Notifier, RequestChange,
    RequestQuery, RequestStore, StoreError, Subscription, TrailCursor, TrailReader, TrailWriter,
    end_grant, ends_grants,
};
use crate::approval::{ApprovalRequest, RequestId, RequestState};
use crate::audit::AuditRecord;
use crate::grant::{Grant, GrantId};
use crate::run::{KillScope, RunUsage, Switches, UsageDelta};

/// The schema migrations, in order: version and SQL.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/sqlite_1.sql")),
    (2, include_str!("migrations/sqlite_2.sql")),
    (3, include_str!("migrations/sqlite_3.sql")),
    (4, include_str!("migrations/sqlite_4.sql")),
    (5, include_str!("migrations/sqlite_5.sql")),
    (6, include_str!("migrations/sqlite_6.sql")),
];

/// How long a connection waits for another one's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How many idle read connections a store keeps by default.
const READ_CONNECTIONS: usize = 4;

/// How many prepared statements each connection keeps.
const STATEMENT_CACHE: usize = 64;

/// Why the store could not run an operation, apart from SQLite's own errors.
#[derive(Debug, Error)]
enum SqliteError {
    /// The store was closed.
    #[error("the sqlite store is closed")]
    Closed,
    /// Not called from inside a Tokio runtime, which runs the blocking work.
    #[error("the sqlite store needs a tokio runtime")]
    NoRuntime(#[source] tokio::runtime::TryCurrentError),
    /// The blocking task panicked or was cancelled.
    #[error("the sqlite store's blocking task failed")]
    Task(#[source] tokio::task::JoinError),
    /// A `sqlite:` URL with a parameter this store does not read.
    #[error("sqlite url parameter `{0}` is not supported: set options with `SqliteOptions`")]
    UrlParameter(String),
    /// An in-memory database, which each connection would see empty.
    #[error("in-memory sqlite databases are not supported: use `MemoryStore`")]
    InMemory,
}

impl From<SqliteError> for StoreError {
    fn from(e: SqliteError) -> Self {
        StoreError::backend(e)
    }
}

/// How long a commit waits for the disk: SQLite's `PRAGMA synchronous`. See
/// [`SqliteStore`'s durability notes](SqliteStore#durability-synchronous).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SqliteSynchronous {
    /// No `fsync` at all: a power cut or OS crash can corrupt the file. For throwaway
    /// databases (tests) only.
    Off,
    /// `fsync` only at checkpoints: the file never corrupts, but the last transactions
    /// before a power cut or OS crash can be lost.
    Normal,
    /// `fsync` of the write-ahead log at every commit: a commit survives a power cut or
    /// an OS crash. The default.
    #[default]
    Full,
    /// [`Full`](Self::Full), and the directory is synced too when the log is reset.
    Extra,
}

impl SqliteSynchronous {
    fn pragma(self) -> &'static str {
        match self {
            SqliteSynchronous::Off => "OFF",
            SqliteSynchronous::Normal => "NORMAL",
            SqliteSynchronous::Full => "FULL",
            SqliteSynchronous::Extra => "EXTRA",
        }
    }
}

/// How [`SqliteStore::connect_with`] opens its database: start from
/// [`SqliteStore::options`] (this crate's defaults) and change what you need.
///
/// ```
/// use std::time::Duration;
/// use approval_gate::{SqliteStore, store::SqliteSynchronous};
///
/// let options = SqliteStore::options("approvals.db")
///     .synchronous(SqliteSynchronous::Normal)
///     .busy_timeout(Duration::from_secs(10))
///     .read_connections(8);
/// # let _ = options;
/// ```
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    path: PathBuf,
    synchronous: SqliteSynchronous,
    busy_timeout: Duration,
    read_connections: usize,
    create_if_missing: bool,
    /// A problem with the URL, reported by `connect_with`.
    bad_url: Option<UrlProblem>,
}

#[derive(Debug, Clone)]
enum UrlProblem {
    Parameter(String),
    InMemory,
}

impl SqliteOptions {
    /// The options for `url_or_path`, a file path or a `sqlite:` URL (`sqlite://path`,
    /// `sqlite:path`; of the URL's parameters only `mode=rwc` and `mode=rw` are read):
    /// create the file if missing, WAL journal, `synchronous = FULL`, a five-second busy
    /// timeout, up to four idle read connections kept.
    pub fn new(url_or_path: &str) -> Self {
        let mut options = SqliteOptions {
            path: PathBuf::new(),
            synchronous: SqliteSynchronous::Full,
            busy_timeout: BUSY_TIMEOUT,
            read_connections: READ_CONNECTIONS,
            create_if_missing: true,
            bad_url: None,
        };
        let Some(rest) = url_or_path.strip_prefix("sqlite:") else {
            options.path = PathBuf::from(url_or_path);
            return options;
        };
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        if path == ":memory:" || path.is_empty() {
            options.bad_url = Some(UrlProblem::InMemory);
        }
        for parameter in query.split('&').filter(|p| !p.is_empty()) {
            match parameter {
                "mode=rwc" => options.create_if_missing = true,
                "mode=rw" => options.create_if_missing = false,
                other => options.bad_url = Some(UrlProblem::Parameter(other.to_owned())),
            }
        }
        options.path = PathBuf::from(path);
        options
    }

    /// How long each commit waits for the disk (default [`SqliteSynchronous::Full`]).
    pub fn synchronous(mut self, synchronous: SqliteSynchronous) -> Self {
        self.synchronous = synchronous;
        self
    }

    /// How long a connection waits for another connection's lock (another process's
    /// write, a checkpoint) before failing (default five seconds). SQLite counts it in
    /// milliseconds in an `i32`: a longer timeout (above about 24.8 days) waits that
    /// long instead.
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// How many idle read connections the store keeps open for reuse (default four).
    /// More concurrent reads open more connections, closed after their read.
    pub fn read_connections(mut self, n: usize) -> Self {
        self.read_connections = n;
        self
    }

    /// Whether to create the file if it is missing (default `true`).
    pub fn create_if_missing(mut self, create: bool) -> Self {
        self.create_if_missing = create;
        self
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens a connection with these options.
    fn open(&self, reader: bool) -> Result<Connection, StoreError> {
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        if self.create_if_missing && !reader {
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
        }
        let conn = Connection::open_with_flags(&self.path, flags).db()?;
        // SQLite's limit, past which `busy_timeout` panics.
        let longest = Duration::from_millis(i32::MAX as u64);
        conn.busy_timeout(self.busy_timeout.min(longest)).db()?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        if reader {
            conn.pragma_update(None, "query_only", true).db()?;
        } else {
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| {
                row.get::<_, String>(0)
            })
            .db()?;
        }
        conn.pragma_update(None, "synchronous", self.synchronous.pragma())
            .db()?;
        Ok(conn)
    }
}

/// An [`ApprovalStore`](crate::ApprovalStore) in one SQLite file: the durable default on one machine.
///
/// Several processes on the same machine may open the same file: each transition is a
/// compare-and-set, and every write that reads first (`create` with its dedupe, grant
/// uses, budget counters, sweeps) runs in one `BEGIN IMMEDIATE` transaction, so writers
/// take turns. The file is in WAL mode, so readers never wait for writers. For workers
/// on several hosts, use `PostgresStore` (feature `postgres`).
///
/// The store runs on [`rusqlite`] (re-exported as `approval_gate::rusqlite`), and each
/// of its methods runs its whole transaction in one [`tokio::task::spawn_blocking`]:
/// call it from inside a Tokio runtime (any flavour).
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
/// use approval_gate::{SqliteStore, store::SqliteSynchronous};
///
/// let options = SqliteStore::options("approvals.db").synchronous(SqliteSynchronous::Normal);
/// let store = SqliteStore::connect_with(options).await?;
/// # let _ = store;
/// # Ok(())
/// # }
/// ```
///
/// # Connections
///
/// Writes take turns on one connection of their own, so that this process's writers
/// queue in order instead of meeting SQLite's lock and backing off (which would make
/// many concurrent tasks slower than one). Writers in other processes still meet the
/// lock and wait up to the busy timeout. Reads use a few more connections
/// ([`SqliteOptions::read_connections`]), which never wait for the writer. The writer
/// copies the write-ahead log into the database file (SQLite's automatic checkpoint)
/// after the commit that takes the log past a thousand pages, so the log stays a few
/// megabytes long and is written over from its start, which costs the disk less than
/// a log that grows.
///
/// Each operation runs to its end on its blocking thread once started: dropping its
/// future stops the waiting, not the transaction, which commits (and tells
/// subscribers) or rolls back as a whole.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
    /// Tells this store's (and its clones') subscribers of the changes it commits.
    notifier: Notifier,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.options.path)
            .field("synchronous", &self.inner.options.synchronous)
            .finish_non_exhaustive()
    }
}

/// The connections, shared by a store's clones.
struct Inner {
    options: SqliteOptions,
    /// The connection for every write transaction of this process; `None` once closed.
    writer: Mutex<Option<Connection>>,
    /// Idle read connections; `None` once closed.
    readers: Mutex<Option<Vec<Connection>>>,
}

/// Locks `mutex`, taking it back from a panic that poisoned it: a panic inside a
/// transaction rolled the transaction back as it unwound, so the connection is usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| {
        mutex.clear_poison();
        poisoned.into_inner()
    })
}

impl Inner {
    /// Runs `f` in one `BEGIN IMMEDIATE` transaction on the writer connection and
    /// commits it if `f` succeeds (rolls it back otherwise).
    fn write<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut writer = lock(&self.writer);
        let conn = writer.as_mut().ok_or(SqliteError::Closed)?;
        if !conn.is_autocommit() {
            // Left open by a panic that did not unwind through the transaction.
            conn.execute_batch("ROLLBACK").db()?;
        }
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .db()?;
        let out = f(&tx)?;
        tx.commit().db()?;
        Ok(out)
    }

    /// Runs `f` on an idle read connection (opening one if none is idle).
    fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let idle = lock(&self.readers)
            .as_mut()
            .ok_or(SqliteError::Closed)?
            .pop();
        let conn = match idle {
            Some(conn) => conn,
            None => self.options.open(true)?,
        };
        let out = f(&conn);
        if let Some(idle) = lock(&self.readers).as_mut()
            && idle.len() < self.options.read_connections
        {
            idle.push(conn);
        }
        out
    }

    fn close(&self) {
        let writer = lock(&self.writer).take();
        let readers = lock(&self.readers).take();
        drop(readers);
        if let Some(writer) = writer {
            // The last connection to close checkpoints the log; an error leaves the
            // log for the next opener, which loses nothing.
            let _ = writer.close();
        }
    }
}

/// Runs `f` on a blocking thread of the current Tokio runtime: a panic or a lost task
/// becomes an error, never a panic in the caller.
async fn blocking<T: Send + 'static>(
    inner: &Arc<Inner>,
    f: impl FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let runtime = tokio::runtime::Handle::try_current().map_err(SqliteError::NoRuntime)?;
    let inner = inner.clone();
    runtime
        .spawn_blocking(move || f(&inner))
        .await
        .map_err(SqliteError::Task)?
}

impl SqliteStore {
    /// Opens (creating it if missing) the database at `url_or_path`, a file path or a
    /// `sqlite:` URL, with [`options`](Self::options), and brings its schema up to date
    /// ([`migrate`](Self::migrate)).
    pub async fn connect(url_or_path: &str) -> Result<Self, StoreError> {
        Self::connect_with(Self::options(url_or_path)).await
    }

    /// Opens the database with `options` (start from [`options`](Self::options) to keep
    /// this crate's defaults) and brings its schema up to date.
    pub async fn connect_with(options: SqliteOptions) -> Result<Self, StoreError> {
        match &options.bad_url {
            Some(UrlProblem::Parameter(p)) => {
                return Err(SqliteError::UrlParameter(p.clone()).into());
            }
            Some(UrlProblem::InMemory) => return Err(SqliteError::InMemory.into()),
            None => {}
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(SqliteError::NoRuntime)?;
        let opener = options.clone();
        let writer = runtime
            .spawn_blocking(move || opener.open(false))
            .await
            .map_err(SqliteError::Task)??;
        let store = SqliteStore {
            inner: Arc::new(Inner {
                options,
                writer: Mutex::new(Some(writer)),
                readers: Mutex::new(Some(Vec::new())),
            }),
            notifier: Notifier::new(),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// The options [`connect`](Self::connect) uses for `url_or_path` (a file path, or a
    /// URL starting with `sqlite:`): create the file if missing, WAL journal,
    /// `synchronous = FULL` (see [the type's docs](Self#durability-synchronous)), a
    /// five-second busy timeout. See [`SqliteOptions::new`].
    pub fn options(url_or_path: &str) -> SqliteOptions {
        SqliteOptions::new(url_or_path)
    }

    /// The database file, for the host's own connections (for example a
    /// `rusqlite::Connection` for its own queries).
    pub fn path(&self) -> &Path {
        &self.inner.options.path
    }

    /// Closes every connection. The store (and its clones) cannot be used afterwards:
    /// their operations fail with [`StoreError::Backend`].
    pub async fn close(&self) {
        let inner = self.inner.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let _ = runtime.spawn_blocking(move || inner.close()).await;
            }
            Err(_) => inner.close(),
        }
    }

    /// Creates the tables and indexes this store needs, or brings them up to date.
    /// Idempotent, and safe to run from several processes at once. Fails, changing
    /// nothing, on a database migrated by a newer version of this crate.
    /// [`connect`](Self::connect) runs it.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute_batch(
                "CREATE TABLE IF NOT EXISTS approval_schema_version \
                 (version INTEGER PRIMARY KEY NOT NULL)",
            )
            .db()?;
            let current: i64 = tx
                .query_row(
                    "SELECT COALESCE(MAX(version), 0) FROM approval_schema_version",
                    [],
                    |row| row.get(0),
                )
                .db()?;
            for (version, sql) in migrations_due(MIGRATIONS, current)? {
                tx.execute_batch(sql).db()?;
                execute(
                    tx,
                    "INSERT INTO approval_schema_version (version) VALUES ($1)",
                    &[version],
                )?;
            }
            Ok(())
        })
        .await
    }

    /// Runs `f` in one write transaction on a blocking thread.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        blocking(&self.inner, move |inner| inner.write(f)).await
    }

    /// Runs `f` on a read connection on a blocking thread.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        blocking(&self.inner, move |inner| inner.read(f)).await
    }

    /// Runs `f` in one write transaction on a blocking thread, then (on the same thread,
    /// so even if the caller stopped waiting) tells subscribers of the requests `f`
    /// changed, which it returns with its answer.
    async fn write_changes<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<(T, Vec<RequestChange>), StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let notifier = self.notifier.clone();
        blocking(&self.inner, move |inner| {
            let (out, changes) = inner.write(f)?;
            for change in changes {
                notifier.notify(change);
            }
            Ok(out)
        })
        .await
    }
}

/// The names of the first placeholders, `$1` to `$16`.
const PLACEHOLDERS: [&str; 16] = [
    "$1", "$2", "$3", "$4", "$5", "$6", "$7", "$8", "$9", "$10", "$11", "$12", "$13", "$14", "$15",
    "$16",
];

/// Binds `values` to the placeholders `$1`, `$2`, … of `stmt`, by name: SQLite numbers
/// named parameters in order of first appearance, which need not be `$N`'s `N`.
fn bind(stmt: &mut Statement<'_>, values: &[&dyn ToSql]) -> Result<(), StoreError> {
    if stmt.parameter_count() != values.len() {
        return Err(StoreError::backend(rusqlite::Error::InvalidParameterCount(
            values.len(),
            stmt.parameter_count(),
        )));
    }
    for (i, value) in values.iter().enumerate() {
        let owned;
        let name = match PLACEHOLDERS.get(i) {
            Some(name) => *name,
            None => {
                owned = format!("${}", i + 1);
                owned.as_str()
            }
        };
        let index = stmt.parameter_index(name).db()?.ok_or_else(|| {
            StoreError::backend(rusqlite::Error::InvalidParameterName(name.into()))
        })?;
        stmt.raw_bind_parameter(index, value).db()?;
    }
    Ok(())
}

/// Runs the statement `sql` with `values`; how many rows it changed.
fn execute(conn: &Connection, sql: &str, values: &[&dyn ToSql]) -> Result<usize, StoreError> {
    let mut stmt = conn.prepare_cached(sql).db()?;
    bind(&mut stmt, values)?;
    stmt.raw_execute().db()
}

/// The rows the query `sql` selects with `values`, each read by `read`.
fn query<T>(
    conn: &Connection,
    sql: &str,
    values: &[&dyn ToSql],
    mut read: impl FnMut(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).db()?;
    bind(&mut stmt, values)?;
    let mut rows = stmt.raw_query();
    let mut found = Vec::new();
    while let Some(row) = rows.next().db()? {
        found.push(read(row)?);
    }
    Ok(found)
}

/// The first row the query `sql` selects with `values`, read by `read`.
fn query_opt<T>(
    conn: &Connection,
    sql: &str,
    values: &[&dyn ToSql],
    read: impl FnOnce(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).db()?;
    bind(&mut stmt, values)?;
    let mut rows = stmt.raw_query();
    match rows.next().db()? {
        Some(row) => Ok(Some(read(row)?)),
        None => Ok(None),
    }
}

/// The rows of a query built at run time.
fn fetch<T>(
    conn: &Connection,
    sql: &Sql,
    read: impl FnMut(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let values: Vec<&dyn ToSql> = sql
        .params
        .iter()
        .map(|param| match param {
            Param::Int(n) => n as &dyn ToSql,
            Param::Text(s) => s as &dyn ToSql,
        })
        .collect();
    query(conn, &sql.text, &values, read)
}

fn request_values<'a>(r: &'a RequestRow, extra: &'a dyn ToSql) -> [&'a dyn ToSql; 13] {
    [
        &r.id,
        &r.version,
        &r.state,
        &r.run_id,
        &r.tool,
        &r.args_hash,
        &r.tenant,
        &r.tier,
        &r.created_at,
        &r.expires_at,
        &r.approval_expires_at,
        &r.body,
        extra,
    ]
}

fn grant_values(g: &GrantRow) -> [&dyn ToSql; 7] {
    [
        &g.id,
        &g.expires_at,
        &g.max_uses,
        &g.uses,
        &g.revoked_at,
        &g.body,
        &g.version,
    ]
}

fn read_request(row: &Row<'_>) -> Result<ApprovalRequest, StoreError> {
    let id: String = row.get("id").db()?;
    let body: String = row.get("body").db()?;
    Ok(parse_request(&id, &body)?)
}

fn read_grant(row: &Row<'_>) -> Result<Grant, StoreError> {
    let id: String = row.get("id").db()?;
    let body: String = row.get("body").db()?;
    Ok(parse_grant(&id, &body)?)
}

fn read_audit(row: &Row<'_>) -> Result<AuditRecord, StoreError> {
    let seq: i64 = row.get("seq").db()?;
    let body: String = row.get("body").db()?;
    Ok(parse_audit(seq, &body)?)
}

/// The usage of `run_id` as `conn` sees it.
fn select_usage(conn: &Connection, run_id: &str) -> Result<RunUsage, StoreError> {
    let found = query_opt(conn, SELECT_USAGE, &[&run_id], |row| {
        Ok(usage(
            run_id,
            row.get("steps").db()?,
            row.get("tool_calls").db()?,
            row.get("usd").db()?,
            row.get("started_at").db()?,
        )?)
    })?;
    Ok(found.unwrap_or_default())
}

/// Appends `record` to the trail inside `tx` (which began with `BEGIN IMMEDIATE`, so it
/// holds the database's write lock): linked after the trail's last record, read in the
/// same transaction, so that the chain holds whichever process appended last.
///
/// A record that [counts its call](AuditRecord::counts_call) adds it to its run's usage
/// here, in the same transaction.
fn append(tx: &Connection, record: &AuditRecord) -> Result<(), StoreError> {
    if record.counts_call() {
        execute(tx, COUNT_CALL, &[&record.run_id, &nanos(record.at)])?;
    }
    let last = query_opt(tx, AUDIT_HEAD, &[], |row| {
        Ok((row.get::<_, i64>(0).db()?, row.get::<_, String>(1).db()?))
    })?;
    let (row, _) = AuditRow::linked(record, parse_head(last)?)?;
    execute(
        tx,
        INSERT_AUDIT,
        &[
            &row.seq,
            &row.prev_hash,
            &row.hash,
            &row.at,
            &row.event,
            &row.run_id,
            &row.request_id,
            &row.actor,
            &row.body,
        ],
    )?;
    Ok(())
}

/// The request in the order of [`RequestRow`]'s binds, unless a request for the same
/// run, tool and args hash is pending at `$13` or the id is taken. When it inserts
/// nothing, `create` looks for the pending request of the same caller ([`pending_twin`])
/// and, finding none, inserts with [`INSERT_REQUEST`]: calls of one run, tool and args
/// hash from different callers are rare, so the common path stays one statement.
///
/// `+expires_at` keeps the planner on the dedupe index: without the `+`, it picks the
/// expiry index (`state = 'pending' AND expires_at > $13`) and reads every pending
/// request, so that filing slowed down with the number pending.
const INSERT_UNLESS_PENDING: &str = "INSERT INTO approval_requests \
     (id, version, state, run_id, tool, args_hash, tenant, tier, created_at, expires_at, \
      approval_expires_at, body) \
     SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12 \
     WHERE NOT EXISTS (SELECT 1 FROM approval_requests WHERE run_id = $4 AND tool = $5 \
       AND args_hash = $6 AND state = 'pending' AND +expires_at > $13) \
     ON CONFLICT (id) DO NOTHING";

/// The query behind [`RequestStore::list`](super::RequestStore::list) on SQLite.
///
/// The pending requests are read in order from their queue index
/// (`approval_requests_pending_queue`, schema version 5), so that a page reads its own
/// rows and no more, however many are pending: `INDEXED BY` holds the planner to it,
/// which would otherwise take the expiry index, read every pending request and sort
/// them. The approved requests have a partial index of their own; ordering by
/// `+created_at, +id` keeps the planner on it. Without the `+`, it walks the whole
/// `created` index in order to skip the sort, reading every request ever filed to find
/// the few still approved.
fn list_sql(query: &RequestQuery, now: OffsetDateTime) -> Sql {
    let (from, order) = match query.state {
        Some(RequestState::Pending) => (
            "approval_requests INDEXED BY approval_requests_pending_queue",
            " ORDER BY created_at, id",
        ),
        Some(RequestState::Approved) => ("approval_requests", " ORDER BY +created_at, +id"),
        _ => ("approval_requests", " ORDER BY created_at, id"),
    };
    list_query_ordered(query, now, from, order)
}

/// The requests due at `$1`, oldest first, at most `$2`.
///
/// `+created_at, +id`: without the `+`, the planner may walk the whole `created` index
/// in order to skip the sort, and read every request to find the few that are due.
fn sweep_query() -> String {
    format!("SELECT id, body FROM approval_requests WHERE {DUE} ORDER BY +created_at, +id LIMIT $2")
}

/// The notice of a committed change to `request`.
fn change(request: &ApprovalRequest) -> RequestChange {
    RequestChange {
        request_id: request.id(),
        state: request.stored_state(),
    }
}

/// Writes `next` over the version before it inside `tx`; whether it was written.
fn write_over(tx: &Connection, next: &ApprovalRequest) -> Result<bool, StoreError> {
    let row = RequestRow::of(next)?;
    let expected = row.version - 1;
    let values: [&dyn ToSql; 6] = [
        &row.id,
        &row.version,
        &row.state,
        &row.approval_expires_at,
        &expected,
        &row.body,
    ];
    Ok(execute(tx, UPDATE_REQUEST, &values)? == 1)
}

#[async_trait]
impl RequestStore for SqliteStore {
    async fn create(
        &self,
        request: ApprovalRequest,
        record: &AuditRecord,
        now: OffsetDateTime,
    ) -> Result<Filed, StoreError> {
        let row = RequestRow::of(&request)?;
        let record = record.clone();
        self.write_changes(move |tx| {
            // Insert unless an identical call is pending: one statement on the common path.
            let now_n = nanos(now);
            let values = request_values(&row, &now_n);
            if execute(tx, INSERT_UNLESS_PENDING, &values)? == 0 {
                // A request of the same run, tool and args hash is pending, or the id is
                // taken: join the pending request of the same caller, if there is one.
                let twins = query(
                    tx,
                    PENDING_TWINS,
                    &[&row.run_id, &row.tool, &row.args_hash],
                    read_request,
                )?;
                if let Some(joined) = pending_twin(twins, request.call(), now) {
                    let merged =
                        AuditRecord::merged(now, request.call(), request.args_hash(), &joined)
                            .counting_call(record.counts_call());
                    append(tx, &merged)?;
                    let filed = Filed {
                        request: joined,
                        created: false,
                        record: merged,
                    };
                    return Ok((filed, Vec::new()));
                }
                // Only another caller's: file this one beside it.
                if execute(tx, INSERT_REQUEST, &values[..12])? == 0 {
                    return Err(StoreError::Duplicate { id: request.id() });
                }
            }
            append(tx, &record)?;
            let changes = vec![change(&request)];
            Ok((
                Filed {
                    request,
                    created: true,
                    record,
                },
                changes,
            ))
        })
        .await
    }

    async fn get(&self, id: RequestId) -> Result<ApprovalRequest, StoreError> {
        self.read(move |conn| {
            query_opt(
                conn,
                "SELECT id, body FROM approval_requests WHERE id = $1",
                &[&id.to_string()],
                read_request,
            )?
            .ok_or(StoreError::NotFound { id })
        })
        .await
    }

    async fn update(
        &self,
        next: &ApprovalRequest,
        record: &AuditRecord,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let (next, record) = (next.clone(), record.clone());
        self.write_changes(move |tx| {
            if !write_over(tx, &next)? {
                let id = next.id();
                let found: i64 = query_opt(
                    tx,
                    "SELECT version FROM approval_requests WHERE id = $1",
                    &[&id.to_string()],
                    |row| row.get(0).db(),
                )?
                .ok_or(StoreError::NotFound { id })?;
                return Err(StoreError::Conflict {
                    id,
                    expected: next.version().saturating_sub(1),
                    found: u64::try_from(found).unwrap_or_default(),
                });
            }
            append(tx, &record)?;
            let at = record.at;
            let mut records = vec![record];
            if ends_grants(&next) {
                let unrevoked = query(
                    tx,
                    "SELECT id, body FROM approval_grants WHERE revoked_at IS NULL ORDER BY seq",
                    &[],
                    read_grant,
                )?;
                for grant in unrevoked.iter().filter(|g| g.request_id() == next.id()) {
                    let (revoked, revocation) = end_grant(&next, grant, at);
                    execute(tx, UPDATE_GRANT, &grant_values(&GrantRow::of(&revoked)?))?;
                    append(tx, &revocation)?;
                    records.push(revocation);
                }
            }
            Ok((records, vec![change(&next)]))
        })
        .await
    }

    async fn list(
        &self,
        query: &RequestQuery,
        now: OffsetDateTime,
    ) -> Result<Vec<ApprovalRequest>, StoreError> {
        let query = query.clone();
        self.read(move |conn| {
            let mut found = Vec::new();
            fetch(conn, &list_sql(&query, now), |row| {
                let request = read_request(row)?;
                if query.matches(&request, now) {
                    found.push(request);
                }
                Ok(())
            })?;
            Ok(found)
        })
        .await
    }

    async fn sweep_expired(
        &self,
        now: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<Expired>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.write_changes(move |tx| {
            let due = query(
                tx,
                &sweep_query(),
                &[&nanos(now), &super::sql::limit(limit)],
                read_request,
            )?;
            let mut expired = Vec::with_capacity(due.len());
            for request in due {
                let Ok(next) = request.expire(now) else {
                    continue;
                };
                if write_over(tx, &next)? {
                    let record = AuditRecord::timeout(now, &next);
                    append(tx, &record)?;
                    expired.push(Expired {
                        request: next,
                        record,
                    });
                }
            }
            let changes = expired.iter().map(|e| change(&e.request)).collect();
            Ok((expired, changes))
        })
        .await
    }

    async fn subscribe(&self) -> Result<Subscription, StoreError> {
        Ok(self.notifier.subscribe())
    }
}

#[async_trait]
impl GrantStore for SqliteStore {
    async fn put_grant(&self, grant: &Grant, record: &AuditRecord) -> Result<(), StoreError> {
        let row = GrantRow::of(grant)?;
        let record = record.clone();
        self.write(move |tx| {
            // Forget the grants that can never cover a call again at the time of
            // `record` (revoked ones stay): writes prune, so that reads change nothing.
            execute(
                tx,
                &format!("DELETE FROM approval_grants WHERE {SPENT_GRANT}"),
                &[&nanos(record.at)],
            )?;
            execute(tx, INSERT_GRANT, &grant_values(&row))?;
            append(tx, &record)
        })
        .await
    }

    async fn grant(&self, id: GrantId) -> Result<Grant, StoreError> {
        self.read(move |conn| {
            query_opt(conn, SELECT_GRANT, &[&id.to_string()], read_grant)?
                .ok_or(StoreError::GrantNotFound { id })
        })
        .await
    }

    async fn grants(&self, now: OffsetDateTime) -> Result<Vec<Grant>, StoreError> {
        let grants = self
            .read(move |conn| query(conn, SELECT_LIVE_GRANTS, &[&nanos(now)], read_grant))
            .await?;
        Ok(grants.into_iter().filter(|g| g.is_live(now)).collect())
    }

    async fn update_grant(&self, next: &Grant, record: &AuditRecord) -> Result<(), StoreError> {
        let row = GrantRow::of(next)?;
        let record = record.clone();
        let (id, version) = (next.id(), next.version());
        self.write(move |tx| {
            if execute(tx, UPDATE_GRANT, &grant_values(&row))? == 0 {
                let found: i64 = query_opt(tx, GRANT_VERSION, &[&row.id], |r| r.get(0).db())?
                    .ok_or(StoreError::GrantNotFound { id })?;
                return Err(StoreError::GrantConflict {
                    id,
                    expected: version.saturating_sub(1),
                    found: u64::try_from(found).unwrap_or_default(),
                });
            }
            append(tx, &record)
        })
        .await
    }
}

#[async_trait]
impl ControlStore for SqliteStore {
    async fn switches(&self) -> Result<Switches, StoreError> {
        let rows = self
            .read(|conn| {
                // One statement, so one snapshot.
                query(
                    conn,
                    "SELECT scope, NULL, seq FROM approval_kill_switches \
                     UNION ALL SELECT NULL, value, 0 FROM approval_settings \
                     WHERE name = 'read_only' ORDER BY 3",
                    &[],
                    |row| {
                        Ok((
                            row.get::<_, Option<String>>(0).db()?,
                            row.get::<_, Option<String>>(1).db()?,
                        ))
                    },
                )
            })
            .await?;
        let mut scopes = Vec::new();
        let mut read_only = None;
        for (scope, value) in rows {
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

    async fn set_kill_switch(
        &self,
        scope: KillScope,
        engaged: bool,
        record: &AuditRecord,
    ) -> Result<(), StoreError> {
        let key = scope_key(&scope)?;
        let record = record.clone();
        self.write(move |tx| {
            execute(
                tx,
                "DELETE FROM approval_kill_switches WHERE scope = $1",
                &[&key],
            )?;
            if engaged {
                execute(
                    tx,
                    "INSERT INTO approval_kill_switches (scope) VALUES ($1)",
                    &[&key],
                )?;
            }
            append(tx, &record)
        })
        .await
    }

    async fn set_read_only(&self, on: bool, record: &AuditRecord) -> Result<(), StoreError> {
        let record = record.clone();
        self.write(move |tx| {
            execute(tx, SET_READ_ONLY, &[&if on { "true" } else { "false" }])?;
            append(tx, &record)
        })
        .await
    }

    async fn add_usage(
        &self,
        run_id: &str,
        delta: UsageDelta,
        now: OffsetDateTime,
    ) -> Result<RunUsage, StoreError> {
        let run_id = run_id.to_owned();
        if delta == UsageDelta::default() {
            return self.read(move |conn| select_usage(conn, &run_id)).await;
        }
        self.write(move |tx| {
            let next = select_usage(tx, &run_id)?.add(delta, now);
            let (steps, tool_calls, usd, started_at) = usage_columns(&next);
            execute(
                tx,
                UPSERT_USAGE,
                &[&run_id, &steps, &tool_calls, &usd, &started_at],
            )?;
            Ok(next)
        })
        .await
    }

    async fn usage(&self, run_id: &str) -> Result<RunUsage, StoreError> {
        let run_id = run_id.to_owned();
        self.read(move |conn| select_usage(conn, &run_id)).await
    }
}

#[async_trait]
impl TrailWriter for SqliteStore {
    async fn append_audit(&self, record: &AuditRecord) -> Result<(), StoreError> {
        let record = record.clone();
        self.write(move |tx| append(tx, &record)).await
    }
}

/// A cursor from a row of `name, after_seq, holder, lease_until`.
fn read_cursor(row: &Row<'_>) -> Result<TrailCursor, StoreError> {
    Ok(parse_cursor(
        row.get(0).db()?,
        row.get(1).db()?,
        row.get(2).db()?,
        row.get(3).db()?,
    )?)
}

#[async_trait]
impl CursorStore for SqliteStore {
    async fn lease_cursor(
        &self,
        name: &str,
        holder: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<Option<TrailCursor>, StoreError> {
        let (name, holder) = (name.to_owned(), holder.to_owned());
        self.write(move |tx| {
            query_opt(
                tx,
                LEASE_CURSOR,
                &[&name, &holder, &nanos(now), &nanos(until)],
                read_cursor,
            )
        })
        .await
    }

    async fn advance_cursor(
        &self,
        name: &str,
        holder: &str,
        after_seq: u64,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let (name, holder) = (name.to_owned(), holder.to_owned());
        self.write(move |tx| {
            let moved = execute(
                tx,
                ADVANCE_CURSOR,
                &[&name, &holder, &count(after_seq), &nanos(until)],
            )?;
            Ok(moved == 1)
        })
        .await
    }

    async fn release_cursor(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        let (name, holder) = (name.to_owned(), holder.to_owned());
        self.write(move |tx| execute(tx, RELEASE_CURSOR, &[&name, &holder]).map(drop))
            .await
    }

    async fn cursors(&self) -> Result<Vec<TrailCursor>, StoreError> {
        self.read(|conn| query(conn, SELECT_CURSORS, &[], read_cursor))
            .await
    }
}

#[async_trait]
impl TrailReader for SqliteStore {
    async fn audit_records(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        let sql = audit_query(query);
        self.read(move |conn| fetch(conn, &sql, read_audit)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The record of read-only mode turned on.
    fn read_only_on() -> AuditRecord {
        let event = crate::audit::AuditEvent::ReadOnlyChanged {
            by: "ops".into(),
            on: true,
        };
        AuditRecord::control(OffsetDateTime::UNIX_EPOCH, "v", event)
    }

    fn temp_db(name: &str) -> (PathBuf, PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "approval-gate-unit-{name}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("approvals.db");
        (dir, path)
    }

    #[tokio::test]
    async fn connections_use_the_synchronous_setting() {
        let (dir, path) = temp_db("sync");
        for (sync, level) in [(SqliteSynchronous::Full, 2), (SqliteSynchronous::Normal, 1)] {
            let options = SqliteStore::options(path.to_str().unwrap()).synchronous(sync);
            let store = SqliteStore::connect_with(options).await.unwrap();
            let (writer, reader) = blocking(&store.inner, |inner| {
                let writer = inner.write(|tx| {
                    tx.query_row("PRAGMA synchronous", [], |r| r.get::<_, i64>(0))
                        .db()
                })?;
                let reader = inner.read(|conn| {
                    conn.query_row("PRAGMA synchronous", [], |r| r.get::<_, i64>(0))
                        .db()
                })?;
                Ok((writer, reader))
            })
            .await
            .unwrap();
            assert_eq!((writer, reader), (level, level));
            store.close().await;
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_panic_inside_a_transaction_is_an_error_and_rolls_back() {
        let (dir, path) = temp_db("panic");
        let store = SqliteStore::connect(path.to_str().unwrap()).await.unwrap();
        let err = store
            .write(|tx| -> Result<(), StoreError> {
                execute(tx, SET_READ_ONLY, &[&"true"])?;
                panic!("boom")
            })
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Backend { .. }), "{err:?}");
        // The writer still works, and the panicked write did not stick.
        assert!(!store.switches().await.unwrap().read_only);
        store.set_read_only(true, &read_only_on()).await.unwrap();
        assert!(store.switches().await.unwrap().read_only);
        store.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_closed_store_fails_instead_of_panicking() {
        let (dir, path) = temp_db("closed");
        let store = SqliteStore::connect(path.to_str().unwrap()).await.unwrap();
        store.close().await;
        assert!(matches!(
            store.switches().await,
            Err(StoreError::Backend { .. })
        ));
        assert!(matches!(
            store.set_read_only(true, &read_only_on()).await,
            Err(StoreError::Backend { .. })
        ));
        let _ = std::fs::remove_dir_all(dir);
    }

    /// The plan SQLite makes for `sql` on `store`'s database, one step per line.
    async fn plan(store: &SqliteStore, sql: String) -> Vec<String> {
        store
            .read(move |conn| {
                // Unbound parameters are NULL, which the plan does not depend on.
                let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).db()?;
                let mut rows = stmt.raw_query();
                let mut plan = Vec::new();
                while let Some(row) = rows.next().db()? {
                    plan.push(row.get::<_, String>(3).db()?);
                }
                Ok(plan)
            })
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn the_dedupe_lookup_uses_its_index() {
        let (dir, path) = temp_db("plan");
        let store = SqliteStore::connect(path.to_str().unwrap()).await.unwrap();
        for sql in [INSERT_UNLESS_PENDING, PENDING_TWINS] {
            let plan = plan(&store, sql.to_owned()).await;
            assert!(
                plan.iter()
                    .any(|step| step.contains("approval_requests_call")),
                "{sql}: {plan:?}"
            );
            assert!(
                !plan.iter().any(|step| step.contains("expiry")),
                "{sql}: {plan:?}"
            );
        }
        store.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn listing_pending_or_approved_requests_reads_only_those() {
        let (dir, path) = temp_db("list-plan");
        let store = SqliteStore::connect(path.to_str().unwrap()).await.unwrap();
        let approved = RequestQuery {
            state: Some(RequestState::Approved),
            limit: Some(50),
            ..RequestQuery::default()
        };
        let sql = list_sql(&approved, OffsetDateTime::UNIX_EPOCH).text;
        let plan = plan(&store, sql.clone()).await;
        assert!(
            plan.iter()
                .any(|step| step.contains("approval_requests_approved_expiry")),
            "{sql}: {plan:?}"
        );
        store.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }

    /// A page of the pending queue, first or later, filtered or not, walks the queue
    /// index in order and stops after the page: no sort, so no read of every pending
    /// request.
    #[tokio::test]
    async fn a_page_of_the_pending_queue_reads_in_index_order() {
        let (dir, path) = temp_db("queue-plan");
        let store = SqliteStore::connect(path.to_str().unwrap()).await.unwrap();
        for query in super::super::sql::queue_pages() {
            let sql = list_sql(&query, OffsetDateTime::UNIX_EPOCH).text;
            let plan = plan(&store, sql.clone()).await;
            assert!(
                plan.iter()
                    .any(|step| step.contains("approval_requests_pending_queue")),
                "{sql}: {plan:?}"
            );
            assert!(
                !plan.iter().any(|step| step.contains("TEMP B-TREE")),
                "{sql}: {plan:?}"
            );
        }
        store.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn the_sweep_reads_only_the_requests_due() {
        let (dir, path) = temp_db("sweep-plan");
        let store = SqliteStore::connect(path.to_str().unwrap()).await.unwrap();
        let sql = sweep_query();
        let plan = plan(&store, sql.clone()).await;
        for index in [
            "approval_requests_pending_expiry",
            "approval_requests_approved_expiry",
        ] {
            assert!(
                plan.iter().any(|step| step.contains(index)),
                "{sql}: {plan:?}"
            );
        }
        assert!(
            !plan
                .iter()
                .any(|step| step.starts_with("SCAN approval_requests")),
            "{sql}: {plan:?}"
        );
        store.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn urls_and_paths_name_the_same_file() {
        for form in ["sqlite:///tmp/a.db", "sqlite:/tmp/a.db", "/tmp/a.db"] {
            let options = SqliteOptions::new(form);
            assert_eq!(options.path(), Path::new("/tmp/a.db"), "{form}");
            assert!(options.bad_url.is_none());
        }
        assert!(!SqliteOptions::new("sqlite://a.db?mode=rw").create_if_missing);
        assert!(
            SqliteOptions::new("sqlite://a.db?cache=shared")
                .bad_url
                .is_some()
        );
        assert!(SqliteOptions::new("sqlite::memory:").bad_url.is_some());
    }
}
