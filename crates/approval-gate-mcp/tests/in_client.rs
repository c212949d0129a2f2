//! In-client approval (`InClientApproval`) in one process: an rmcp client that declares
//! elicitation plays the person at the client, on the handshake protocol (2025-11-25),
//! in front of a `GatedServer` whose inner handler writes notes. The Python SDK's test
//! (the command's `tests/mcp.rs`) covers both protocols; this one covers what the desk
//! refuses and clients that cannot ask.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use approval_gate::{Approver, RequestState};
use approval_gate_mcp::rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ClientCapabilities, ClientConfig,
    ContentBlock, ElicitRequestParams, ElicitResult, ElicitationAction, Implementation,
    ProtocolVersion, ServerCapabilities, ServerConfig,
};
use approval_gate_mcp::rmcp::service::{RequestContext, RunningService};
use approval_gate_mcp::rmcp::{
    ClientHandler, ErrorData as McpError, RoleClient, RoleServer, ServerHandler, ServiceExt as _,
};
use approval_gate_mcp::{GatedServer, InClientApproval};
use common::{call, gate, text};
use serde_json::json;

/// The inner handler: `notes.write` counts its runs.
#[derive(Clone, Default)]
struct Notebook {
    written: Arc<AtomicUsize>,
}

impl ServerHandler for Notebook {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn call_tool(
        &self,
        _request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        self.written.fetch_add(1, Ordering::SeqCst);
        Ok(CallToolResult::success(vec![ContentBlock::text("noted")]).into())
    }
}

/// The person at the client: gives `answer` to every question, and keeps the questions.
#[derive(Clone)]
struct Person {
    /// `None`: never answers.
    answer: Option<ElicitResult>,
    can_be_asked: bool,
    asked: Arc<Mutex<Vec<String>>>,
}

impl ClientHandler for Person {
    fn get_info(&self) -> ClientConfig {
        let capabilities: ClientCapabilities = if self.can_be_asked {
            serde_json::from_value(json!({"elicitation": {}})).unwrap()
        } else {
            ClientCapabilities::default()
        };
        ClientConfig::new(capabilities, Implementation::new("person", "0"))
            .with_protocol_version(ProtocolVersion::V_2025_11_25)
    }

    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, McpError> {
        if let ElicitRequestParams::FormElicitationParams { message, .. } = request {
            self.asked.lock().unwrap().push(message);
        }
        match &self.answer {
            Some(answer) => Ok(answer.clone()),
            None => std::future::pending().await,
        }
    }
}

fn approve() -> ElicitResult {
    ElicitResult::new(ElicitationAction::Accept).with_content(json!({"decision": "approve"}))
}

/// A client (`person`) of a gateway whose in-client approver is `approver`, for the
/// calls of agent-alice.
async fn session(
    person: Person,
    approver: Approver,
    call_timeout: std::time::Duration,
) -> (
    RunningService<RoleClient, Person>,
    Notebook,
    approval_gate::Gate,
) {
    let notebook = Notebook::default();
    let gate = gate();
    let server = GatedServer::new(notebook.clone(), gate.clone())
        .with_requester("agent-alice")
        .with_in_client_approval(InClientApproval::new(approver).tier("notes"))
        .with_call_timeout(call_timeout);
    let (server_end, client_end) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        let running = server.serve(server_end).await.expect("the server starts");
        let _ = running.waiting().await;
    });
    let client = person
        .serve(client_end)
        .await
        .expect("the client initializes");
    (client, notebook, gate)
}

fn person(answer: ElicitResult, can_be_asked: bool) -> Person {
    Person {
        answer: Some(answer),
        can_be_asked,
        asked: Arc::default(),
    }
}

const LIMIT: std::time::Duration = std::time::Duration::from_secs(50);

fn note() -> CallToolRequestParams {
    call("notes.write", json!({"id": "n1", "text": "call mum"}))
}

#[tokio::test(flavor = "current_thread")]
async fn an_approval_in_the_client_runs_the_call_once() {
    let alice = person(approve(), true);
    let (client, notebook, _gate) = session(alice.clone(), Approver::new("alice"), LIMIT).await;
    let ran = client.call_tool(note()).await.unwrap();
    assert_eq!(ran.is_error, Some(false), "{ran:?}");
    assert_eq!(text(&ran), "noted");
    assert_eq!(notebook.written.load(Ordering::SeqCst), 1);
    let asked = alice.asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 1);
    assert!(asked[0].contains("Asked by: agent-alice"), "{}", asked[0]);
    // The next identical call is asked again: one approval, one run.
    client.call_tool(note()).await.unwrap();
    assert_eq!(alice.asked.lock().unwrap().len(), 2);
    assert_eq!(notebook.written.load(Ordering::SeqCst), 2);
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn the_requester_cannot_approve_their_own_call_in_the_client() {
    let agent = person(approve(), true);
    let (client, notebook, gate) = session(agent, Approver::new("agent-alice"), LIMIT).await;
    let result = client.call_tool(note()).await.unwrap();
    assert_eq!(result.is_error, Some(true), "{result:?}");
    let structured = result.structured_content.as_ref().unwrap();
    assert_eq!(structured["status"], "approval_pending", "{structured}");
    assert!(
        structured["in_client_refused"]
            .as_str()
            .unwrap()
            .contains("agent-alice"),
        "{structured}"
    );
    // Nothing ran, and the request waits for someone else.
    assert_eq!(notebook.written.load(Ordering::SeqCst), 0);
    let id = structured["request_id"].as_str().unwrap().parse().unwrap();
    let request = gate.desk().show(id).await.unwrap();
    assert_eq!(request.stored_state(), RequestState::Pending);
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn a_cancelled_question_or_a_client_that_cannot_ask_leaves_the_call_pending() {
    for (answer, can_be_asked) in [
        (ElicitResult::new(ElicitationAction::Cancel), true),
        (approve(), false),
    ] {
        let someone = person(answer, can_be_asked);
        let (client, notebook, _gate) =
            session(someone.clone(), Approver::new("alice"), LIMIT).await;
        let result = client.call_tool(note()).await.unwrap();
        assert_eq!(
            result.structured_content.as_ref().unwrap()["status"],
            "approval_pending",
            "{result:?}"
        );
        assert_eq!(notebook.written.load(Ordering::SeqCst), 0);
        let asked = someone.asked.lock().unwrap().len();
        assert_eq!(asked, usize::from(can_be_asked));
        client.cancel().await.unwrap();
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_person_who_does_not_answer_is_not_waited_for_past_the_call_timeout() {
    let silent = Person {
        answer: None,
        can_be_asked: true,
        asked: Arc::default(),
    };
    let limit = std::time::Duration::from_secs(10);
    let (client, notebook, _gate) = session(silent.clone(), Approver::new("alice"), limit).await;
    // Bounded on the test's side too, so a gateway that waits forever fails the test.
    let result = tokio::time::timeout(limit * 3, client.call_tool(note()))
        .await
        .expect("the gateway answers by its call timeout")
        .unwrap();
    // Nothing ran: the call waits for approval, not in doubt.
    assert_eq!(
        result.structured_content.as_ref().unwrap()["status"],
        "approval_pending",
        "{result:?}"
    );
    assert_eq!(silent.asked.lock().unwrap().len(), 1);
    assert_eq!(notebook.written.load(Ordering::SeqCst), 0);
    client.cancel().await.unwrap();
}
