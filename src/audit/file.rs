//! The JSON-lines file trail: [`JsonlSink`] appends hash-chained records, one JSON object
//! per line, rotating by size; [`verify_jsonl_files`] and [`read_jsonl_files`] read a trail
//! back and check its chain.

use std::fs::{self, File, OpenOptions};
use std::future::Future;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, mpsc};
use std::task::{Context, Poll, Waker};

use async_trait::async_trait;
use serde_json::Value;
use thiserror::Error;

use super::{AuditError, AuditRecord, AuditSink, ChainError, ChainHead, ChainVerifier};

/// The fewest digits of a rotated file's number.
const INDEX_DIGITS: usize = 6;

/// How far back the tail of a file is read at a time when looking for its last line.
const TAIL_CHUNK: u64 = 8 * 1024;

/// A JSON-lines trail file could not be opened, written, read or verified.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TrailFileError {
    /// A file operation failed.
    #[error("{action} `{}` failed", path.display())]
    Io {
        /// What was being done: `opening`, `reading`, `writing`, `syncing`, ….
        action: &'static str,
        /// The file (or directory).
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: io::Error,
    },
    /// The path cannot name a trail: it has no file name, or the name is not UTF-8.
    #[error("`{}` cannot name a trail file", path.display())]
    Name {
        /// The path.
        path: PathBuf,
    },
    /// A file ends in a partial line: a write cut short by a crash or a full disk.
    ///
    /// The sink refuses to append after it. With per-record sync (the default) the
    /// partial line is a record whose write never completed, so no step of the gate
    /// went ahead on it: keep a copy of the file, cut it at `offset` (`truncate -s
    /// OFFSET FILE`) and open the sink again.
    #[error(
        "line {line} of `{}` is a partial line from byte {offset} to the end (a write cut short)",
        path.display()
    )]
    Torn {
        /// The file.
        path: PathBuf,
        /// The partial line's number, from 1.
        line: u64,
        /// The byte where the partial line starts: the file's length without it.
        offset: u64,
    },
    /// A line is not a JSON value.
    #[error("line {line} of `{}` is not JSON", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// The line, from 1.
        line: u64,
        /// What the JSON parser found.
        #[source]
        source: serde_json::Error,
    },
    /// A line is JSON but not an audit record this crate can read.
    #[error("line {line} of `{}` is not an audit record", path.display())]
    NotARecord {
        /// The file.
        path: PathBuf,
        /// The line, from 1.
        line: u64,
        /// What does not fit.
        #[source]
        source: serde_json::Error,
    },
    /// The hash chain breaks at a line: a record was changed, removed, added or moved,
    /// or (for [`ChainError::Truncated`], reported at the trail's last line) the trail
    /// stops before a head known from earlier.
    #[error("the trail breaks at line {line} of `{}`", path.display())]
    Chain {
        /// The file (empty when no file was given).
        path: PathBuf,
        /// The line, from 1 (0 when the file has none).
        line: u64,
        /// How it breaks.
        #[source]
        source: ChainError,
    },
    /// An earlier write to the trail failed, so its end is unknown: the sink takes no
    /// more records until it is opened again, which checks the end.
    #[error("an earlier write to `{}` failed; reopen the trail", path.display())]
    Failed {
        /// The live file.
        path: PathBuf,
    },
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> TrailFileError {
    let path = path.to_path_buf();
    move |source| TrailFileError::Io {
        action,
        path,
        source,
    }
}

/// An [`AuditSink`] that appends each record, linked into a hash chain, as one JSON line
/// to a file, rotating to a new file by size.
///
/// - **Append-only.** Files are opened for appending and never truncated or rewritten.
///   Each record is linked after the last one with [`ChainHead::link`] (`seq`,
///   `prev_hash`, `hash`), so [`verify_jsonl_files`] finds any line changed, removed,
///   added or moved.
/// - **Durable per record.** By default `record` returns only after the line is written
///   and `sync_data`'d, so an acknowledged record survives a power loss; see
///   [`JsonlSinkBuilder::sync_each_record`] for the faster, weaker option.
/// - **Rotation.** With [`JsonlSinkBuilder::max_bytes`], a record that would take the
///   live file past the limit first moves the live file aside as `<stem>.<N>.<ext>` (see
///   [File names](#file-names)); the chain runs on across files, so the first record of
///   a new file links to the last of the one before. A record longer than the limit
///   goes alone into a file.
/// - **Restart.** Opening a trail that has records continues its chain from the last
///   line of its newest file. A partial last line (a write cut short) is refused with
///   [`TrailFileError::Torn`], which says how to recover.
/// - **Concurrency without stalling.** `record` may be called from many tasks: one writer
///   thread per sink (clones share it) writes the lines whole and in chain order, and a
///   task waits for its record without holding its runtime's thread, on any executor.
///   Records that arrive while a sync is under way are written together and share the
///   next sync (group commit), so many concurrent callers pay for one `fsync`, not one
///   each, and each is answered only once its line is synced. Only one sink, in one
///   process, may write a trail at a time; nothing enforces this across processes.
/// - **Fails closed.** After a failed write the sink refuses every later record
///   ([`TrailFileError::Failed`]), since the end of its file is unknown; the gate then
///   runs nothing that needs a record. Opening the sink again checks the end.
///
/// Errors reach the gate as [`AuditError::Backend`] with the [`TrailFileError`] as source.
///
/// # File names
///
/// The live file keeps the path it was opened with (say `audit/trail.jsonl`), so tools
/// that follow a trail always read one name. Rotation renames it to `<stem>.<N>.<ext>`,
/// `N` counting from 1 in at least six digits (`audit/trail.000001.jsonl`,
/// `audit/trail.000002.jsonl`, …), and starts a new live file; a live file without an
/// extension rotates to `<name>.<N>`. Up to 999 999 rotations the rotated names sort
/// lexically in chain order, and before the live file; [`jsonl_trail_files`] orders them
/// by number, so the order holds past that too.
///
/// # Example
///
/// ```no_run
/// use approval_gate::{Gate, JsonlSink, Key, Keyring, Policy, trail::{jsonl_trail_files, verify_jsonl_files}};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let policy = Policy::from_yaml_str("approvals:\n  required_for: [email.send]\n")?;
/// let keys = Keyring::new(Key::new("k1", [7u8; 32])?);
/// let trail = JsonlSink::builder("audit/trail.jsonl")
///     .max_bytes(64 * 1024 * 1024)
///     .open()?;
/// let gate = Gate::builder(policy, keys).audit(trail.clone()).build();
/// // … later, or in another process:
/// let head = verify_jsonl_files(&jsonl_trail_files("audit/trail.jsonl")?, None)?;
/// assert_eq!(head, trail.head());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct JsonlSink {
    inner: Arc<Inner>,
    writer: Arc<Writer>,
}

/// The queue to the sink's writer thread; the thread ends when the last clone of the
/// sink is dropped.
#[derive(Debug)]
struct Writer {
    jobs: Mutex<mpsc::Sender<Job>>,
}

/// A record waiting for the writer thread, with the slot its result goes to. Dropped
/// without an answer (the thread ended), it answers `Failed`: nobody waits forever.
struct Job {
    record: AuditRecord,
    reply: Arc<Slot<Result<ChainHead, TrailFileError>>>,
    live: PathBuf,
}

impl Job {
    fn answer(mut self, result: Result<ChainHead, TrailFileError>) {
        self.reply.put(result);
        // Answered: the drop below has nothing left to say.
        self.live = PathBuf::new();
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        if !self.live.as_os_str().is_empty() {
            self.reply.put(Err(TrailFileError::Failed {
                path: std::mem::take(&mut self.live),
            }));
        }
    }
}

/// A one-shot slot for a result, awaited by a task ([`SlotWait`]) or waited on by a
/// thread ([`Slot::wait`]).
struct Slot<T> {
    value: Mutex<(Option<T>, Option<Waker>)>,
    ready: Condvar,
}

impl<T> Slot<T> {
    fn new() -> Self {
        Slot {
            value: Mutex::new((None, None)),
            ready: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, (Option<T>, Option<Waker>)> {
        self.value.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps the first value put; wakes whoever waits.
    fn put(&self, value: T) {
        let waker = {
            let mut slot = self.lock();
            if slot.0.is_some() {
                return;
            }
            slot.0 = Some(value);
            slot.1.take()
        };
        self.ready.notify_all();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Blocks the thread until a value is put.
    fn wait(&self) -> T {
        let mut slot = self.lock();
        loop {
            if let Some(value) = slot.0.take() {
                return value;
            }
            slot = self
                .ready
                .wait(slot)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// A task's wait for a [`Slot`].
struct SlotWait<T>(Arc<Slot<T>>);

impl<T> Future for SlotWait<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut slot = self.0.lock();
        match slot.0.take() {
            Some(value) => Poll::Ready(value),
            None => {
                slot.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// How many queued records the writer thread writes before one sync at most.
const BATCH: usize = 256;

#[derive(Debug)]
struct Inner {
    live: PathBuf,
    name: TrailName,
    max_bytes: Option<u64>,
    sync_each_record: bool,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// The live file, open for appending; `None` after a failed write.
    file: Option<File>,
    /// The live file's length.
    len: u64,
    head: ChainHead,
    /// The rotated files, in chain order.
    rotated: Vec<PathBuf>,
    /// The number the next rotated file gets.
    next_index: u64,
}

/// Options for a [`JsonlSink`]; from [`JsonlSink::builder`].
#[derive(Debug, Clone)]
pub struct JsonlSinkBuilder {
    live: PathBuf,
    max_bytes: Option<u64>,
    sync_each_record: bool,
}

impl JsonlSinkBuilder {
    /// Rotates the live file before a record would take it past `max_bytes` bytes.
    /// Default: no rotation, one file grows without limit.
    pub fn max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = Some(max_bytes);
        self
    }

    /// Whether `record` syncs each line to the disk (`sync_data`) before it returns.
    /// Default `true`.
    ///
    /// With `false`, a line is handed to the operating system and `record` returns: a
    /// crash of the process loses nothing, but a crash of the machine or a power loss
    /// can lose the last records (of steps that did go ahead) and leave a partial or
    /// zero-filled last line, which the next open refuses ([`TrailFileError::Torn`]).
    /// Files are still synced when they rotate.
    pub fn sync_each_record(mut self, sync: bool) -> Self {
        self.sync_each_record = sync;
        self
    }

    /// Opens the trail, creating the live file if needed (its directory must exist),
    /// and continues the chain from the last record of its newest file.
    ///
    /// Fails when a file cannot be read or created, when the newest record ends in a
    /// partial line ([`TrailFileError::Torn`]), or is not a chained record whose hash
    /// matches its content.
    pub fn open(self) -> Result<JsonlSink, TrailFileError> {
        let name = TrailName::new(&self.live)?;
        let rotated = name.rotated_files()?;
        let next_index = rotated.last().map_or(1, |(n, _)| n.saturating_add(1));
        let rotated: Vec<PathBuf> = rotated.into_iter().map(|(_, p)| p).collect();

        let mut head = ChainHead::GENESIS;
        let live_exists = self.live.exists();
        let newest_first = live_exists
            .then_some(&self.live)
            .into_iter()
            .chain(rotated.iter().rev());
        for path in newest_first {
            if let Some(found) = last_head(path)? {
                head = found;
                break;
            }
        }

        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.live)
            .map_err(io_error("opening", &self.live))?;
        let len = file
            .metadata()
            .map_err(io_error("reading", &self.live))?
            .len();
        if !live_exists && self.sync_each_record {
            sync_dir(&self.live)?;
        }
        let inner = Arc::new(Inner {
            live: self.live,
            name,
            max_bytes: self.max_bytes,
            sync_each_record: self.sync_each_record,
            state: Mutex::new(State {
                file: Some(file),
                len,
                head,
                rotated,
                next_index,
            }),
        });
        let (jobs, queue) = mpsc::channel::<Job>();
        let writing = Arc::clone(&inner);
        std::thread::Builder::new()
            .name("approval-gate-jsonl".to_owned())
            .spawn(move || writing.write_queued(&queue))
            .map_err(io_error("starting the writer of", &inner.live))?;
        Ok(JsonlSink {
            inner,
            writer: Arc::new(Writer {
                jobs: Mutex::new(jobs),
            }),
        })
    }
}

impl JsonlSink {
    /// Opens the trail whose live file is `path`, with the defaults: a sync per record
    /// and no rotation. See [`JsonlSinkBuilder::open`].
    pub fn open(path: impl Into<PathBuf>) -> Result<JsonlSink, TrailFileError> {
        Self::builder(path).open()
    }

    /// Options for the trail whose live file is `path`.
    pub fn builder(path: impl Into<PathBuf>) -> JsonlSinkBuilder {
        JsonlSinkBuilder {
            live: path.into(),
            max_bytes: None,
            sync_each_record: true,
        }
    }

    /// The live file's path.
    pub fn path(&self) -> &Path {
        &self.inner.live
    }

    /// The head of the chain: the last record's `seq` and `hash` ([`ChainHead::GENESIS`]
    /// for an empty trail). Note it down to check later that the trail was not cut off
    /// or rewritten (`verify_jsonl_files(.., Some(head))`).
    pub fn head(&self) -> ChainHead {
        self.lock().head
    }

    /// The trail's files in chain order: the rotated files, oldest first, then the live
    /// file.
    pub fn files(&self) -> Vec<PathBuf> {
        let state = self.lock();
        let mut files = state.rotated.clone();
        files.push(self.inner.live.clone());
        files
    }

    /// Links `record` after the head, appends it as one line (rotating first when the
    /// live file would pass its limit) and returns the new head: what
    /// [`AuditSink::record`] does, for callers outside async code. Blocks the calling
    /// thread until the writer thread has written and, by default, synced it.
    pub fn append(&self, record: &AuditRecord) -> Result<ChainHead, TrailFileError> {
        self.enqueue(record).wait()
    }

    /// Hands `record` to the writer thread; the slot gets its result.
    fn enqueue(&self, record: &AuditRecord) -> Arc<Slot<Result<ChainHead, TrailFileError>>> {
        let reply = Arc::new(Slot::new());
        let job = Job {
            record: record.clone(),
            reply: Arc::clone(&reply),
            live: self.inner.live.clone(),
        };
        let jobs = self
            .writer
            .jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // A send fails only when the thread has ended; the job, dropped, answers `Failed`.
        let _ = jobs.send(job);
        reply
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Inner {
    /// The writer thread: takes the queued records in batches, writes each batch's lines
    /// and syncs once for all of them (group commit), then answers each record. Ends
    /// when every sender is gone.
    fn write_queued(&self, queue: &mpsc::Receiver<Job>) {
        while let Ok(first) = queue.recv() {
            let mut batch = vec![first];
            while batch.len() < BATCH {
                match queue.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            let mut state = self.lock();
            let results = self.write_batch(&mut state, &batch);
            drop(state);
            for (job, result) in batch.into_iter().zip(results) {
                job.answer(result);
            }
        }
    }

    /// Writes the batch's records in order, then syncs once. A record is acknowledged
    /// only once synced (when the sink syncs); after any failure every record of the
    /// batch fails, and the sink is failed.
    fn write_batch(
        &self,
        state: &mut State,
        batch: &[Job],
    ) -> Vec<Result<ChainHead, TrailFileError>> {
        let mut heads = Vec::with_capacity(batch.len());
        let mut failure = None;
        for job in batch {
            match self.write_one(state, &job.record) {
                Ok(head) => heads.push(head),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        if failure.is_none()
            && self.sync_each_record
            && !heads.is_empty()
            && let Some(file) = state.file.as_mut()
            && let Err(e) = file.sync_data()
        {
            failure = Some(io_error("syncing", &self.live)(e));
        }
        match failure {
            None => heads.into_iter().map(Ok).collect(),
            Some(first) => {
                state.file = None;
                let mut results = Vec::with_capacity(batch.len());
                results.push(Err(first));
                results.resize_with(batch.len(), || {
                    Err(TrailFileError::Failed {
                        path: self.live.clone(),
                    })
                });
                results
            }
        }
    }

    /// Links `record` after the head and writes it as one line, rotating first when the
    /// live file would pass its limit. Does not sync.
    fn write_one(
        &self,
        state: &mut State,
        record: &AuditRecord,
    ) -> Result<ChainHead, TrailFileError> {
        if state.file.is_none() {
            return Err(TrailFileError::Failed {
                path: self.live.clone(),
            });
        }
        let (linked, next) = state.head.link(record);
        let mut line = serde_json::to_vec(&linked).map_err(|e| TrailFileError::Io {
            action: "writing",
            path: self.live.clone(),
            source: io::Error::new(io::ErrorKind::InvalidData, e),
        })?;
        line.push(b'\n');
        let line_len = line.len() as u64;
        if let Some(max) = self.max_bytes
            && state.len > 0
            && state.len.saturating_add(line_len) > max
        {
            // A failure leaves no live file open: the sink is then failed.
            self.rotate(state)?;
        }
        let result = self.write_line(state, &line);
        if result.is_err() {
            state.file = None;
        }
        result?;
        state.len += line_len;
        state.head = next;
        Ok(next)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_line(&self, state: &mut State, line: &[u8]) -> Result<(), TrailFileError> {
        let Some(file) = state.file.as_mut() else {
            return Err(TrailFileError::Failed {
                path: self.live.clone(),
            });
        };
        // One write of the whole line; the file is unbuffered, so this is the flush.
        file.write_all(line)
            .and_then(|()| file.flush())
            .map_err(io_error("writing", &self.live))
        // The batch syncs once, after its last line (`write_batch`).
    }

    /// Syncs and closes the live file, renames it to the next rotated name and opens a
    /// new, empty live file. On failure the sink is left failed.
    fn rotate(&self, state: &mut State) -> Result<(), TrailFileError> {
        let Some(file) = state.file.take() else {
            return Err(TrailFileError::Failed {
                path: self.live.clone(),
            });
        };
        file.sync_data().map_err(io_error("syncing", &self.live))?;
        drop(file);
        let target = self.name.rotated_path(state.next_index);
        if target.exists() {
            return Err(TrailFileError::Io {
                action: "rotating to",
                path: target,
                source: io::Error::from(io::ErrorKind::AlreadyExists),
            });
        }
        fs::rename(&self.live, &target).map_err(io_error("rotating to", &target))?;
        state.rotated.push(target);
        state.next_index = state.next_index.saturating_add(1);
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&self.live)
            .map_err(io_error("opening", &self.live))?;
        sync_dir(&self.live)?;
        state.file = Some(file);
        state.len = 0;
        Ok(())
    }
}

#[async_trait]
impl AuditSink for JsonlSink {
    /// Appends the record; see [`JsonlSink::append`]. The sink's writer thread does the
    /// write and the sync; the task waits without holding its runtime's thread.
    async fn record(&self, record: &AuditRecord) -> Result<(), AuditError> {
        SlotWait(self.enqueue(record))
            .await
            .map(|_| ())
            .map_err(AuditError::backend)
    }
}

/// Makes a new or renamed entry in the live file's directory durable (on Unix; elsewhere
/// a no-op).
fn sync_dir(live: &Path) -> Result<(), TrailFileError> {
    #[cfg(unix)]
    {
        let dir = parent_dir(live);
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_error("syncing", dir))?;
    }
    #[cfg(not(unix))]
    let _ = live;
    Ok(())
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// The parts of a live file's name that rotated names are made of.
#[derive(Debug, Clone)]
struct TrailName {
    dir: PathBuf,
    /// `trail.` for `trail.jsonl`.
    prefix: String,
    /// `.jsonl` for `trail.jsonl`, empty for `trail`.
    suffix: String,
}

impl TrailName {
    fn new(live: &Path) -> Result<Self, TrailFileError> {
        let bad = || TrailFileError::Name {
            path: live.to_path_buf(),
        };
        let stem = live.file_stem().and_then(|s| s.to_str()).ok_or_else(bad)?;
        let suffix = match live.extension() {
            Some(ext) => format!(".{}", ext.to_str().ok_or_else(bad)?),
            None => String::new(),
        };
        Ok(TrailName {
            dir: parent_dir(live).to_path_buf(),
            prefix: format!("{stem}."),
            suffix,
        })
    }

    fn rotated_path(&self, index: u64) -> PathBuf {
        let (prefix, suffix) = (&self.prefix, &self.suffix);
        self.dir.join(format!(
            "{prefix}{index:0width$}{suffix}",
            width = INDEX_DIGITS
        ))
    }

    /// The number in a rotated file's name.
    fn index_of(&self, file_name: &str) -> Option<u64> {
        let digits = file_name
            .strip_prefix(&self.prefix)?
            .strip_suffix(&self.suffix)?;
        if digits.len() < INDEX_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    }

    /// The rotated files with their numbers, in chain order.
    fn rotated_files(&self) -> Result<Vec<(u64, PathBuf)>, TrailFileError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error("listing", &self.dir)(e)),
        };
        let mut found = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_error("listing", &self.dir))?;
            let name = entry.file_name();
            if let Some(index) = name.to_str().and_then(|n| self.index_of(n)) {
                found.push((index, entry.path()));
            }
        }
        found.sort();
        Ok(found)
    }
}

/// The files of the trail whose live file is `live`, in chain order: its rotated files
/// (`<stem>.<N>.<ext>` beside it, by `N`), then `live` itself if it exists. Empty when
/// there is no trail. Pass the list to [`verify_jsonl_files`] or [`read_jsonl_files`].
pub fn jsonl_trail_files(live: impl AsRef<Path>) -> Result<Vec<PathBuf>, TrailFileError> {
    let live = live.as_ref();
    let mut files: Vec<PathBuf> = TrailName::new(live)?
        .rotated_files()?
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    if live.exists() {
        files.push(live.to_path_buf());
    }
    Ok(files)
}

/// The last line of a file, read from its end.
enum Tail {
    Empty,
    /// A line ended by a newline, without it, starting at `offset`.
    Whole {
        offset: u64,
        bytes: Vec<u8>,
    },
    /// A partial line, with no newline after it, starting at `offset`.
    Torn {
        offset: u64,
    },
}

fn read_tail(file: &mut File) -> io::Result<Tail> {
    let len = file.seek(SeekFrom::End(0))?;
    if len == 0 {
        return Ok(Tail::Empty);
    }
    let mut last = [0u8; 1];
    file.seek(SeekFrom::Start(len - 1))?;
    file.read_exact(&mut last)?;
    let torn = last[0] != b'\n';
    let end = if torn { len } else { len - 1 };

    let mut chunks = Vec::new();
    let mut pos = end;
    let offset = loop {
        if pos == 0 {
            break 0;
        }
        let from = pos.saturating_sub(TAIL_CHUNK);
        let mut buf = vec![0u8; usize::try_from(pos - from).unwrap_or(0)];
        file.seek(SeekFrom::Start(from))?;
        file.read_exact(&mut buf)?;
        if let Some(i) = buf.iter().rposition(|&b| b == b'\n') {
            let start = from + i as u64 + 1;
            if !torn {
                chunks.push(buf.split_off(i + 1));
            }
            break start;
        }
        if !torn {
            chunks.push(buf);
        }
        pos = from;
    };
    if torn {
        return Ok(Tail::Torn { offset });
    }
    let bytes = chunks.into_iter().rev().flatten().collect();
    Ok(Tail::Whole { offset, bytes })
}

/// The number of the line that starts at byte `offset`, for error messages.
fn line_at(path: &Path, offset: u64) -> Result<u64, TrailFileError> {
    let file = File::open(path).map_err(io_error("reading", path))?;
    let mut newlines = 0u64;
    let mut reader = BufReader::new(file.take(offset));
    loop {
        let buf = reader.fill_buf().map_err(io_error("reading", path))?;
        if buf.is_empty() {
            break;
        }
        newlines += buf.iter().filter(|&&b| b == b'\n').count() as u64;
        let n = buf.len();
        reader.consume(n);
    }
    Ok(newlines + 1)
}

/// The head after a file's last record, checked against its own hash; `None` for an
/// empty file.
fn last_head(path: &Path) -> Result<Option<ChainHead>, TrailFileError> {
    let mut file = File::open(path).map_err(io_error("reading", path))?;
    let (offset, bytes) = match read_tail(&mut file).map_err(io_error("reading", path))? {
        Tail::Empty => return Ok(None),
        Tail::Torn { offset } => {
            return Err(TrailFileError::Torn {
                path: path.to_path_buf(),
                line: line_at(path, offset)?,
                offset,
            });
        }
        Tail::Whole { offset, bytes } => (offset, bytes),
    };
    let value: Value = match serde_json::from_slice(&bytes) {
        Ok(value) => value,
        Err(source) => {
            return Err(TrailFileError::Malformed {
                path: path.to_path_buf(),
                line: line_at(path, offset)?,
                source,
            });
        }
    };
    // Check the record against its own hash, after the head it names.
    let named = serde_json::from_value::<super::ChainLink>(value.clone()).ok();
    let mut verifier = ChainVerifier::after(match named {
        Some(link) => ChainHead {
            seq: link.seq.saturating_sub(1),
            hash: link.prev_hash,
        },
        None => ChainHead::GENESIS,
    });
    match verifier.push_value(&value) {
        Ok(()) => Ok(Some(verifier.head())),
        Err(source) => Err(TrailFileError::Chain {
            path: path.to_path_buf(),
            line: line_at(path, offset)?,
            source,
        }),
    }
}

/// Reads every line of `paths` in order, handing each parsed line to `each` with its
/// file and line number.
fn for_each_line<P: AsRef<Path>>(
    paths: &[P],
    mut each: impl FnMut(&Path, u64, Value) -> Result<(), TrailFileError>,
) -> Result<(PathBuf, u64), TrailFileError> {
    let mut at = (PathBuf::new(), 0);
    let mut buf = Vec::new();
    for path in paths {
        let path = path.as_ref();
        let file = File::open(path).map_err(io_error("reading", path))?;
        let mut reader = BufReader::new(file);
        let mut line = 0u64;
        let mut offset = 0u64;
        loop {
            buf.clear();
            let n = reader
                .read_until(b'\n', &mut buf)
                .map_err(io_error("reading", path))?;
            if n == 0 {
                break;
            }
            line += 1;
            if buf.last() != Some(&b'\n') {
                return Err(TrailFileError::Torn {
                    path: path.to_path_buf(),
                    line,
                    offset,
                });
            }
            offset += n as u64;
            let value =
                serde_json::from_slice(&buf).map_err(|source| TrailFileError::Malformed {
                    path: path.to_path_buf(),
                    line,
                    source,
                })?;
            each(path, line, value)?;
        }
        at = (path.to_path_buf(), line);
    }
    Ok(at)
}

/// Checks the hash chain of a trail's files, given in chain order (as
/// [`jsonl_trail_files`] lists them), from record 1; with `known_head` (a head noted
/// earlier, say [`JsonlSink::head`]), also that the trail still reaches it unchanged.
/// Returns the trail's head.
///
/// Each line is checked as the JSON object it holds, so no field escapes the hash. The
/// error names the file and line of the first break: a partial line
/// ([`TrailFileError::Torn`]), a line that is not JSON, or a break in the chain
/// ([`TrailFileError::Chain`], with the [`ChainError`]). The files are streamed, never
/// held whole.
///
/// ```no_run
/// use approval_gate::{trail::{jsonl_trail_files, verify_jsonl_files}};
///
/// # fn main() -> Result<(), approval_gate::trail::TrailFileError> {
/// let head = verify_jsonl_files(&jsonl_trail_files("audit/trail.jsonl")?, None)?;
/// println!("ok: head {}:{}", head.seq, head.hash);
/// # Ok(()) }
/// ```
pub fn verify_jsonl_files<P: AsRef<Path>>(
    paths: &[P],
    known_head: Option<ChainHead>,
) -> Result<ChainHead, TrailFileError> {
    let mut verifier = ChainVerifier::new();
    if let Some(known) = known_head {
        verifier = verifier.expect_head(known);
    }
    verify_jsonl_files_with(paths, verifier)
}

/// Checks the hash chain of files in chain order with `verifier`, as
/// [`verify_jsonl_files`] does: for files that continue a trail after a known head
/// (`ChainVerifier::after(head)`), such as a trail whose oldest files were archived, or
/// an export of a range of a store's trail.
pub fn verify_jsonl_files_with<P: AsRef<Path>>(
    paths: &[P],
    mut verifier: ChainVerifier,
) -> Result<ChainHead, TrailFileError> {
    let (last_path, last_line) = for_each_line(paths, |path, line, value| {
        verifier
            .push_value(&value)
            .map_err(|source| TrailFileError::Chain {
                path: path.to_path_buf(),
                line,
                source,
            })
    })?;
    verifier.finish().map_err(|source| TrailFileError::Chain {
        path: last_path,
        line: last_line,
        source,
    })
}

/// Reads a trail's files, given in chain order, into records, oldest first, checking the
/// chain from record 1 as [`verify_jsonl_files`] does: a trail that does not verify gives
/// its error, never records. Holds the whole trail in memory.
pub fn read_jsonl_files<P: AsRef<Path>>(paths: &[P]) -> Result<Vec<AuditRecord>, TrailFileError> {
    let mut verifier = ChainVerifier::new();
    let mut records = Vec::new();
    for_each_line(paths, |path, line, value| {
        verifier
            .push_value(&value)
            .map_err(|source| TrailFileError::Chain {
                path: path.to_path_buf(),
                line,
                source,
            })?;
        let record =
            serde_json::from_value(value).map_err(|source| TrailFileError::NotARecord {
                path: path.to_path_buf(),
                line,
                source,
            })?;
        records.push(record);
        Ok(())
    })?;
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditEvent;
    use crate::call::ToolCall;
    use serde_json::json;
    use time::macros::datetime;

    /// A fresh directory under the system's temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            let dir = std::env::temp_dir().join(format!("approval-gate-{}", uuid::Uuid::new_v4()));
            fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        fn live(&self) -> PathBuf {
            self.0.join("trail.jsonl")
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn record(i: usize) -> AuditRecord {
        let call = ToolCall::new("run-1", format!("c{i}"), "email.send", json!({}));
        let event = AuditEvent::Stopped {
            reason: "test".into(),
            detail: Some(format!("record {i}")),
        };
        AuditRecord::new(datetime!(2026-01-01 00:00 UTC), &call, None, "v1", event)
    }

    fn write(sink: &JsonlSink, range: std::ops::Range<usize>) {
        for i in range {
            sink.append(&record(i)).unwrap();
        }
    }

    fn line_len() -> u64 {
        let (linked, _) = ChainHead::GENESIS.link(&record(1));
        serde_json::to_vec(&linked).unwrap().len() as u64 + 1
    }

    fn lines(path: &Path) -> Vec<String> {
        fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn parsed(path: &Path) -> Vec<AuditRecord> {
        lines(path)
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// A sink that rotates after two records a file.
    fn rotating(dir: &TempDir) -> JsonlSink {
        JsonlSink::builder(dir.live())
            .max_bytes(line_len() * 5 / 2)
            .open()
            .unwrap()
    }

    #[tokio::test]
    async fn a_written_trail_verifies_and_each_line_is_a_chained_record() {
        let dir = TempDir::new();
        let sink = JsonlSink::open(dir.live()).unwrap();
        assert_eq!(sink.head(), ChainHead::GENESIS);
        for i in 0..5 {
            sink.record(&record(i)).await.unwrap();
        }
        let head = sink.head();
        assert_eq!(head.seq, 5);
        assert_eq!(sink.files(), [dir.live()]);
        assert_eq!(jsonl_trail_files(dir.live()).unwrap(), [dir.live()]);
        assert_eq!(verify_jsonl_files(&sink.files(), Some(head)).unwrap(), head);

        let records = parsed(&dir.live());
        let mut prev = ChainHead::GENESIS;
        for (i, r) in records.iter().enumerate() {
            let link = r.chain.expect("every line carries its link");
            assert_eq!(link.seq, i as u64 + 1);
            assert_eq!(link.prev_hash, prev.hash);
            assert_eq!(r.call_id, format!("c{i}"));
            prev = ChainHead {
                seq: link.seq,
                hash: link.hash,
            };
        }
        assert_eq!(prev, head);
        assert_eq!(read_jsonl_files(&sink.files()).unwrap(), records);
    }

    #[test]
    fn rotation_splits_the_trail_and_the_chain_runs_across_files() {
        let dir = TempDir::new();
        let sink = rotating(&dir);
        write(&sink, 0..7);
        let rotated: Vec<PathBuf> = (1..=3)
            .map(|n| dir.0.join(format!("trail.{n:06}.jsonl")))
            .collect();
        let mut expected = rotated.clone();
        expected.push(dir.live());
        assert_eq!(sink.files(), expected);
        assert_eq!(jsonl_trail_files(dir.live()).unwrap(), expected);
        // Lexical order is chain order.
        let mut sorted = expected.clone();
        sorted.sort();
        assert_eq!(sorted, expected);

        let per_file: Vec<Vec<AuditRecord>> = expected.iter().map(|p| parsed(p)).collect();
        assert_eq!(
            per_file.iter().map(Vec::len).collect::<Vec<_>>(),
            [2, 2, 2, 1]
        );
        for pair in per_file.windows(2) {
            let last = pair[0].last().unwrap().chain.unwrap();
            let first = pair[1][0].chain.unwrap();
            assert_eq!(first.seq, last.seq + 1);
            assert_eq!(first.prev_hash, last.hash);
        }
        for p in &expected {
            assert!(fs::metadata(p).unwrap().len() <= line_len() * 5 / 2);
        }
        assert_eq!(
            verify_jsonl_files(&expected, Some(sink.head())).unwrap(),
            sink.head()
        );
        assert_eq!(sink.head().seq, 7);
    }

    #[test]
    fn a_record_longer_than_the_limit_goes_alone_into_a_file() {
        let dir = TempDir::new();
        let sink = JsonlSink::builder(dir.live()).max_bytes(10).open().unwrap();
        write(&sink, 0..3);
        assert_eq!(sink.files().len(), 3);
        for p in sink.files() {
            assert_eq!(lines(&p).len(), 1);
        }
        assert_eq!(verify_jsonl_files(&sink.files(), None).unwrap().seq, 3);
    }

    #[test]
    fn reopening_continues_the_chain_and_the_file_numbers() {
        let dir = TempDir::new();
        let first_head = {
            let sink = rotating(&dir);
            write(&sink, 0..5);
            sink.head()
        };
        let sink = rotating(&dir);
        assert_eq!(sink.head(), first_head);
        write(&sink, 5..8);
        assert_eq!(sink.head().seq, 8);
        let files = sink.files();
        assert_eq!(files.len(), 4);
        assert_eq!(files[2], dir.0.join("trail.000003.jsonl"));
        assert_eq!(
            verify_jsonl_files(&files, Some(first_head)).unwrap(),
            sink.head()
        );

        // A restart right after a rotation finds an empty live file: the chain
        // continues from the newest rotated file.
        drop(sink);
        let live_lines = lines(&dir.live()).len();
        assert_eq!(live_lines, 2);
        fs::rename(dir.live(), dir.0.join("trail.000004.jsonl")).unwrap();
        File::create(dir.live()).unwrap();
        let sink = rotating(&dir);
        assert_eq!(sink.head().seq, 8);
        write(&sink, 8..9);
        assert_eq!(
            verify_jsonl_files(&jsonl_trail_files(dir.live()).unwrap(), None)
                .unwrap()
                .seq,
            9
        );
    }

    #[test]
    fn a_torn_last_line_is_refused_and_cutting_it_off_recovers() {
        let dir = TempDir::new();
        let head = {
            let sink = JsonlSink::open(dir.live()).unwrap();
            write(&sink, 0..3);
            sink.head()
        };
        let whole = fs::metadata(dir.live()).unwrap().len();
        let mut f = OpenOptions::new().append(true).open(dir.live()).unwrap();
        f.write_all(br#"{"schema":1,"seq":4,"prev_h"#).unwrap();
        drop(f);

        let err = JsonlSink::open(dir.live()).unwrap_err();
        assert!(
            matches!(err, TrailFileError::Torn { line: 4, offset, .. } if offset == whole),
            "{err:?}"
        );
        assert!(err.to_string().contains("partial line"), "{err}");
        let err = verify_jsonl_files(&[dir.live()], None).unwrap_err();
        assert!(
            matches!(err, TrailFileError::Torn { line: 4, offset, .. } if offset == whole),
            "{err:?}"
        );

        // The documented recovery: cut the file where the partial line starts.
        OpenOptions::new()
            .write(true)
            .open(dir.live())
            .unwrap()
            .set_len(whole)
            .unwrap();
        let sink = JsonlSink::open(dir.live()).unwrap();
        assert_eq!(sink.head(), head);
        write(&sink, 3..4);
        assert_eq!(verify_jsonl_files(&[dir.live()], None).unwrap().seq, 4);
    }

    #[test]
    fn a_last_line_that_is_not_a_valid_record_is_refused_on_open() {
        let dir = TempDir::new();
        {
            let sink = JsonlSink::open(dir.live()).unwrap();
            write(&sink, 0..2);
        }
        let text = fs::read_to_string(dir.live()).unwrap();
        fs::write(dir.live(), text.replace("record 1", "record X")).unwrap();
        let err = JsonlSink::open(dir.live()).unwrap_err();
        assert!(
            matches!(
                err,
                TrailFileError::Chain {
                    line: 2,
                    source: ChainError::Modified { seq: 2 },
                    ..
                }
            ),
            "{err:?}"
        );

        fs::write(dir.live(), format!("{text}not json\n")).unwrap();
        let err = JsonlSink::open(dir.live()).unwrap_err();
        assert!(
            matches!(err, TrailFileError::Malformed { line: 3, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn tampering_in_a_rotated_file_is_reported_with_its_file_and_line() {
        let dir = TempDir::new();
        let sink = rotating(&dir);
        write(&sink, 0..7);
        let head = sink.head();
        drop(sink);
        let second = dir.0.join("trail.000002.jsonl");
        let original = fs::read_to_string(&second).unwrap();

        // Record 4 (call c3) is line 2 of the second file.
        fs::write(&second, original.replace("record 3", "record 9")).unwrap();
        let files = jsonl_trail_files(dir.live()).unwrap();
        let err = verify_jsonl_files(&files, None).unwrap_err();
        match &err {
            TrailFileError::Chain { path, line, source } => {
                assert_eq!(path, &second);
                assert_eq!(*line, 2);
                assert_eq!(source, &ChainError::Modified { seq: 4 });
            }
            other => panic!("expected a chain error, got {other:?}"),
        }
        assert!(
            err.to_string().contains("line 2 of `")
                && err.to_string().contains("trail.000002.jsonl"),
            "{err}"
        );
        assert!(read_jsonl_files(&files).is_err());

        // A deleted line: the next record is found where record 3 should be.
        let first_line_gone: String = original.lines().skip(1).map(|l| format!("{l}\n")).collect();
        fs::write(&second, first_line_gone).unwrap();
        let err = verify_jsonl_files(&files, None).unwrap_err();
        assert!(
            matches!(
                &err,
                TrailFileError::Chain { path, line: 1, source: ChainError::Missing { seq: 4, expected: 3 } }
                    if path == &second
            ),
            "{err:?}"
        );

        // A cut-off tail, against the head noted before: reported at the last line.
        fs::write(&second, &original).unwrap();
        fs::remove_file(dir.live()).unwrap();
        let files = jsonl_trail_files(dir.live()).unwrap();
        let err = verify_jsonl_files(&files, Some(head)).unwrap_err();
        assert!(
            matches!(
                &err,
                TrailFileError::Chain { line: 2, source: ChainError::Truncated { last_seq: 6, known_seq: 7 }, path }
                    if path == &dir.0.join("trail.000003.jsonl")
            ),
            "{err:?}"
        );
    }

    #[test]
    fn files_after_archived_ones_verify_from_the_head_before_them() {
        let dir = TempDir::new();
        let sink = rotating(&dir);
        write(&sink, 0..5);
        let files = sink.files();
        let before = verify_jsonl_files(&files[..1], None).unwrap();
        assert_eq!(before.seq, 2);
        assert!(verify_jsonl_files(&files[1..], None).is_err());
        let after = ChainVerifier::after(before).expect_head(sink.head());
        assert_eq!(
            verify_jsonl_files_with(&files[1..], after).unwrap(),
            sink.head()
        );
        let wrong = ChainVerifier::after(ChainHead {
            seq: 2,
            hash: sink.head().hash,
        });
        let err = verify_jsonl_files_with(&files[1..], wrong).unwrap_err();
        assert!(
            matches!(
                err,
                TrailFileError::Chain {
                    line: 1,
                    source: ChainError::Relinked { seq: 3 },
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn after_a_failed_write_the_sink_refuses_more_records() {
        let dir = TempDir::new();
        let sink = rotating(&dir);
        write(&sink, 0..2);
        // Something else took the next rotated name: the rotation fails.
        fs::write(dir.0.join("trail.000001.jsonl"), "").unwrap();
        let err = sink.append(&record(2)).unwrap_err();
        assert!(matches!(err, TrailFileError::Io { .. }), "{err:?}");
        let err = sink.append(&record(3)).unwrap_err();
        assert!(matches!(err, TrailFileError::Failed { .. }), "{err:?}");
        let err = record_error(&sink);
        assert_eq!(err, "audit sink failed");
        assert_eq!(sink.head().seq, 2);
        assert_eq!(lines(&dir.live()).len(), 2);
    }

    fn record_error(sink: &JsonlSink) -> String {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(sink.record(&record(4)))
            .unwrap_err()
            .to_string()
    }

    /// On a runtime of one thread, a record waiting for the disk leaves the thread to
    /// other tasks: the writer is held here (by taking its lock) while another task runs.
    #[tokio::test(flavor = "current_thread")]
    #[allow(
        clippy::await_holding_lock,
        reason = "the test holds the writer on purpose"
    )]
    async fn a_record_waits_without_holding_the_runtime() {
        let dir = TempDir::new();
        let sink = JsonlSink::open(dir.live()).unwrap();
        let held = sink.inner.lock();
        let writing = tokio::spawn({
            let sink = sink.clone();
            async move { sink.record(&record(1)).await }
        });
        let other = tokio::spawn(async { "ran" });
        assert_eq!(other.await.unwrap(), "ran");
        assert!(!writing.is_finished());
        drop(held);
        writing.await.unwrap().unwrap();
        assert_eq!(sink.head().seq, 1);
        assert_eq!(lines(&dir.live()).len(), 1);
    }

    /// Clones write through one writer: dropping one leaves the others working.
    #[test]
    fn clones_share_one_writer() {
        let dir = TempDir::new();
        let sink = JsonlSink::open(dir.live()).unwrap();
        let clone = sink.clone();
        sink.append(&record(1)).unwrap();
        drop(sink);
        clone.append(&record(2)).unwrap();
        assert_eq!(clone.head().seq, 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_records_are_whole_lines_in_chain_order() {
        let dir = TempDir::new();
        let sink = JsonlSink::builder(dir.live())
            .max_bytes(line_len() * 20)
            .open()
            .unwrap();
        let tasks: Vec<_> = (0..8)
            .map(|t| {
                let sink = sink.clone();
                tokio::spawn(async move {
                    for i in 0..25 {
                        sink.record(&record(t * 100 + i)).await.unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(sink.head().seq, 200);
        let files = jsonl_trail_files(dir.live()).unwrap();
        assert_eq!(files, sink.files());
        assert!(files.len() > 1);
        assert_eq!(
            verify_jsonl_files(&files, Some(sink.head())).unwrap().seq,
            200
        );
        let records = read_jsonl_files(&files).unwrap();
        let mut calls: Vec<&str> = records.iter().map(|r| r.call_id.as_str()).collect();
        calls.sort_unstable();
        calls.dedup();
        assert_eq!(calls.len(), 200);
    }

    #[test]
    fn bad_paths_are_errors_not_panics() {
        let dir = TempDir::new();
        let err = JsonlSink::open(dir.0.join("missing-dir").join("trail.jsonl")).unwrap_err();
        assert!(
            matches!(
                err,
                TrailFileError::Io {
                    action: "opening",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(matches!(
            JsonlSink::open("/").unwrap_err(),
            TrailFileError::Name { .. }
        ));
        assert_eq!(
            jsonl_trail_files(dir.live()).unwrap(),
            Vec::<PathBuf>::new()
        );
        assert_eq!(
            verify_jsonl_files::<PathBuf>(&[], None).unwrap(),
            ChainHead::GENESIS
        );
    }
}
