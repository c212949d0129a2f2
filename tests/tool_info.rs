//! What a tool's server says about the tool (`ToolCall::with_tool_info`) reaches the
//! policy's conditions: one rule covers every tool that declares itself destructive.

use approval_gate::{Effect, Policy, ToolCall};
use serde_json::json;

const POLICY: &str = "\
policy:
  default: allow
rules:
  - id: destructive-tools
    tools: ['*']
    effect: approval_required
    when: { field: tool_info.annotations.destructiveHint, eq: true }
  - id: read-only-tools
    tools: ['*']
    effect: allow
    when: { field: tool_info.annotations.readOnlyHint, eq: true }
";

fn call(tool: &str) -> ToolCall {
    ToolCall::new("session-1", "c1", tool, json!({"path": "/tmp/x"}))
}

#[test]
fn a_tool_that_declares_itself_destructive_needs_approval_whatever_its_name() {
    let policy = Policy::from_yaml_str(POLICY).unwrap();
    let said = |annotations| json!({"server": "files", "annotations": annotations});
    let delete = call("files.delete").with_tool_info(said(json!({"destructiveHint": true})));
    let decision = policy.evaluate(&delete);
    assert_eq!(decision.effect(), Effect::ApprovalRequired);
    assert_eq!(decision.rule_ids()[0].to_string(), "destructive-tools");

    let read = call("files.read").with_tool_info(said(json!({"readOnlyHint": true})));
    assert_eq!(policy.evaluate(&read).effect(), Effect::Allow);

    // A server that says nothing (or lies) gets the other rules and the default.
    let silent = call("files.delete");
    let decision = policy.evaluate(&silent);
    assert_eq!(decision.effect(), Effect::Allow);
    assert!(decision.rule_ids().is_empty(), "{:?}", decision.rule_ids());
}

#[test]
fn tool_info_travels_with_the_call_but_not_in_its_hash() {
    let plain = call("files.delete");
    let told = plain
        .clone()
        .with_tool_info(json!({"annotations": {"destructiveHint": true}}));
    assert_eq!(plain.args_hash().unwrap(), told.args_hash().unwrap());
    let back: ToolCall = serde_json::from_value(serde_json::to_value(&told).unwrap()).unwrap();
    assert_eq!(back.tool_info(), told.tool_info());
    let old: ToolCall = serde_json::from_value(serde_json::to_value(&plain).unwrap()).unwrap();
    assert_eq!(
        old.tool_info(),
        None,
        "a call filed without it reads back without it"
    );
}
