//! `policy check` (does a policy load? where is it wrong?) and `policy test` (does it
//! decide each listed call as expected?), like `opa test`.

use std::path::{Path, PathBuf};

use approval_gate::serde_json::Value;
use approval_gate::{Decision, Effect, Policy, PolicyError, ToolCall};
use serde::{Deserialize, Serialize};

use crate::error::CliError;
use crate::output::{Format, Out};

/// The policy subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum PolicyCommand {
    /// Load each policy file and report every place it is wrong (file, line, column,
    /// field), one line each; exits 5 if any does not load.
    Check {
        /// The policy files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Evaluate the calls listed in CASES (YAML) and compare each decision with the one
    /// expected; prints every failing case and exits 1 if any fails.
    Test {
        /// The policy file.
        file: PathBuf,
        /// The cases: a YAML list of `{name, tool, args, tenant, requester, roles, mode,
        /// expect: {effect, rules, tier}}`.
        cases: PathBuf,
    },
}

/// Runs a policy subcommand.
pub fn policy(command: &PolicyCommand, out: &Out) -> Result<(), CliError> {
    match command {
        PolicyCommand::Check { files } => check(files, out),
        PolicyCommand::Test { file, cases } => test(file, cases, out),
    }
}

/// What `policy check` prints as JSON: one line for a file that loads, one for each error
/// of a file that does not.
#[derive(Serialize)]
struct Checked {
    file: String,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    column: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

fn check(files: &[PathBuf], out: &Out) -> Result<(), CliError> {
    let mut failed = 0;
    for file in files {
        let shown = file.display().to_string();
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) => {
                failed += 1;
                report(
                    out,
                    Checked {
                        file: shown.clone(),
                        ok: false,
                        version: None,
                        line: None,
                        column: None,
                        field: None,
                        error: Some(format!("cannot read it: {e}")),
                    },
                    &format!("{shown}: cannot read it: {e}"),
                );
                continue;
            }
        };
        let errors = Policy::check_yaml(&text);
        if errors.is_empty() {
            match Policy::from_yaml_str(&text) {
                Ok(policy) => {
                    let version = policy.version().to_string();
                    report(
                        out,
                        Checked {
                            file: shown.clone(),
                            ok: true,
                            version: Some(version.clone()),
                            line: None,
                            column: None,
                            field: None,
                            error: None,
                        },
                        &format!("ok: {shown} (version {version})"),
                    );
                    continue;
                }
                // Cannot happen (a config checks clean exactly when it loads), but if
                // it did, the file did not load: say so.
                Err(e) => failed_file(out, &shown, &e),
            }
        }
        for e in &errors {
            failed_file(out, &shown, e);
        }
        failed += 1;
    }
    if failed > 0 {
        return Err(CliError::Failed {
            message: format!(
                "{failed} of {} policy {} did not load",
                files.len(),
                if files.len() == 1 { "file" } else { "files" }
            ),
            source: None,
        });
    }
    Ok(())
}

/// Reports one load error of file `shown`.
fn failed_file(out: &Out, shown: &str, e: &PolicyError) {
    let (line, column) = position(e);
    let place = match (line, column) {
        (Some(l), Some(c)) => format!("{shown}:{l}:{c}"),
        (Some(l), None) => format!("{shown}:{l}"),
        _ => shown.to_owned(),
    };
    let what = match (e.field(), e.message()) {
        (Some(field), Some(message)) if !field.is_empty() => format!("{field}: {message}"),
        _ => e.to_string(),
    };
    report(
        out,
        Checked {
            file: shown.to_owned(),
            ok: false,
            version: None,
            line,
            column,
            field: e.field().map(str::to_owned),
            error: Some(what.clone()),
        },
        &format!("{place}: {what}"),
    );
}

/// The line and column of a load error, when it has them.
fn position(e: &PolicyError) -> (Option<usize>, Option<usize>) {
    match e {
        PolicyError::Invalid { line, column, .. } => (Some(*line), Some(*column)),
        PolicyError::Syntax { line, column, .. } if *line > 0 => {
            (Some(*line), (*column > 0).then_some(*column))
        }
        _ => (e.line(), None),
    }
}

fn report(out: &Out, checked: Checked, line: &str) {
    match out.format() {
        Format::Json => out.json(&checked),
        Format::Table => out.line(line),
    }
}

/// One case of `policy test`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// What the case is about (default: its number and tool).
    #[serde(default)]
    pub name: Option<String>,
    /// The tool called.
    pub tool: String,
    /// Its arguments (default `{}`).
    #[serde(default = "empty_object")]
    pub args: Value,
    /// The call's tenant.
    #[serde(default)]
    pub tenant: Option<String>,
    /// Who asked.
    #[serde(default)]
    pub requester: Option<String>,
    /// The requester's roles.
    #[serde(default)]
    pub roles: Vec<String>,
    /// The run's mode (`context.mode`).
    #[serde(default)]
    pub mode: Option<String>,
    /// The run id (default `policy-test`).
    #[serde(default)]
    pub run_id: Option<String>,
    /// The decision the call must get.
    pub expect: Expect,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

/// The decision a case expects; only the fields given are compared.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// `allow`, `deny` or `approval_required`.
    pub effect: Effect,
    /// The ids of the deciding rules, in any order.
    #[serde(default)]
    pub rules: Option<Vec<String>>,
    /// The risk tier; `none` for no tier.
    #[serde(default)]
    pub tier: Option<String>,
}

/// One case's result, as JSON.
#[derive(Serialize)]
struct CaseResult {
    case: usize,
    name: String,
    passed: bool,
    effect: String,
    rules: Vec<String>,
    tier: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    failures: Vec<String>,
}

fn test(file: &Path, cases_path: &Path, out: &Out) -> Result<(), CliError> {
    let policy = crate::deploy::load_policy(file)?;
    let text = std::fs::read_to_string(cases_path).map_err(|source| CliError::Io {
        what: "cannot read the cases",
        path: cases_path.to_owned(),
        source,
    })?;
    let cases: Vec<Case> = serde_yaml::from_str(&text).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!(":{}:{}", l.line(), l.column()))
            .unwrap_or_default();
        CliError::usage(
            format!("cases `{}{at}`: {e}", cases_path.display()),
            "write a YAML list of {tool, args, expect: {effect, rules, tier}}",
        )
    })?;
    let mut failed = 0;
    for (i, case) in cases.iter().enumerate() {
        let number = i + 1;
        let decision = policy.evaluate(&call_of(case, number));
        let failures = compare(&case.expect, &decision);
        let name = case
            .name
            .clone()
            .unwrap_or_else(|| format!("case {number} ({})", case.tool));
        let result = CaseResult {
            case: number,
            name,
            passed: failures.is_empty(),
            effect: effect_name(decision.effect()).to_owned(),
            rules: decision
                .rule_ids()
                .iter()
                .map(ToString::to_string)
                .collect(),
            tier: decision.tier().map(str::to_owned),
            failures,
        };
        if !result.passed {
            failed += 1;
        }
        match out.format() {
            Format::Json => out.json(&result),
            Format::Table if !result.passed => {
                out.line(&format!(
                    "FAIL {}: {}",
                    result.name,
                    result.failures.join("; ")
                ));
            }
            Format::Table => {}
        }
    }
    let total = cases.len();
    if out.format() == Format::Table {
        out.line(&format!("PASS: {}/{total}", total - failed));
    }
    if failed > 0 {
        return Err(CliError::CheckFailed {
            message: format!("{failed} of {total} cases failed"),
        });
    }
    Ok(())
}

fn call_of(case: &Case, number: usize) -> ToolCall {
    let run = case.run_id.clone().unwrap_or_else(|| "policy-test".into());
    let mut call = ToolCall::new(
        run,
        format!("case-{number}"),
        case.tool.clone(),
        case.args.clone(),
    );
    if let Some(t) = &case.tenant {
        call = call.with_tenant(t);
    }
    if let Some(r) = &case.requester {
        call = call.with_requester(r);
    }
    for role in &case.roles {
        call = call.with_role(role);
    }
    if let Some(m) = &case.mode {
        call = call.with_mode(m);
    }
    call
}

fn effect_name(effect: Effect) -> &'static str {
    match effect {
        Effect::Allow => "allow",
        Effect::Deny => "deny",
        Effect::ApprovalRequired => "approval_required",
    }
}

/// What differs between the expectation and the decision, one entry per field.
fn compare(expect: &Expect, decision: &Decision) -> Vec<String> {
    let mut failures = Vec::new();
    if expect.effect != decision.effect() {
        failures.push(format!(
            "expected effect {}, got {}{}",
            effect_name(expect.effect),
            effect_name(decision.effect()),
            decision
                .reason()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ));
    }
    let mut got: Vec<String> = decision
        .rule_ids()
        .iter()
        .map(ToString::to_string)
        .collect();
    got.sort();
    if let Some(rules) = &expect.rules {
        let mut want = rules.clone();
        want.sort();
        if want != got {
            failures.push(format!(
                "expected rules [{}], got [{}]",
                want.join(", "),
                got.join(", ")
            ));
        }
    }
    if let Some(tier) = &expect.tier {
        let want = (tier != "none").then_some(tier.as_str());
        if want != decision.tier() {
            failures.push(format!(
                "expected tier {}, got {}",
                want.unwrap_or("none"),
                decision.tier().unwrap_or("none")
            ));
        }
    }
    failures
}
