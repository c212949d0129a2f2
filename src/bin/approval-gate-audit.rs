//! `approval-gate-audit`: verify a JSON-lines audit trail written by `JsonlSink` (or by
//! `export_jsonl`), and print the history of one approval request or one agent run.
//!
//! Build it with `cargo install approval-gate --features cli` (or
//! `cargo build --features cli --bin approval-gate-audit`).
//!
//! ```text
//! approval-gate-audit verify <live-file> [--head <seq>:<hash>] [--after <seq>:<hash>]
//! approval-gate-audit history <live-file> <request-id>
//! approval-gate-audit run <live-file> <run-id>
//! approval-gate-audit help
//! ```
//!
//! `<live-file>` is the path the sink writes (`audit/trail.jsonl`); its rotated files
//! beside it (`audit/trail.000001.jsonl`, …) are read first, in order.
//!
//! - `verify` checks the hash chain of the whole trail and prints
//!   `ok: <n> records in <f> files, head <seq>:<hash>`. Keep the head: passing it back
//!   later as `--head <seq>:<hash>` also checks that the trail still reaches it
//!   unchanged (nothing cut off or rewritten). `--after <seq>:<hash>` checks files that
//!   continue a trail after that head (older files archived, or an export of a range).
//! - `history` prints the records of one approval request, oldest first, and `run` those
//!   of one agent run, one line each:
//!   `<at> #<seq> <event> tool=<tool> call=<call-id> [request=<id>] <field>=<value>…`,
//!   where the fields are the event's own (`approver`, `feedback`, `reason`, …, in
//!   alphabetical order; a string with spaces or quotes, and any other value, is JSON).
//!   `request=` appears only in `run`. Both verify the trail first and print nothing
//!   from a trail that does not verify.
//!
//! Exit status: 0 on success; 1 when the trail does not verify, cannot be read, does not
//! exist, or has no record of the request or run; 2 on a usage error. Results go to
//! standard output; errors, prefixed `error: `, to standard error, with the file and
//! line where a trail breaks:
//!
//! ```text
//! $ approval-gate-audit verify audit/trail.jsonl
//! error: the trail breaks at line 2 of `audit/trail.000002.jsonl`: record 4 was modified: its content does not match its hash
//! ```

use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use approval_gate::serde_json::Value;
use approval_gate::time::format_description::well_known::Rfc3339;
use approval_gate::{
    RequestId,
    trail::{
        AuditHash, AuditRecord, ChainHead, ChainVerifier, jsonl_trail_files, read_jsonl_files,
        verify_jsonl_files_with,
    },
};

const USAGE: &str = "\
usage:
  approval-gate-audit verify <live-file> [--head <seq>:<hash>] [--after <seq>:<hash>]
  approval-gate-audit history <live-file> <request-id>
  approval-gate-audit run <live-file> <run-id>
  approval-gate-audit help";

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

/// How the command ends.
enum Failure {
    /// Bad arguments: the message, then the usage, exit 2.
    Usage(String),
    /// The trail is broken, missing or has nothing to show: exit 1.
    Failed(String),
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(out) => {
            for line in out {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        Err(Failure::Usage(message)) => {
            eprintln!("error: {message}\n{USAGE}");
            ExitCode::from(2)
        }
        Err(Failure::Failed(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(1)
        }
    }
}

fn run(args: &[String]) -> Result<Vec<String>, Failure> {
    let Some((command, rest)) = args.split_first() else {
        return Err(Failure::Usage("no command given".into()));
    };
    match command.as_str() {
        "verify" => verify(rest),
        "history" => {
            let (live, id) = two_operands(rest)?;
            let id = id
                .parse::<RequestId>()
                .map_err(|e| Failure::Usage(e.to_string()))?;
            history(&live, |r| r.request_id == Some(id), false)
                .and_then(|lines| nonempty(lines, &format!("no record of request `{id}`")))
        }
        "run" => {
            let (live, run_id) = two_operands(rest)?;
            history(&live, |r| r.run_id == run_id, true)
                .and_then(|lines| nonempty(lines, &format!("no record of run `{run_id}`")))
        }
        "help" | "--help" | "-h" => Ok(USAGE.lines().map(str::to_owned).collect()),
        other => Err(Failure::Usage(format!("unknown command `{other}`"))),
    }
}

fn verify(args: &[String]) -> Result<Vec<String>, Failure> {
    let mut live = None;
    let mut head = None;
    let mut after = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) if name.starts_with("--") => (name, Some(value.to_owned())),
            _ => (arg.as_str(), None),
        };
        let slot = match name {
            "--head" => &mut head,
            "--after" => &mut after,
            _ if name.starts_with('-') && name.len() > 1 => {
                return Err(Failure::Usage(format!("unknown option `{name}`")));
            }
            _ if live.is_none() => {
                live = Some(PathBuf::from(arg));
                continue;
            }
            _ => return Err(Failure::Usage(format!("unexpected argument `{arg}`"))),
        };
        let value = match inline {
            Some(value) => value,
            None => args
                .next()
                .cloned()
                .ok_or_else(|| Failure::Usage(format!("`{name}` needs <seq>:<hash>")))?,
        };
        if slot.is_some() {
            return Err(Failure::Usage(format!("`{name}` given twice")));
        }
        *slot = Some(parse_head(name, &value)?);
    }
    let live = live.ok_or_else(|| Failure::Usage("no trail file given".into()))?;

    let files = trail_files(&live)?;
    let start = after.unwrap_or(ChainHead::GENESIS);
    let mut verifier = ChainVerifier::after(start);
    if let Some(known) = head {
        verifier = verifier.expect_head(known);
    }
    let end = verify_jsonl_files_with(&files, verifier).map_err(failed)?;
    let records = end.seq - start.seq;
    Ok(vec![format!(
        "ok: {records} {} in {} {}, head {}:{}",
        plural(records, "record", "records"),
        files.len(),
        plural(files.len() as u64, "file", "files"),
        end.seq,
        end.hash
    )])
}

fn history(
    live: &Path,
    wanted: impl Fn(&AuditRecord) -> bool,
    show_request: bool,
) -> Result<Vec<String>, Failure> {
    let files = trail_files(live)?;
    let records = read_jsonl_files(&files).map_err(failed)?;
    Ok(records
        .iter()
        .filter(|r| wanted(r))
        .map(|r| history_line(r, show_request))
        .collect())
}

/// `<at> #<seq> <event> tool=<tool> call=<call-id> [request=<id>] <field>=<value>…`
fn history_line(record: &AuditRecord, show_request: bool) -> String {
    let at = record
        .at
        .format(&Rfc3339)
        .unwrap_or_else(|_| record.at.to_string());
    let seq = record.chain.map_or(0, |link| link.seq);
    let mut line = format!(
        "{at} #{seq} {} tool={} call={}",
        record.event.written_name(),
        field_value(&Value::String(record.tool.clone())),
        field_value(&Value::String(record.call_id.clone())),
    );
    if show_request && let Some(id) = record.request_id {
        line.push_str(&format!(" request={id}"));
    }
    if let Ok(Value::Object(fields)) = approval_gate::serde_json::to_value(record) {
        for (name, value) in fields {
            if !COMMON_FIELDS.contains(&name.as_str()) {
                line.push_str(&format!(" {name}={}", field_value(&value)));
            }
        }
    }
    line
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

fn two_operands(args: &[String]) -> Result<(PathBuf, &str), Failure> {
    match args {
        [live, second] if !second.starts_with("--") && !live.starts_with("--") => {
            Ok((PathBuf::from(live), second.as_str()))
        }
        [_, _] => Err(Failure::Usage("options are not taken here".into())),
        _ => Err(Failure::Usage(format!(
            "expected 2 arguments, got {}",
            args.len()
        ))),
    }
}

fn parse_head(option: &str, value: &str) -> Result<ChainHead, Failure> {
    let bad = || Failure::Usage(format!("`{option}` takes <seq>:<hash>, not `{value}`"));
    let (seq, hash) = value.split_once(':').ok_or_else(bad)?;
    let seq = seq.parse::<u64>().map_err(|_| bad())?;
    let hash = hash.parse::<AuditHash>().map_err(|_| bad())?;
    Ok(ChainHead { seq, hash })
}

fn trail_files(live: &Path) -> Result<Vec<PathBuf>, Failure> {
    let files = jsonl_trail_files(live).map_err(failed)?;
    if files.is_empty() {
        return Err(Failure::Failed(format!("no trail at `{}`", live.display())));
    }
    Ok(files)
}

fn nonempty(lines: Vec<String>, none: &str) -> Result<Vec<String>, Failure> {
    if lines.is_empty() {
        Err(Failure::Failed(none.to_owned()))
    } else {
        Ok(lines)
    }
}

/// The error and its sources, one line: `the trail breaks at line 2 of `x`: record 4 …`.
fn failed(error: impl Error) -> Failure {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        message.push_str(": ");
        message.push_str(&e.to_string());
        source = e.source();
    }
    Failure::Failed(message)
}

fn plural<'a>(n: u64, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}
