//! What a store's per-request operations cost as it fills up: `create`, `get`, `decide`
//! (get, approve, update with its audit record) and `sweep_expired` with 10 and with
//! 100 requests due, on `MemoryStore` and on `SqliteStore` (`synchronous` FULL, the default, and
//! NORMAL), at 1,000 pending requests and at N, where N is `APPROVAL_GATE_BENCH_SCALE`
//! (default 1,000,000); and, as the floor for `get`, a bare `HashMap` of as many boxed
//! values at both sizes.
//!
//! ```text
//! APPROVAL_GATE_BENCH_SCALE=1000000 cargo bench --all-features --bench scale -- --quick
//! ```
//!
//! Each store is filled once, before its first benchmark, and rebuilt only when the
//! benchmarks have added as many requests as it was filled with (or decided every one),
//! so the store stays between its size and twice that. Setup times, the SQLite file's
//! size and the bytes `MemoryStore` holds per pending request (counted by the global
//! allocator below) are printed to stderr. SQLite files live under the target
//! directory's `tmp` and are deleted when their benchmarks end.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

/// Counts the bytes held on the heap, to report what a pending request costs in memory.
struct Counting;

static HELD: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every method forwards to `System` unchanged and only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        HELD.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        HELD.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        HELD.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        HELD.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[cfg(not(feature = "sqlite"))]
fn main() {
    eprintln!(
        "the scale bench needs the `sqlite` feature: cargo bench --all-features --bench scale"
    );
}

#[cfg(feature = "sqlite")]
criterion::criterion_group!(benches, scale::stores, scale::bare_map);
#[cfg(feature = "sqlite")]
criterion::criterion_main!(benches);

#[cfg(feature = "sqlite")]
mod scale {
    use super::HELD;
    use std::collections::HashMap;
    use std::hint::black_box;
    use std::path::PathBuf;
    use std::str::FromStr;
    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};

    use approval_gate::rusqlite::{Connection, params};
    use approval_gate::store::RequestStore;
    use approval_gate::time::OffsetDateTime;
    use approval_gate::time::macros::datetime;
    use approval_gate::{
        ApprovalRequest, ApprovalStore, Approver, ArgsHash, Decision, MemoryStore, Policy,
        RequestId, SqliteStore, ToolCall,
        config::PolicyVersion,
        store::SqliteSynchronous,
        trail::{AuditEvent, AuditRecord, ChainHead},
    };
    use criterion::{BenchmarkId, Criterion};
    use serde_json::json;

    /// When the bulk of the requests are filed: pending until `T0 + 300 s`.
    const T0: OffsetDateTime = datetime!(2026-01-01 00:00 UTC);
    /// When the requests a sweep finds due are filed: due at `T0 - 100 s`.
    const EARLY: OffsetDateTime = datetime!(2025-12-31 23:53:20 UTC);
    /// The sweep's limit, as a sweeper would pass it.
    const SWEEP_LIMIT: usize = 1000;
    /// The request whose JSON is the template of the rows bulk-inserted into SQLite.
    const TEMPLATE: u32 = u32::MAX;

    const POLICY: &str = "\
approvals:
  ttl_seconds: 300
  approval_ttl_seconds: 60
rules:
  - { id: sends, tool: email.send, effect: approval_required }
";

    fn id_text(n: u32) -> String {
        format!("{n:08x}-0000-4000-8000-000000000000")
    }

    fn run_text(n: u32) -> String {
        format!("run-{n:08x}")
    }

    /// Builds small requests cheaply: one policy decision and args hash shared by all.
    struct Requests {
        decision: Decision,
        version: PolicyVersion,
        hash: ArgsHash,
    }

    impl Requests {
        fn new() -> Self {
            let policy = Policy::from_yaml_str(POLICY).unwrap();
            let call = ToolCall::new("run", "c1", "email.send", json!({})).with_tenant("t1");
            Requests {
                decision: policy.evaluate(&call),
                version: policy.version().clone(),
                hash: call.args_hash().unwrap(),
            }
        }

        /// Request number `n` (its own id and run), filed at `at`.
        fn request(&self, n: u32, at: OffsetDateTime) -> ApprovalRequest {
            let call = ToolCall::new(run_text(n), "c1", "email.send", json!({})).with_tenant("t1");
            let id = RequestId::from_str(&id_text(n)).unwrap();
            ApprovalRequest::new(
                id,
                call,
                self.hash,
                &self.decision,
                self.version.clone(),
                at,
            )
        }

        /// The `approval_required` record `create` appends with `r`.
        fn filed(r: &ApprovalRequest) -> AuditRecord {
            let event = AuditEvent::ApprovalRequired {
                rule_ids: r.rule_ids().iter().map(ToString::to_string).collect(),
                reason: None,
                tier: None,
                expires_at: r.expires_at(),
            };
            AuditRecord::for_request(r.created_at(), r, event)
        }

        /// The body of request `n` filed at `at`, from the JSON of the template request.
        fn body(template: &str, n: u32) -> String {
            template
                .replace(&id_text(TEMPLATE), &id_text(n))
                .replace(&run_text(TEMPLATE), &run_text(n))
        }
    }

    #[derive(Clone, Copy)]
    enum Kind {
        Memory,
        Sqlite(SqliteSynchronous),
    }

    impl Kind {
        fn label(self) -> &'static str {
            match self {
                Kind::Memory => "memory",
                Kind::Sqlite(SqliteSynchronous::Full) => "sqlite_full",
                Kind::Sqlite(_) => "sqlite_normal",
            }
        }
    }

    #[derive(Clone, Copy)]
    enum Op {
        Create,
        Get,
        Decide,
        /// A sweep with this many requests due.
        Sweep(usize),
    }

    /// A filled store and what the benchmarks need to know of it.
    struct Fixture {
        kind: Kind,
        size: usize,
        store: Arc<dyn ApprovalStore>,
        sqlite: Option<SqliteStore>,
        path: Option<PathBuf>,
        /// Request numbers still pending, in random order, for `decide`.
        pending: Vec<u32>,
        /// Requests added since the store was filled.
        grown: usize,
        /// The next request number to file.
        next: u32,
        rng: u64,
    }

    impl Fixture {
        /// Fills a store; tells how long that took and what it holds when `report`.
        async fn build(kind: Kind, size: usize, requests: &Requests, report: bool) -> Fixture {
            let started = Instant::now();
            let n = u32::try_from(size).expect("scale fits in u32");
            let (store, sqlite, path): (Arc<dyn ApprovalStore>, _, _) = match kind {
                Kind::Memory => {
                    let store = MemoryStore::new();
                    let before = HELD.load(Ordering::Relaxed);
                    for i in 0..n {
                        let r = requests.request(i, T0);
                        let record = Requests::filed(&r);
                        store.create(r, &record, T0).await.unwrap();
                    }
                    let held = HELD.load(Ordering::Relaxed) - before;
                    report.then(|| eprintln!(
                    "scale/memory/{size}: filled in {:.2?}; {} bytes held per pending request \
                     (request, its audit record, indexes; size_of ApprovalRequest {} B, \
                     AuditRecord {} B)",
                    started.elapsed(),
                    held / size as isize,
                    size_of::<ApprovalRequest>(),
                    size_of::<AuditRecord>(),
                ));
                    (Arc::new(store), None, None)
                }
                Kind::Sqlite(sync) => {
                    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
                    std::fs::create_dir_all(&dir).unwrap();
                    let path = dir.join(format!("scale-{}-{size}.db", kind.label()));
                    remove_db(&path);
                    let options = SqliteStore::options(path.to_str().unwrap()).synchronous(sync);
                    let store = SqliteStore::connect_with(options).await.unwrap();
                    bulk_insert(&store, requests, 0..n, T0, true).await;
                    // What was written by hand reads back as the store's own.
                    let probe = n / 2;
                    let read = store
                        .get(RequestId::from_str(&id_text(probe)).unwrap())
                        .await
                        .unwrap();
                    assert_eq!(read.call().run_id(), run_text(probe));
                    assert_eq!(read.expires_at(), requests.request(probe, T0).expires_at());
                    let plan: Vec<String> = own_connection(&store)
                        .prepare(
                            "EXPLAIN QUERY PLAN SELECT id, body FROM approval_requests WHERE \
                             ((state = 'pending' AND expires_at <= ?1) \
                             OR (state = 'approved' AND approval_expires_at <= ?1)) \
                             ORDER BY created_at, id LIMIT ?2",
                        )
                        .unwrap()
                        .query_map(params![nanos(T0), 1000_i64], |row| row.get(3))
                        .unwrap()
                        .collect::<Result<_, _>>()
                        .unwrap();
                    report.then(|| {
                        eprintln!(
                            "scale/{}/{size}: sweep plan: {}",
                            kind.label(),
                            plan.join("; ")
                        )
                    });
                    report.then(|| {
                        eprintln!(
                            "scale/{}/{size}: filled in {:.2?}; file {} MB",
                            kind.label(),
                            started.elapsed(),
                            db_bytes(&path) / 1_000_000,
                        )
                    });
                    (Arc::new(store.clone()) as _, Some(store), Some(path))
                }
            };
            let mut fixture = Fixture {
                kind,
                size,
                store,
                sqlite,
                path,
                pending: (0..n).collect(),
                grown: 0,
                next: n,
                rng: 0x9E37_79B9_7F4A_7C15,
            };
            // Decide in random order, so `decide` at scale reads all over the store.
            for i in (1..fixture.pending.len()).rev() {
                let j = fixture.random(i + 1);
                fixture.pending.swap(i, j);
            }
            fixture
        }

        fn random(&mut self, below: usize) -> usize {
            // xorshift64
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            (self.rng % below as u64) as usize
        }

        fn id(n: u32) -> RequestId {
            RequestId::from_str(&id_text(n)).unwrap()
        }

        /// How many more operations of `op` may run before the store needs rebuilding.
        fn room(&self, op: Op) -> usize {
            match op {
                Op::Create => self.size.saturating_sub(self.grown).min(10_000),
                Op::Get => usize::MAX,
                Op::Decide => self.pending.len(),
                Op::Sweep(due) => self.size.saturating_sub(self.grown) / due,
            }
        }

        /// Runs `n` operations of `op` and returns the time they took, preparation aside.
        async fn run(&mut self, op: Op, n: usize, requests: &Requests) -> Duration {
            match op {
                Op::Create => {
                    let batch: Vec<_> = (0..n)
                        .map(|i| {
                            let r = requests.request(self.next + i as u32, T0);
                            let record = Requests::filed(&r);
                            (r, record)
                        })
                        .collect();
                    self.next += n as u32;
                    self.grown += n;
                    let started = Instant::now();
                    for (r, record) in batch {
                        let filed = self.store.create(r, &record, T0).await.unwrap();
                        debug_assert!(filed.created);
                        black_box(filed);
                    }
                    started.elapsed()
                }
                Op::Get => {
                    let ids: Vec<_> = (0..n)
                        .map(|_| Self::id(self.random(self.size) as u32))
                        .collect();
                    let started = Instant::now();
                    for id in ids {
                        black_box(self.store.get(id).await.unwrap());
                    }
                    started.elapsed()
                }
                Op::Decide => {
                    let ids: Vec<_> = self
                        .pending
                        .split_off(self.pending.len() - n)
                        .into_iter()
                        .map(Self::id)
                        .collect();
                    let ann = Approver::new("ann").with_tenant("t1");
                    let started = Instant::now();
                    for id in ids {
                        let r = self.store.get(id).await.unwrap();
                        let next = r.approve(&ann, T0).unwrap();
                        let event = AuditEvent::ApprovalGranted {
                            approver: "ann".into(),
                            approvers: next.approvers().to_vec(),
                            approved_args_hash: None,
                            changed_fields: Vec::new(),
                            approval_expires_at: next.approval_expires_at().unwrap(),
                        };
                        let record = AuditRecord::for_request(T0, &next, event);
                        self.store.update(&next, &record).await.unwrap();
                    }
                    started.elapsed()
                }
                Op::Sweep(due) => {
                    let mut total = Duration::ZERO;
                    for _ in 0..n {
                        let first = self.next;
                        self.next += due as u32;
                        self.grown += due;
                        match &self.sqlite {
                            Some(store) => {
                                bulk_insert(store, requests, first..self.next, EARLY, false).await
                            }
                            None => {
                                for i in first..self.next {
                                    let r = requests.request(i, EARLY);
                                    let record = Requests::filed(&r);
                                    self.store.create(r, &record, EARLY).await.unwrap();
                                }
                            }
                        }
                        let started = Instant::now();
                        let swept = self.store.sweep_expired(T0, SWEEP_LIMIT).await.unwrap();
                        total += started.elapsed();
                        assert_eq!(swept.len(), due, "the due requests, and only them");
                    }
                    total
                }
            }
        }
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            if let Some(path) = &self.path {
                remove_db(path);
            }
        }
    }

    fn db_files(path: &std::path::Path) -> [PathBuf; 3] {
        let with = |suffix: &str| {
            let mut p = path.as_os_str().to_owned();
            p.push(suffix);
            PathBuf::from(p)
        };
        [path.to_owned(), with("-wal"), with("-shm")]
    }

    fn remove_db(path: &std::path::Path) {
        for file in db_files(path) {
            let _ = std::fs::remove_file(file);
        }
    }

    fn db_bytes(path: &std::path::Path) -> u64 {
        db_files(path)
            .iter()
            .filter_map(|f| std::fs::metadata(f).ok())
            .map(|m| m.len())
            .sum()
    }

    fn nanos(t: OffsetDateTime) -> i64 {
        i64::try_from(t.unix_timestamp_nanos()).unwrap()
    }

    /// Inserts requests `numbers`, filed at `at`, straight into the store's tables in one
    /// transaction (with their `approval_required` records, linked into the chain, when
    /// `with_audit`): the rows `create` would write, without a transaction each.
    async fn bulk_insert(
        store: &SqliteStore,
        requests: &Requests,
        numbers: std::ops::Range<u32>,
        at: OffsetDateTime,
        with_audit: bool,
    ) {
        const TX_ROWS: usize = 100_000;
        let template = requests.request(TEMPLATE, at);
        let body = serde_json::to_string(&template).unwrap();
        let (created, expires) = (nanos(template.created_at()), nanos(template.expires_at()));
        let hash = template.args_hash().to_string();
        let mut conn = own_connection(store);
        let mut tx = conn.transaction().unwrap();
        let mut in_tx = 0;
        if with_audit {
            let records: i64 = tx
                .query_row("SELECT COUNT(*) FROM approval_audit", [], |row| row.get(0))
                .unwrap();
            assert_eq!(records, 0, "bulk audit rows go into an empty trail");
        }
        let mut head = ChainHead::GENESIS;
        for n in numbers {
            if in_tx >= TX_ROWS {
                // Commit now and then, so that the WAL stays small while filling.
                tx.commit().unwrap();
                tx = conn.transaction().unwrap();
                in_tx = 0;
            }
            in_tx += 1;
            tx.prepare_cached(
                "INSERT INTO approval_requests (id, version, state, run_id, tool, args_hash, \
                 tenant, tier, created_at, expires_at, approval_expires_at, body) \
                 VALUES (?1, 1, 'pending', ?2, 'email.send', ?3, 't1', NULL, ?4, ?5, NULL, ?6)",
            )
            .unwrap()
            .execute(params![
                id_text(n),
                run_text(n),
                hash,
                created,
                expires,
                Requests::body(&body, n)
            ])
            .unwrap();
            if !with_audit {
                continue;
            }
            let r = requests.request(n, at);
            let (linked, next) = head.link(&Requests::filed(&r));
            tx.prepare_cached(
                "INSERT INTO approval_audit \
                 (seq, prev_hash, hash, at, event, run_id, request_id, actor, body) \
                 VALUES (?1, ?2, ?3, ?4, 'approval_required', ?5, ?6, NULL, ?7)",
            )
            .unwrap()
            .execute(params![
                next.seq as i64,
                head.hash.to_string(),
                next.hash.to_string(),
                created,
                run_text(n),
                id_text(n),
                serde_json::to_string(&linked).unwrap()
            ])
            .unwrap();
            head = next;
        }
        tx.commit().unwrap();
        if with_audit {
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                .unwrap();
        }
    }

    /// A connection of the bench's own to the store's file.
    fn own_connection(store: &SqliteStore) -> Connection {
        let conn = Connection::open(store.path()).unwrap();
        conn.busy_timeout(Duration::from_secs(5)).unwrap();
        conn
    }

    fn scale() -> usize {
        std::env::var("APPROVAL_GATE_BENCH_SCALE")
            .ok()
            .and_then(|s| s.replace('_', "").parse().ok())
            .unwrap_or(1_000_000)
    }

    pub fn stores(c: &mut Criterion) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let requests = Requests::new();
        let kinds = [
            Kind::Memory,
            Kind::Sqlite(SqliteSynchronous::Full),
            Kind::Sqlite(SqliteSynchronous::Normal),
        ];
        for kind in kinds {
            let mut group = c.benchmark_group(format!("scale/{}", kind.label()));
            group
                .sample_size(10)
                .warm_up_time(Duration::from_secs(1))
                .measurement_time(Duration::from_secs(3));
            for size in [1000, scale()] {
                // Filled before measuring: criterion's quick mode counts the wall time of a
                // first call, and gives up sampling when it is long.
                let mut fixture = Some(rt.block_on(Fixture::build(kind, size, &requests, true)));
                for (name, op) in [
                    ("create", Op::Create),
                    ("get", Op::Get),
                    ("decide", Op::Decide),
                    ("sweep_10_due", Op::Sweep(10)),
                    ("sweep_100_due", Op::Sweep(100)),
                ] {
                    group.bench_function(BenchmarkId::new(name, size), |b| {
                        b.iter_custom(|iters| {
                            rt.block_on(measure(&mut fixture, kind, size, op, iters, &requests))
                        })
                    });
                }
            }
            group.finish();
        }
    }

    /// What a `get` is made of, without a store: a value of the size of a request, boxed,
    /// holding an `Arc` as a request holds its shared parts.
    struct BareValue {
        shared: Arc<[u8; 64]>,
        body: [u8; 112],
    }

    /// The floor for `get` at each size: a std `HashMap` from the same ids to boxed
    /// values, and a get that finds a random one and clones it (copying the body and
    /// counting the `Arc`, the accesses a request's clone makes). At 1,000 entries it
    /// all sits in the CPU's caches; at 1,000,000 every get misses them, store or not.
    pub fn bare_map(c: &mut Criterion) {
        let mut group = c.benchmark_group("scale/bare_map");
        group
            .sample_size(10)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3));
        for size in [1000, scale()] {
            let map: HashMap<RequestId, Box<BareValue>> = (0..size as u32)
                .map(|n| {
                    let value = BareValue {
                        shared: Arc::new([n as u8; 64]),
                        body: [n as u8; 112],
                    };
                    (Fixture::id(n), Box::new(value))
                })
                .collect();
            let mut rng = 0x2545_f491_4f6c_dd1d_u64;
            group.bench_function(BenchmarkId::new("get", size), |b| {
                b.iter_custom(|iters| {
                    let ids: Vec<RequestId> = (0..iters)
                        .map(|_| {
                            rng ^= rng << 13;
                            rng ^= rng >> 7;
                            rng ^= rng << 17;
                            Fixture::id((rng % size as u64) as u32)
                        })
                        .collect();
                    let started = Instant::now();
                    for id in &ids {
                        let value = map.get(id).unwrap();
                        black_box((value.shared.clone(), value.body));
                    }
                    started.elapsed()
                })
            });
        }
        group.finish();
    }

    /// Runs `iters` operations of `op`, rebuilding the store (untimed) whenever it has no
    /// more room for them.
    async fn measure(
        fixture: &mut Option<Fixture>,
        kind: Kind,
        size: usize,
        op: Op,
        iters: u64,
        requests: &Requests,
    ) -> Duration {
        let mut left = usize::try_from(iters).unwrap();
        let mut total = Duration::ZERO;
        while left > 0 {
            let room = fixture.as_ref().map_or(0, |f| f.room(op));
            if room == 0 {
                // Drop the old store (and its file) first.
                *fixture = None;
                *fixture = Some(Fixture::build(kind, size, requests, false).await);
                continue;
            }
            let n = left.min(room);
            let f = fixture.as_mut().unwrap();
            debug_assert_eq!(f.kind.label(), kind.label());
            total += f.run(op, n, requests).await;
            left -= n;
        }
        total
    }
}
