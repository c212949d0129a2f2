//! What the gateway's tests share: the gate, a client connected to a server in this
//! process, and readers of a call's result.

#![allow(dead_code)]

use approval_gate::{Gate, Key, Keyring, Policy, RequestId};
use approval_gate_mcp::rmcp::model::{CallToolRequestParams, CallToolResult};
use approval_gate_mcp::rmcp::service::RunningService;
use approval_gate_mcp::rmcp::{RoleClient, ServerHandler, ServiceExt as _};
use serde_json::Value;

/// The policy of the gateway's tests (the command's tests read it too).
pub const POLICY: &str = include_str!("../policy.yaml");

/// A gate with the tests' policy, a fresh key and the memory store.
pub fn gate() -> Gate {
    Gate::builder(
        Policy::from_yaml_str(POLICY).unwrap(),
        Keyring::new(Key::generate("k1").unwrap()),
    )
    .build()
}

/// A client connected to `server`, which runs on a task of its own.
pub async fn connect<S: ServerHandler>(server: S) -> RunningService<RoleClient, ()> {
    let (server_end, client_end) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        let running = server.serve(server_end).await.expect("the server starts");
        let _ = running.waiting().await;
    });
    ().serve(client_end).await.expect("the client initializes")
}

/// A `tools/call` of `name` with the object `args`.
pub fn call(name: &'static str, args: Value) -> CallToolRequestParams {
    let Value::Object(args) = args else {
        panic!("arguments are an object")
    };
    CallToolRequestParams::new(name).with_arguments(args)
}

/// The first text of a result.
pub fn text(result: &CallToolResult) -> &str {
    result.content[0].as_text().expect("a text").text.as_str()
}

/// The request id of a pending result.
pub fn pending_id(result: &CallToolResult) -> RequestId {
    assert_eq!(result.is_error, Some(true), "{result:?}");
    let structured = result
        .structured_content
        .as_ref()
        .expect("structured content");
    assert_eq!(structured["status"], "approval_pending", "{structured}");
    structured["request_id"].as_str().unwrap().parse().unwrap()
}
