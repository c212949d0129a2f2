//! `GatedServer` as an MCP client meets it: an rmcp client and server in one process,
//! over an in-memory duplex pipe, with a toy inner handler whose `email.send` counts
//! its runs.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use approval_gate::trail::{AuditError, AuditRecord};
use approval_gate::{Approver, Gate, Key, Keyring, Policy, RequestState};
use approval_gate_mcp::GatedServer;
use approval_gate_mcp::rmcp::model::{
    CallToolRequestParams, CallToolResult, ContentBlock, ErrorCode, JsonObject, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool, ToolAnnotations,
};
use approval_gate_mcp::rmcp::service::RequestContext;
use approval_gate_mcp::rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use serde_json::{Value, json};

mod common;

use common::{call, connect, gate, pending_id, text};

/// The inner handler: `notes.read` reads, `email.send` sends (counted, with the
/// arguments it ran with kept), `db.drop` would drop.
#[derive(Clone, Default)]
struct Toy {
    sent: Arc<AtomicUsize>,
    sent_with: Arc<Mutex<Vec<JsonObject>>>,
    /// While set, `notes.read` and `email.send` (after counting) never answer.
    hang: Arc<AtomicBool>,
}

fn tool(name: &'static str) -> Tool {
    let schema = json!({"type": "object"});
    let Value::Object(schema) = schema else {
        unreachable!()
    };
    Tool::new(name, format!("the toy's {name}"), schema)
}

fn text_result(text: impl Into<String>) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(text)])
}

impl ServerHandler for Toy {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(vec![
            tool("notes.read"),
            tool("email.send"),
            tool("db.drop"),
            tool("files.wipe").with_annotations(ToolAnnotations::new().destructive(true)),
        ]))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<approval_gate_mcp::rmcp::model::CallToolResponse, McpError> {
        let args = request.arguments.unwrap_or_default();
        let hang = || async {
            if self.hang.load(Ordering::SeqCst) {
                std::future::pending::<()>().await;
            }
        };
        let result = match request.name.as_ref() {
            "notes.read" if self.hang.load(Ordering::SeqCst) => {
                hang().await;
                unreachable!()
            }
            "notes.read" => match args.get("id").and_then(Value::as_str) {
                Some("missing") => CallToolResult::error(vec![ContentBlock::text("no such note")]),
                _ => text_result("note: buy milk"),
            },
            "email.send" => {
                self.sent.fetch_add(1, Ordering::SeqCst);
                hang().await;
                let to = args.get("to").cloned().unwrap_or(Value::Null);
                self.sent_with.lock().unwrap().push(args);
                text_result(format!("sent to {to}"))
            }
            "db.drop" => text_result("dropped"),
            "files.wipe" => text_result("wiped"),
            other => return Err(McpError::invalid_params(format!("no tool {other}"), None)),
        };
        Ok(result.into())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn tools_list_passes_through() {
    let client = connect(GatedServer::new(Toy::default(), gate())).await;
    let names: Vec<String> = client
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.into_owned())
        .collect();
    assert_eq!(names, ["notes.read", "email.send", "db.drop", "files.wipe"]);
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn a_write_waits_for_approval_then_runs_once_then_waits_again() {
    let toy = Toy::default();
    let gate = gate();
    let server = GatedServer::new(toy.clone(), gate.clone())
        .with_requester("agent-alice")
        .with_tenant("acme")
        .with_console_url("https://gate.example.com/");
    let run_id = server.run_id().to_owned();
    assert!(run_id.starts_with("mcp-"), "{run_id}");
    let client = connect(server).await;

    // A read passes.
    let read = client
        .call_tool(call("notes.read", json!({"id": "n1"})))
        .await
        .unwrap();
    assert_eq!(read.is_error, Some(false));
    assert_eq!(text(&read), "note: buy milk");

    // A write waits: nothing ran.
    let mail = json!({"to": "bob@example.com", "subject": "Hi"});
    let first = client
        .call_tool(call("email.send", mail.clone()))
        .await
        .unwrap();
    let id = pending_id(&first);
    assert!(text(&first).contains("again with the same arguments"));
    let structured = first.structured_content.as_ref().unwrap();
    assert_eq!(
        structured["console_url"],
        format!("https://gate.example.com/requests/{id}").as_str()
    );
    assert!(structured["expires_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(toy.sent.load(Ordering::SeqCst), 0);

    // The request is filed as this server's run, requester and tenant.
    let request = gate.desk().show(id).await.unwrap();
    assert_eq!(request.call().run_id(), run_id);
    assert_eq!(request.call().requester(), Some("agent-alice"));
    assert_eq!(request.call().tenant(), Some("acme"));

    // Asking again before anyone decided joins the same request; still nothing ran.
    let again = client
        .call_tool(call("email.send", mail.clone()))
        .await
        .unwrap();
    assert_eq!(pending_id(&again), id);
    assert_eq!(toy.sent.load(Ordering::SeqCst), 0);

    // A person approves; the identical call runs, once.
    let ann = Approver::new("ann").with_tenant("acme");
    gate.desk().approve(id, &ann).await.unwrap();
    let ran = client
        .call_tool(call("email.send", mail.clone()))
        .await
        .unwrap();
    assert_eq!(ran.is_error, Some(false), "{ran:?}");
    assert_eq!(text(&ran), "sent to \"bob@example.com\"");
    assert_eq!(toy.sent.load(Ordering::SeqCst), 1);
    let request = gate.desk().show(id).await.unwrap();
    assert_eq!(request.state_at(gate.now()), RequestState::Executed);

    // The approval is used: the next identical call waits again, on a new request.
    let next = client.call_tool(call("email.send", mail)).await.unwrap();
    let next_id = pending_id(&next);
    assert_ne!(next_id, id);
    assert_eq!(toy.sent.load(Ordering::SeqCst), 1);
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn an_approved_edit_is_what_runs() {
    let toy = Toy::default();
    let gate = gate();
    let client = connect(GatedServer::new(toy.clone(), gate.clone())).await;
    let mail = json!({"to": "everyone@example.com", "subject": "Hi"});
    let pending = client
        .call_tool(call("email.send", mail.clone()))
        .await
        .unwrap();
    let id = pending_id(&pending);
    gate.desk()
        .approve_with_edits(
            id,
            &Approver::new("ann"),
            json!({"to": "bob@example.com", "subject": "Hi"}),
        )
        .await
        .unwrap();
    // The model calls again with the arguments it proposed; the approved ones run.
    let ran = client.call_tool(call("email.send", mail)).await.unwrap();
    assert_eq!(ran.is_error, Some(false), "{ran:?}");
    let sent_with = toy.sent_with.lock().unwrap().clone();
    assert_eq!(sent_with.len(), 1);
    assert_eq!(sent_with[0]["to"], "bob@example.com");
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn a_policy_denial_says_why_and_nothing_runs() {
    let client = connect(GatedServer::new(Toy::default(), gate())).await;
    let denied = client
        .call_tool(call("db.drop", json!({"table": "users"})))
        .await
        .unwrap();
    assert_eq!(denied.is_error, Some(true));
    assert!(
        text(&denied).contains("dropping tables is not allowed, archive the table instead"),
        "{}",
        text(&denied)
    );
    let structured = denied.structured_content.unwrap();
    assert_eq!(structured["status"], "stopped");
    assert_eq!(structured["reason"], "policy_denied");

    // A tool no rule names is denied too (the policy's default), with a reason.
    let unknown = client
        .call_tool(call("shell.exec", json!({"cmd": "rm -rf /"})))
        .await
        .unwrap();
    assert_eq!(unknown.is_error, Some(true));
    assert!(text(&unknown).contains("the policy denies this call"));
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn a_call_without_arguments_is_gated_as_an_empty_object() {
    let client = connect(GatedServer::new(Toy::default(), gate())).await;
    let read = client
        .call_tool(CallToolRequestParams::new("notes.read"))
        .await
        .unwrap();
    assert_eq!(read.is_error, Some(false), "{read:?}");
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn the_inner_handlers_failures_come_back_unchanged() {
    let gate = gate();
    let client = connect(GatedServer::new(Toy::default(), gate.clone())).await;
    let failed = client
        .call_tool(call("notes.read", json!({"id": "missing"})))
        .await
        .unwrap();
    assert_eq!(failed.is_error, Some(true));
    assert_eq!(text(&failed), "no such note");
    assert!(failed.structured_content.is_none());

    // A JSON-RPC error of the inner handler reaches the client as such.
    let policy = "policy:\n  default: allow\n";
    gate.set_policy(Policy::from_yaml_str(policy).unwrap());
    let err = client
        .call_tool(call("nope.tool", json!({})))
        .await
        .unwrap_err();
    let approval_gate_mcp::rmcp::ServiceError::McpError(err) = err else {
        panic!("expected the inner handler's error, got {err:?}")
    };
    assert_eq!(err.code, ErrorCode::INVALID_PARAMS);
    assert_eq!(err.message, "no tool nope.tool");
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn when_the_gate_fails_nothing_runs() {
    let toy = Toy::default();
    let policy = "policy:\n  default: allow\n";
    let failing = |_: &AuditRecord| Err(AuditError::backend("the audit disk is full"));
    let gate = Gate::builder(
        Policy::from_yaml_str(policy).unwrap(),
        Keyring::new(Key::generate("k1").unwrap()),
    )
    .audit(failing)
    .build();
    let client = connect(GatedServer::new(toy.clone(), gate)).await;
    let err = client
        .call_tool(call("email.send", json!({"to": "bob@example.com"})))
        .await
        .unwrap_err();
    let approval_gate_mcp::rmcp::ServiceError::McpError(err) = err else {
        panic!("expected a JSON-RPC error, got {err:?}")
    };
    assert_eq!(err.code, ErrorCode::INTERNAL_ERROR);
    assert!(err.message.contains("did not run"), "{}", err.message);
    assert_eq!(toy.sent.load(Ordering::SeqCst), 0);
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn a_configured_run_id_is_the_calls_run() {
    let gate = gate();
    let client = connect(GatedServer::new(Toy::default(), gate.clone()).with_run_id("run-7")).await;
    let pending = client
        .call_tool(call("email.send", json!({"to": "bob@example.com"})))
        .await
        .unwrap();
    let id = pending_id(&pending);
    assert_eq!(gate.desk().show(id).await.unwrap().call().run_id(), "run-7");
    assert!(
        pending
            .structured_content
            .unwrap()
            .get("console_url")
            .is_none()
    );
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn a_persons_denial_reaches_the_model_once() {
    let toy = Toy::default();
    let gate = gate();
    let client = connect(GatedServer::new(toy.clone(), gate.clone()).with_requester("agent")).await;
    let mail = json!({"to": "everyone@example.com", "subject": "Hi"});
    let first = client
        .call_tool(call("email.send", mail.clone()))
        .await
        .unwrap();
    let id = pending_id(&first);
    gate.desk()
        .deny(
            id,
            &Approver::new("ann"),
            Some("write to the team list instead"),
        )
        .await
        .unwrap();

    // The next identical call is told who denied it and why; nothing ran.
    let told = client
        .call_tool(call("email.send", mail.clone()))
        .await
        .unwrap();
    assert_eq!(told.is_error, Some(true));
    assert!(
        text(&told).contains("ann denied this call: write to the team list instead"),
        "{}",
        text(&told)
    );
    let structured = told.structured_content.as_ref().unwrap();
    assert_eq!(structured["reason"], "approval_denied");
    assert_eq!(structured["request_id"], id.to_string().as_str());

    // Told once: calling again anyway files a new request for a person to decide.
    let again = client.call_tool(call("email.send", mail)).await.unwrap();
    assert_ne!(pending_id(&again), id);
    assert_eq!(toy.sent.load(Ordering::SeqCst), 0);

    // Other arguments were never denied: they wait for a person as usual.
    let other = client
        .call_tool(call("email.send", json!({"to": "team@example.com"})))
        .await
        .unwrap();
    pending_id(&other);
    client.cancel().await.unwrap();
}

/// A tool that declares itself destructive needs approval by the policy's one rule on
/// `tool_info.annotations.destructiveHint`, whatever its name. The annotations come
/// from `tools/list`: before the client listed the tools, nothing is known of them, and
/// the call gets the policy's default (deny).
#[tokio::test(flavor = "current_thread")]
async fn the_annotations_of_listed_tools_reach_the_policy() {
    let toy = Toy::default();
    let client = connect(GatedServer::new(toy, gate()).with_server_name("toy")).await;
    let unlisted = client
        .call_tool(call("files.wipe", json!({"path": "/"})))
        .await
        .unwrap();
    assert_eq!(unlisted.is_error, Some(true), "{unlisted:?}");
    assert_eq!(
        unlisted.structured_content.as_ref().unwrap()["status"],
        "stopped"
    );

    client.list_all_tools().await.unwrap();
    let listed = client
        .call_tool(call("files.wipe", json!({"path": "/"})))
        .await
        .unwrap();
    pending_id(&listed);
}

/// A tool that does not answer: after the call timeout the client hears that the call
/// is in doubt, an approved request stays `executing` and is never sent again, and an
/// allowed call keeps its `allow` with no result. Time is tokio's, paused: nothing
/// waits for real.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_tool_that_does_not_answer_is_left_in_doubt_and_never_sent_again() {
    let toy = Toy::default();
    let gate = gate();
    let limit = std::time::Duration::from_secs(10);
    let server = GatedServer::new(toy.clone(), gate.clone()).with_call_timeout(limit);
    let run_id = server.run_id().to_owned();
    let client = connect(server).await;

    let mail = json!({"to": "bob@example.com"});
    let id = pending_id(
        &client
            .call_tool(call("email.send", mail.clone()))
            .await
            .unwrap(),
    );
    gate.desk()
        .approve(id, &Approver::new("ann"))
        .await
        .unwrap();
    toy.hang.store(true, Ordering::SeqCst);
    // Bounded on the test's side too, so a gateway without the timeout fails the test
    // instead of hanging it.
    let bounded = |future| tokio::time::timeout(limit * 3, future);
    let stuck = bounded(client.call_tool(call("email.send", mail.clone())))
        .await
        .expect("the gateway answers by its call timeout")
        .unwrap();
    assert_eq!(stuck.is_error, Some(true), "{stuck:?}");
    assert_eq!(
        stuck.structured_content.as_ref().unwrap()["status"],
        "in_doubt"
    );
    assert!(text(&stuck).contains("may have run"), "{}", text(&stuck));
    assert_eq!(toy.sent.load(Ordering::SeqCst), 1);
    let request = gate.desk().show(id).await.unwrap();
    assert_eq!(request.stored_state(), RequestState::Executing);

    // The same call again asks a person again; the stuck one is not re-sent.
    let again = client.call_tool(call("email.send", mail)).await.unwrap();
    assert_ne!(pending_id(&again), id);
    assert_eq!(toy.sent.load(Ordering::SeqCst), 1);

    // An allowed read that hangs: in doubt too, its `allow` on the trail, no result.
    let read = bounded(client.call_tool(call("notes.read", json!({"id": "n1"}))))
        .await
        .expect("the gateway answers by its call timeout")
        .unwrap();
    assert_eq!(
        read.structured_content.as_ref().unwrap()["status"],
        "in_doubt"
    );
    let trail = gate
        .store()
        .audit_records(&approval_gate::trail::AuditQuery::run(run_id))
        .await
        .unwrap();
    let last = trail.last().unwrap();
    assert_eq!(
        (last.tool.as_str(), last.event_name()),
        ("notes.read", "allow")
    );
    client.cancel().await.unwrap();
}
