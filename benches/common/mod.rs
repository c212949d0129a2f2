//! What the benches share: arguments of known sizes, a policy and gates.
#![allow(dead_code)]

use approval_gate::{Gate, Key, Keyring, Policy, canonical_json};
use serde_json::{Value, json};

/// About 1 KiB of arguments in canonical form.
pub fn args_1kib() -> Value {
    json!({
        "to": "bob@example.com",
        "cc": ["carol@example.com", "dave@example.com"],
        "subject": "Your refund for order 12345 has been processed",
        "body": "x".repeat(700),
        "amount": 42.5,
        "metadata": {"order_id": 12345, "priority": "high", "tags": ["refund", "vip"]}
    })
}

/// About 64 KiB of arguments in canonical form: 64 items of about 1 KiB, mixed types.
pub fn args_64kib() -> Value {
    let items: Vec<Value> = (0..64)
        .map(|i| {
            json!({
                "id": i,
                "sku": format!("SKU-{i:06}"),
                "price": 10.25 + f64::from(i),
                "note": "y".repeat(880),
                "flags": [true, false, null],
                "dims": {"w": i * 3, "h": i * 5, "unit": "mm"}
            })
        })
        .collect();
    let v = json!({"order": 12345, "customer": "bob@example.com", "items": items});
    debug_assert!(canonical_json(&v).unwrap().len() > 60_000);
    v
}

/// A policy with a read that is allowed and a send that needs approval.
pub fn policy() -> Policy {
    Policy::from_yaml_str(
        r#"
approvals:
  required_for: [email.send]
  ttl_seconds: 3600
  approval_ttl_seconds: 3600
rules:
  - id: reads
    tools: ["*.read", crm.lookup]
    effect: allow
"#,
    )
    .unwrap()
}

/// The signing keys.
pub fn keys() -> Keyring {
    Keyring::new(Key::new("bench", [1u8; 32]).unwrap())
}

/// A gate on the builder's defaults but for the policy and keys.
pub fn gate_builder() -> approval_gate::GateBuilder {
    Gate::builder(policy(), keys())
}
