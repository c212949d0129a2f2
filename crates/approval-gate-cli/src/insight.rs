//! Insight: the figures of a time window, and the audit trail (a JSON-lines file written
//! by `JsonlSink` or `export_jsonl`, or the store's own trail): verify, history, export.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use approval_gate::serde_json::{self, Value};
use approval_gate::trail::{
    AuditHash, AuditQuery, AuditRecord, ChainHead, ChainVerifier, export_jsonl, jsonl_trail_files,
    read_jsonl_files, verify_jsonl_files_with,
};
use serde::Serialize;

use crate::deploy::Deployment;
use crate::desk::{duration, request_id};
use crate::error::CliError;
use crate::output::{Format, HistoryView, Out, rfc3339, seconds};

/// `stats --window 1h`: the figures of the last window.
pub async fn stats(deploy: &Deployment, window: &str, out: &Out) -> Result<(), CliError> {
    let window = duration(window, "--window")?;
    let gate = deploy.reader().await?;
    let stats = gate.stats(window).await?;
    if out.format() == Format::Json {
        out.json(&stats);
        return Ok(());
    }
    let secs =
        |d: Option<std::time::Duration>| d.map(|d| seconds(d.as_secs())).unwrap_or("-".into());
    let mut pairs = vec![
        ("from", rfc3339(stats.from)),
        ("until", rfc3339(stats.until)),
        ("approvals required", stats.approvals_required.to_string()),
        ("granted", stats.granted.to_string()),
        ("denied", stats.denied.to_string()),
        ("timed out", stats.timed_out.to_string()),
        ("cancelled", stats.cancelled.to_string()),
        ("executed", stats.executed.to_string()),
        ("execution failed", stats.execution_failed.to_string()),
        ("execution in doubt", stats.execution_in_doubt.to_string()),
        ("policy denied", stats.policy_denied.to_string()),
        ("allowed", stats.allowed.to_string()),
        ("grants used", stats.grants_used.to_string()),
        ("decided", stats.decided.to_string()),
        (
            "timeout rate",
            stats
                .timeout_rate
                .map(|r| format!("{:.1}%", r * 100.0))
                .unwrap_or("-".into()),
        ),
        (
            "time to decision, median",
            secs(stats.time_to_decision_median),
        ),
        ("time to decision, p95", secs(stats.time_to_decision_p95)),
        ("pending now", stats.pending.to_string()),
    ];
    if let Some(oldest) = &stats.oldest_pending {
        pairs.push((
            "oldest pending",
            format!(
                "{} ({}, filed {})",
                oldest.request_id,
                oldest.tool,
                rfc3339(oldest.created_at)
            ),
        ));
    }
    out.pairs(&pairs);
    Ok(())
}

/// The audit subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum AuditCommand {
    /// Verify the hash chain of a JSON-lines trail (or of the store's trail when no file
    /// is given); prints `ok: N records …, head SEQ:HASH`. Keep the head and pass it back
    /// later as `--head` to check that nothing was cut off or rewritten.
    Verify {
        /// The live file the sink writes (its rotated files beside it are read first).
        trail: Option<PathBuf>,
        /// The trail must still reach this head unchanged (`SEQ:HASH`).
        #[arg(long, value_name = "SEQ:HASH")]
        head: Option<String>,
        /// The files continue a trail after this head (`SEQ:HASH`).
        #[arg(long, value_name = "SEQ:HASH")]
        after: Option<String>,
    },
    /// The history of one request, oldest first: `audit history [TRAIL] ID`.
    History {
        /// `[TRAIL] ID`: the trail file (else the store's trail) and the request id.
        #[arg(num_args = 1..=2, required = true, value_names = ["TRAIL", "ID"])]
        operands: Vec<String>,
    },
    /// The history of one agent run, oldest first: `audit run [TRAIL] RUN`.
    Run {
        /// `[TRAIL] RUN`: the trail file (else the store's trail) and the run id.
        #[arg(num_args = 1..=2, required = true, value_names = ["TRAIL", "RUN"])]
        operands: Vec<String>,
    },
    /// Export the store's trail as JSON lines (verifiable with `audit verify FILE`).
    Export {
        /// Write here instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Only this request's records.
        #[arg(long, value_name = "ID")]
        request: Option<String>,
        /// Only this run's records.
        #[arg(long, value_name = "RUN")]
        run: Option<String>,
        /// Only records after this sequence number.
        #[arg(long, value_name = "SEQ")]
        after_seq: Option<u64>,
    },
}

/// Runs an audit subcommand.
pub async fn audit(deploy: &Deployment, command: &AuditCommand, out: &Out) -> Result<(), CliError> {
    match command {
        AuditCommand::Verify { trail, head, after } => {
            let head = head
                .as_deref()
                .map(|h| parse_head("--head", h))
                .transpose()?;
            let after = after
                .as_deref()
                .map(|h| parse_head("--after", h))
                .transpose()?;
            verify(deploy, trail.as_deref(), head, after, out).await
        }
        AuditCommand::History { operands } => {
            let (trail, id) = split_operands(operands);
            let id = request_id(id)?;
            let query = AuditQuery::request(id);
            history(
                deploy,
                trail,
                &query,
                false,
                &format!("request `{id}`"),
                out,
            )
            .await
        }
        AuditCommand::Run { operands } => {
            let (trail, run) = split_operands(operands);
            let query = AuditQuery::run(run);
            history(deploy, trail, &query, true, &format!("run `{run}`"), out).await
        }
        AuditCommand::Export {
            out: file,
            request,
            run,
            after_seq,
        } => {
            let query = AuditQuery {
                request_id: request.as_deref().map(request_id).transpose()?,
                run_id: run.clone(),
                after_seq: *after_seq,
                ..AuditQuery::default()
            };
            export(deploy, file.as_deref(), &query).await
        }
    }
}

/// `[TRAIL] X`: the trail file, if given, and the operand.
fn split_operands(operands: &[String]) -> (Option<&Path>, &str) {
    match operands {
        [trail, x] => (Some(Path::new(trail.as_str())), x.as_str()),
        [x] => (None, x.as_str()),
        // clap takes one or two.
        _ => (None, ""),
    }
}

fn parse_head(flag: &str, value: &str) -> Result<ChainHead, CliError> {
    let bad = || {
        CliError::usage(
            format!("`{flag}` takes SEQ:HASH, not `{value}`"),
            "copy the head printed by `approval-gate audit verify`",
        )
    };
    let (seq, hash) = value.split_once(':').ok_or_else(bad)?;
    let seq = seq.parse::<u64>().map_err(|_| bad())?;
    let hash = hash.parse::<AuditHash>().map_err(|_| bad())?;
    Ok(ChainHead { seq, hash })
}

/// What `audit verify` prints as JSON.
#[derive(Serialize)]
struct Verified {
    ok: bool,
    records: u64,
    files: Option<usize>,
    head_seq: u64,
    head_hash: String,
}

async fn verify(
    deploy: &Deployment,
    trail: Option<&Path>,
    head: Option<ChainHead>,
    after: Option<ChainHead>,
    out: &Out,
) -> Result<(), CliError> {
    let start = after.unwrap_or(ChainHead::GENESIS);
    let mut verifier = ChainVerifier::after(start);
    if let Some(known) = head {
        verifier = verifier.expect_head(known);
    }
    let (end, files) = match trail {
        Some(live) => {
            let files = trail_files(live)?;
            let end = verify_jsonl_files_with(&files, verifier).map_err(check_failed)?;
            (end, Some(files.len()))
        }
        None => {
            let gate = deploy.reader().await?;
            let query = AuditQuery {
                after_seq: after.map(|h| h.seq),
                ..AuditQuery::default()
            };
            let records = gate.store().audit_records(&query).await?;
            for record in &records {
                verifier.push(record).map_err(check_failed)?;
            }
            (verifier.finish().map_err(check_failed)?, None)
        }
    };
    let records = end.seq - start.seq;
    match out.format() {
        Format::Json => out.json(&Verified {
            ok: true,
            records,
            files,
            head_seq: end.seq,
            head_hash: end.hash.to_string(),
        }),
        Format::Table => {
            let noun = if records == 1 { "record" } else { "records" };
            let place = match files {
                Some(1) => " in 1 file".to_owned(),
                Some(n) => format!(" in {n} files"),
                None => " in the store".to_owned(),
            };
            out.line(&format!(
                "ok: {records} {noun}{place}, head {}:{}",
                end.seq, end.hash
            ));
        }
    }
    Ok(())
}

fn trail_files(live: &Path) -> Result<Vec<PathBuf>, CliError> {
    let files = jsonl_trail_files(live).map_err(check_failed)?;
    if files.is_empty() {
        return Err(CliError::not_found(
            format!("no trail at `{}`", live.display()),
            "give the live file the sink writes, such as `audit/trail.jsonl`",
        ));
    }
    Ok(files)
}

/// A trail that does not verify or cannot be read: the check failed.
fn check_failed(error: impl std::error::Error) -> CliError {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        message.push_str(": ");
        message.push_str(&e.to_string());
        source = e.source();
    }
    CliError::CheckFailed { message }
}

/// The records of `query`, from the file (verified first) or the store.
async fn history(
    deploy: &Deployment,
    trail: Option<&Path>,
    query: &AuditQuery,
    show_request: bool,
    what: &str,
    out: &Out,
) -> Result<(), CliError> {
    let records: Vec<AuditRecord> = match trail {
        Some(live) => {
            let files = trail_files(live)?;
            verify_jsonl_files_with(&files, ChainVerifier::new()).map_err(check_failed)?;
            read_jsonl_files(&files)
                .map_err(check_failed)?
                .into_iter()
                .filter(|r| query.matches(r))
                .collect()
        }
        None => deploy.reader().await?.store().audit_records(query).await?,
    };
    if records.is_empty() {
        return Err(CliError::not_found(
            format!("no record of {what}"),
            "check the id, and that this is the trail it was recorded in",
        ));
    }
    for record in &records {
        match out.format() {
            Format::Json => out.json(record),
            Format::Table => out.line(&history_line(record, show_request)),
        }
    }
    Ok(())
}

/// The fields every record has, left out of a history line's event fields.
const COMMON_FIELDS: &[&str] = &[
    "schema",
    "seq",
    "prev_hash",
    "hash",
    "at",
    "event",
    "run_id",
    "call_id",
    "tool",
    "args_hash",
    "request_id",
    "policy_version",
    "requested_by",
    "tenant",
];

/// `<at> #<seq> <event> tool=<tool> call=<call-id> [request=<id>] <field>=<value>…`
fn history_line(record: &AuditRecord, show_request: bool) -> String {
    let line = HistoryView::of(record);
    let mut text = format!(
        "{} #{} {} tool={} call={}",
        line.at,
        line.seq.unwrap_or(0),
        line.event,
        field_value(&Value::String(record.tool.clone())),
        field_value(&Value::String(record.call_id.clone())),
    );
    if show_request && let Some(id) = record.request_id {
        text.push_str(&format!(" request={id}"));
    }
    if let Ok(Value::Object(fields)) = serde_json::to_value(record) {
        for (name, value) in fields {
            if !COMMON_FIELDS.contains(&name.as_str()) {
                text.push_str(&format!(" {name}={}", field_value(&value)));
            }
        }
    }
    text
}

/// A string as it is when that is unambiguous, anything else as compact JSON.
fn field_value(value: &Value) -> String {
    match value {
        Value::String(s)
            if !s.is_empty()
                && !s
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '=') =>
        {
            s.clone()
        }
        other => other.to_string(),
    }
}

async fn export(
    deploy: &Deployment,
    file: Option<&Path>,
    query: &AuditQuery,
) -> Result<(), CliError> {
    let gate = deploy.reader().await?;
    let reader = gate.store().as_ref();
    let failed = |e: approval_gate::trail::ExportError| CliError::Failed {
        message: "the export stopped part way".into(),
        source: Some(Box::new(e)),
    };
    match file {
        Some(path) => {
            let mut writer = std::fs::File::create(path).map_err(|source| CliError::Io {
                what: "cannot write the export",
                path: path.to_owned(),
                source,
            })?;
            let n = export_jsonl(reader, query, &mut writer)
                .await
                .map_err(failed)?;
            let _ = writeln!(
                std::io::stderr(),
                "exported {n} records to `{}`",
                path.display()
            );
        }
        None => {
            let stdout = std::io::stdout();
            let mut lock = stdout.lock();
            export_jsonl(reader, query, &mut lock)
                .await
                .map_err(failed)?;
        }
    }
    Ok(())
}
