//! The gateway when something breaks: the upstream killed mid-call, an upstream that
//! writes what is not JSON-RPC, the client gone mid-call. In each, the client hears
//! what happened, a call that may have run is left in doubt and never sent again, and
//! the session goes on. The upstream is an rmcp server (or a scripted one speaking raw
//! JSON-RPC lines) reached by [`Upstream`] over an in-memory pipe.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use approval_gate::trail::{AuditError, AuditQuery, AuditRecord};
use approval_gate::{Approver, Gate, Key, Keyring, Policy, RequestState};
use approval_gate_mcp::rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig,
};
use approval_gate_mcp::rmcp::service::RequestContext;
use approval_gate_mcp::rmcp::{ErrorData as McpError, RoleServer, ServerHandler, ServiceExt as _};
use approval_gate_mcp::{GatedServer, Upstream};
use common::{POLICY, call, connect, gate, pending_id, text};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::sync::Notify;

/// The upstream: `email.send` counts its runs, says it started, and answers only when
/// released; `notes.read` answers at once.
#[derive(Clone, Default)]
struct Slow {
    sent: Arc<AtomicUsize>,
    started: Arc<Notify>,
    release: Arc<Notify>,
}

impl ServerHandler for Slow {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(Vec::new()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        if request.name == "email.send" {
            self.sent.fetch_add(1, Ordering::SeqCst);
            self.started.notify_one();
            self.release.notified().await;
        }
        Ok(CallToolResult::success(vec![ContentBlock::text("done")]).into())
    }
}

const MAIL: fn() -> Value = || json!({"to": "bob@example.com"});

/// `upstream` served on a task of its own, and the gateway's handler for it. Aborting
/// the task ends the upstream's side of the pipe, as a killed process would.
async fn behind_gateway(upstream: Slow) -> (tokio::task::JoinHandle<()>, Upstream) {
    let (server_end, client_end) = tokio::io::duplex(64 * 1024);
    let task = tokio::spawn(async move {
        let running = upstream
            .serve(server_end)
            .await
            .expect("the upstream starts");
        let _ = running.waiting().await;
    });
    let client = ().serve(client_end).await.expect("the upstream initializes");
    let handler = Upstream::new(client.peer().clone());
    // The client's session lives as long as the test's runtime.
    tokio::spawn(async move {
        let _ = client.waiting().await;
    });
    (task, handler)
}

/// The request a pending email waits on, approved by ann.
async fn approved_mail(
    gate: &Gate,
    client: &approval_gate_mcp::rmcp::service::RunningService<
        approval_gate_mcp::rmcp::RoleClient,
        (),
    >,
) -> approval_gate::RequestId {
    let id = pending_id(&client.call_tool(call("email.send", MAIL())).await.unwrap());
    gate.desk()
        .approve(id, &Approver::new("ann"))
        .await
        .unwrap();
    id
}

#[tokio::test(flavor = "current_thread")]
async fn an_upstream_killed_mid_call_leaves_the_call_in_doubt_and_the_session_goes_on() {
    let slow = Slow::default();
    let (upstream_task, upstream) = behind_gateway(slow.clone()).await;
    let gate = gate();
    let client = connect(GatedServer::new(upstream, gate.clone())).await;
    let id = approved_mail(&gate, &client).await;

    let peer = client.peer().clone();
    let in_flight = tokio::spawn(async move { peer.call_tool(call("email.send", MAIL())).await });
    slow.started.notified().await;
    upstream_task.abort();
    let lost = in_flight
        .await
        .unwrap()
        .expect("a tool result, not a JSON-RPC error");

    assert_eq!(lost.is_error, Some(true), "{lost:?}");
    let structured = lost.structured_content.as_ref().unwrap();
    assert_eq!(structured["status"], "in_doubt", "{structured}");
    assert_eq!(structured["request_id"], id.to_string().as_str());
    assert!(text(&lost).contains("may have run"), "{}", text(&lost));
    let request = gate.desk().show(id).await.unwrap();
    assert_eq!(request.stored_state(), RequestState::Executing);
    let trail = gate
        .store()
        .audit_records(&AuditQuery::request(id))
        .await
        .unwrap();
    assert_eq!(trail.last().unwrap().event_name(), "execution_in_doubt");

    // The session goes on: the identical call asks a person again, nothing is re-sent,
    // and a call that needs the upstream gets an error that says it is gone.
    let again = client.call_tool(call("email.send", MAIL())).await.unwrap();
    assert_ne!(pending_id(&again), id);
    let read = client
        .call_tool(call("notes.read", json!({"id": "n1"})))
        .await
        .unwrap_err();
    assert!(read.to_string().contains("gone"), "{read}");
    assert_eq!(slow.sent.load(Ordering::SeqCst), 1);
    client.cancel().await.unwrap();
}

/// Plays an upstream by hand over `pipe`: answers `initialize` and every call with the
/// lines `answer` gives for the call's JSON-RPC id (after a line of garbage each time).
async fn scripted(pipe: tokio::io::DuplexStream, answer: impl Fn(usize, &Value) -> String) {
    let (read, mut write) = tokio::io::split(pipe);
    let mut lines = BufReader::new(read).lines();
    let mut calls = 0;
    while let Ok(Some(line)) = lines.next_line().await {
        let message: Value = serde_json::from_str(&line).unwrap();
        let Some(id) = message.get("id").cloned() else {
            continue; // a notification
        };
        let reply = match message["method"].as_str() {
            Some("initialize") => json!({"jsonrpc": "2.0", "id": id, "result": {
                "protocolVersion": message["params"]["protocolVersion"],
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "scripted", "version": "0"},
            }})
            .to_string(),
            Some("tools/call") => {
                calls += 1;
                answer(calls, &id)
            }
            _ => json!({"jsonrpc": "2.0", "id": id, "result": {}}).to_string(),
        };
        let out = format!("this is not JSON-RPC {{\n{reply}\n");
        if write.write_all(out.as_bytes()).await.is_err() {
            return;
        }
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn an_upstream_writing_garbage_is_skipped_and_a_garbled_answer_is_in_doubt() {
    let (server_end, client_end) = tokio::io::duplex(64 * 1024);
    tokio::spawn(scripted(server_end, |n, id| match n {
        // A good answer after the garbage line.
        1 => json!({"jsonrpc": "2.0", "id": id,
                    "result": {"content": [{"type": "text", "text": "note: buy milk"}]}})
        .to_string(),
        // An answer to the call that is no tool result.
        2 => json!({"jsonrpc": "2.0", "id": id, "result": {"content": "not a list"}}).to_string(),
        _ => json!({"jsonrpc": "2.0", "id": id,
                    "result": {"content": [{"type": "text", "text": "note: call mum"}]}})
        .to_string(),
    }));
    let upstream_client = ().serve(client_end).await.expect("the upstream initializes");
    let gate = gate();
    let server = GatedServer::new(Upstream::new(upstream_client.peer().clone()), gate.clone())
        .with_call_timeout(std::time::Duration::from_secs(10));
    let run_id = server.run_id().to_owned();
    let client = connect(server).await;

    let read = |id: &str| client.call_tool(call("notes.read", json!({"id": id})));
    let first = read("n1").await.unwrap();
    assert_eq!(text(&first), "note: buy milk");
    let garbled = read("n2").await.unwrap();
    assert_eq!(
        garbled.structured_content.as_ref().unwrap()["status"],
        "in_doubt",
        "{garbled:?}"
    );
    let third = read("n3").await.unwrap();
    assert_eq!(text(&third), "note: call mum");

    let trail = gate
        .store()
        .audit_records(&AuditQuery::run(run_id))
        .await
        .unwrap();
    let events: Vec<_> = trail.iter().map(|r| r.event_name()).collect();
    assert_eq!(
        events,
        [
            "allow",
            "executed",
            "allow",
            "execution_in_doubt",
            "allow",
            "executed"
        ]
    );
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn a_call_whose_client_went_away_still_finishes_and_is_recorded_once() {
    let slow = Slow::default();
    let (_upstream_task, upstream) = behind_gateway(slow.clone()).await;
    // The trail's records, as the gate writes them.
    let (written, mut records) = tokio::sync::mpsc::unbounded_channel::<String>();
    let gate = Gate::builder(
        Policy::from_yaml_str(POLICY).unwrap(),
        Keyring::new(Key::generate("k1").unwrap()),
    )
    .audit(move |record: &AuditRecord| {
        let _ = written.send(record.event_name().to_owned());
        Ok::<(), AuditError>(())
    })
    .build();
    let client = connect(GatedServer::new(upstream, gate.clone())).await;
    let id = approved_mail(&gate, &client).await;

    let peer = client.peer().clone();
    let in_flight = tokio::spawn(async move { peer.call_tool(call("email.send", MAIL())).await });
    slow.started.notified().await;
    client.cancel().await.unwrap();
    assert!(in_flight.await.unwrap().is_err(), "the client is gone");
    slow.release.notify_one();
    while let Some(event) = records.recv().await {
        if event == "executed" {
            break;
        }
    }
    let request = gate.desk().show(id).await.unwrap();
    assert_eq!(request.stored_state(), RequestState::Executed);
    assert_eq!(slow.sent.load(Ordering::SeqCst), 1);
}
