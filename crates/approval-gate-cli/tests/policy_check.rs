//! `approval-gate policy check` reports every error of a policy file, not only the first.

mod common;

use common::{Scratch, run};

const BROKEN: &str = "\
approvals:
  ttl_seconds: soon
rules:
  - id: a
    tool: db.write
    effect: approval_required
    tier: critcal
  - id: b
    tool: db.read
    effect: allow
  - id: b
    tool: db.drop
    effect: explode
";

#[test]
fn every_error_of_a_file_is_one_line_with_its_place() {
    let scratch = Scratch::new("check-all");
    let bad = scratch.write("bad.yaml", BROKEN);
    let file = bad.display().to_string();
    let out = run(&["policy", "check", &file]).code(5);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", out.stdout);
    assert!(lines[0].starts_with(&format!("{file}:2:")), "{}", lines[0]);
    assert!(lines[0].contains("approvals.ttl_seconds"), "{}", lines[0]);
    assert!(lines[1].starts_with(&format!("{file}:7:")), "{}", lines[1]);
    assert!(lines[1].contains("rules[0].tier"), "{}", lines[1]);
    // The third rule's first error; the rest of that rule is set aside.
    assert!(lines[2].starts_with(&format!("{file}:11:")), "{}", lines[2]);
    assert!(
        lines[2].contains("rules[2].id: duplicate rule id `b`, already used by rules[1]"),
        "{}",
        lines[2]
    );
}

#[test]
fn json_gives_one_object_per_error() {
    let scratch = Scratch::new("check-json");
    let bad = scratch.write("bad.yaml", BROKEN);
    let good = scratch.write("good.yaml", "approvals:\n  required_for: [email.send]\n");
    let out = run(&[
        "--format",
        "json",
        "policy",
        "check",
        good.to_str().unwrap(),
        bad.to_str().unwrap(),
    ])
    .code(5);
    let objects = out.json_lines();
    let fields: Vec<(bool, Option<&str>, Option<u64>)> = objects
        .iter()
        .map(|o| {
            (
                o["ok"].as_bool().unwrap(),
                o["field"].as_str(),
                o["line"].as_u64(),
            )
        })
        .collect();
    assert_eq!(
        fields,
        [
            (true, None, None),
            (false, Some("approvals.ttl_seconds"), Some(2)),
            (false, Some("rules[0].tier"), Some(7)),
            (false, Some("rules[2].id"), Some(11)),
        ]
    );
    assert!(
        out.stderr.contains("1 of 2 policy files did not load"),
        "{}",
        out.stderr
    );
}
