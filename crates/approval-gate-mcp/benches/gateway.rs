//! What the gateway adds to an allowed call: one MCP client calls a read through
//! `GatedServer` and, beside it, straight to the same server, each over an in-memory
//! duplex pipe (no process, no sockets), so the difference is the gate's: the policy,
//! the store's `allow` and result records, the executor hop.
//!
//! ```text
//! cargo bench -p approval-gate-mcp --bench gateway
//! ```
//!
//! Stores: `MemoryStore`, and `SqliteStore` on a file under the target directory's
//! `tmp` (the default `synchronous = FULL`: two commits per allowed call), deleted at the
//! end. In criterion's test mode (`-- --test`, as CI runs it) each call is checked once.

use std::path::PathBuf;

use approval_gate::{Gate, Key, Keyring, Policy, SqliteStore};
use approval_gate_mcp::GatedServer;
use approval_gate_mcp::rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use approval_gate_mcp::rmcp::service::{RequestContext, RunningService};
use approval_gate_mcp::rmcp::{
    ErrorData as McpError, RoleClient, RoleServer, ServerHandler, ServiceExt as _,
};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};

const POLICY: &str = "\
rules:
  - id: reads
    tools: ['*.read']
    effect: allow
";

/// The server: one read, answered at once.
#[derive(Clone)]
struct Notes;

impl ServerHandler for Notes {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let Value::Object(schema) = json!({"type": "object"}) else {
            unreachable!()
        };
        Ok(ListToolsResult::with_all_items(vec![Tool::new(
            "notes.read",
            "reads a note",
            schema,
        )]))
    }

    async fn call_tool(
        &self,
        _request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        Ok(CallToolResult::success(vec![ContentBlock::text("note: buy milk")]).into())
    }
}

/// A client connected to `server`, which runs on a task of its own.
async fn connect<S: ServerHandler>(server: S) -> RunningService<RoleClient, ()> {
    let (server_end, client_end) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        let running = server.serve(server_end).await.expect("the server starts");
        let _ = running.waiting().await;
    });
    ().serve(client_end).await.expect("the client initializes")
}

fn read() -> CallToolRequestParams {
    let Value::Object(args) = json!({"id": "n1"}) else {
        unreachable!()
    };
    CallToolRequestParams::new("notes.read").with_arguments(args)
}

/// One call, checked: the note comes back.
async fn call(client: &RunningService<RoleClient, ()>) {
    let result = client
        .call_tool(read())
        .await
        .expect("the call is answered");
    assert_eq!(result.is_error, Some(false), "{result:?}");
}

fn gate() -> approval_gate::GateBuilder {
    Gate::builder(
        Policy::from_yaml_str(POLICY).unwrap(),
        Keyring::new(Key::new("k1", [9u8; 32]).unwrap()),
    )
}

/// A fresh SQLite file under the target directory.
fn sqlite_path() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("approval-gate-mcp-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("approvals.db")
}

fn gateway(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let path = sqlite_path();
    let (direct, memory, sqlite) = rt.block_on(async {
        let store = SqliteStore::connect(path.to_str().unwrap()).await.unwrap();
        let sqlite = gate().store(store).build();
        (
            connect(Notes).await,
            connect(GatedServer::new(Notes, gate().build())).await,
            connect(GatedServer::new(Notes, sqlite)).await,
        )
    });
    let mut group = c.benchmark_group("gateway/allowed_call");
    for (name, client) in [
        ("direct", &direct),
        ("gated_memory", &memory),
        ("gated_sqlite_full", &sqlite),
    ] {
        group.bench_function(name, |b| b.to_async(&rt).iter(|| call(client)));
    }
    group.finish();
    rt.block_on(async {
        for client in [direct, memory, sqlite] {
            let _ = client.cancel().await;
        }
    });
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

criterion_group!(benches, gateway);
criterion_main!(benches);
