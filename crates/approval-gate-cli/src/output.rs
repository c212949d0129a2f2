//! What the command prints: a table for people, JSON (lines, for lists) for scripts;
//! and the views of requests and grants, built from what a person may see (previews and
//! redacted arguments, never the raw arguments).

use std::io::Write;

use approval_gate::desk::Grant;
use approval_gate::serde_json;
use approval_gate::time::OffsetDateTime;
use approval_gate::time::format_description::well_known::Rfc3339;
use approval_gate::trail::AuditRecord;
use serde::Serialize;

/// How reads print.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns, for people.
    #[default]
    Table,
    /// JSON: one object, or one object a line for lists.
    Json,
}

/// Times as RFC 3339.
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

pub use approval_gate_server::RequestView;

/// A standing grant as a person sees it.
#[derive(Debug, Clone, Serialize)]
pub struct GrantView {
    /// The grant id.
    pub id: String,
    /// The tool (pattern) it covers.
    pub tool: String,
    /// Whose calls: `run`, `user` or `tenant`.
    pub scope: String,
    /// The tenant.
    pub tenant: Option<String>,
    /// Who left it.
    pub created_by: String,
    /// Its authors.
    pub authors: Vec<String>,
    /// The request whose approval left it.
    pub request_id: String,
    /// Whether it covers only the approved arguments.
    pub same_args: bool,
    /// When it lapses.
    pub expires_at: String,
    /// Calls it covered so far.
    pub uses: u32,
    /// At most this many.
    pub max_uses: Option<u32>,
    /// When it was revoked.
    pub revoked_at: Option<String>,
}

impl GrantView {
    /// The view of `grant`.
    pub fn of(grant: &Grant) -> Self {
        let scope = serde_json::to_value(grant.scope())
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        GrantView {
            id: grant.id().to_string(),
            tool: grant.tool().to_owned(),
            scope,
            tenant: grant.tenant().map(str::to_owned),
            created_by: grant.created_by().to_owned(),
            authors: grant.authors().iter().map(|a| a.id().to_owned()).collect(),
            request_id: grant.request_id().to_string(),
            same_args: grant.args_hash().is_some(),
            expires_at: rfc3339(grant.expires_at()),
            uses: grant.uses(),
            max_uses: grant.max_uses(),
            revoked_at: grant.revoked_at().map(rfc3339),
        }
    }
}

/// One line of a request's or a run's history.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryView {
    /// When.
    pub at: String,
    /// The record's place in the trail.
    pub seq: Option<u64>,
    /// The event's name.
    pub event: String,
    /// Who acted, if a person did.
    pub actor: Option<String>,
    /// The request, if any.
    pub request_id: Option<String>,
}

impl HistoryView {
    /// The line of `record`.
    pub fn of(record: &AuditRecord) -> Self {
        HistoryView {
            at: rfc3339(record.at),
            seq: record.chain.map(|c| c.seq),
            event: record.event.written_name().to_owned(),
            actor: record.event.actor().map(str::to_owned),
            request_id: record.request_id.map(|id| id.to_string()),
        }
    }
}

/// Where the command writes its results; errors of writing (a closed pipe) are ignored.
pub struct Out {
    format: Format,
}

impl Out {
    /// Output in `format`.
    pub fn new(format: Format) -> Self {
        Out { format }
    }

    /// The format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Prints a line as it is.
    pub fn line(&self, text: &str) {
        let _ = writeln!(std::io::stdout().lock(), "{text}");
    }

    /// Prints one value as JSON on one line.
    pub fn json<T: Serialize>(&self, value: &T) {
        match serde_json::to_string(value) {
            Ok(text) => self.line(&text),
            Err(e) => self.line(&format!("{{\"error\":{:?}}}", e.to_string())),
        }
    }

    /// Prints rows under a header, in aligned columns.
    pub fn table(&self, header: &[&str], rows: &[Vec<String>]) {
        let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
        for row in rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let render = |cells: Vec<String>| {
            let last = cells.len().saturating_sub(1);
            let mut line = String::new();
            for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
                line.push_str(cell);
                if i < last {
                    let pad = w - cell.chars().count() + 2;
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            line
        };
        self.line(&render(header.iter().map(|h| (*h).to_owned()).collect()));
        for row in rows {
            self.line(&render(row.clone()));
        }
    }

    /// Prints `name: value` pairs, aligned.
    pub fn pairs(&self, pairs: &[(&str, String)]) {
        let width = pairs.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
        for (name, value) in pairs {
            self.line(&format!("{name:width$}  {value}"));
        }
    }
}

/// A cell for an optional value: `-` when there is none.
pub fn cell(value: Option<&str>) -> String {
    value.unwrap_or("-").to_owned()
}

/// Text for a table cell: one line, at most `max` characters.
pub fn short(text: &str, max: usize) -> String {
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if one_line.chars().count() <= max {
        return one_line;
    }
    let mut cut: String = one_line.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// A number of seconds as `1h02m`, `5m03s`, `42s`.
pub fn seconds(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 {
        format!("{h}h{m:02}m")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_cells_are_cut_to_one_line() {
        assert_eq!(short("a\nb", 10), "a b");
        assert_eq!(short("abcdef", 4), "abc…");
    }

    #[test]
    fn seconds_read_as_people_count() {
        assert_eq!(seconds(42), "42s");
        assert_eq!(seconds(303), "5m03s");
        assert_eq!(seconds(3720), "1h02m");
    }
}
