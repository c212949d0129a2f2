//! `Gated::call_or_resume`: a host that keeps no request ids calls again with the same
//! arguments, and an approval given meanwhile runs, once.

use std::sync::{Arc, Mutex};

use approval_gate::{
    Approver, Execution, Gate, GateOutcome, Gated, Key, Keyring, ManualClock, Policy, RequestId,
    ToolCall, ToolExecutor,
};
use serde_json::{Value, json};

const POLICY: &str = "\
approvals:
  required_for: [email.send]
  ttl_seconds: 300
";

struct World {
    gate: Gate,
    ran: Arc<Mutex<Vec<Execution>>>,
}

impl World {
    fn new() -> Self {
        let gate = Gate::builder(
            Policy::from_yaml_str(POLICY).unwrap(),
            Keyring::new(Key::new("k1", [4u8; 32]).unwrap()),
        )
        .clock(ManualClock::default())
        .build();
        World {
            gate,
            ran: Arc::default(),
        }
    }

    fn tool(&self) -> Gated<impl ToolExecutor<Output = (), Error = std::io::Error> + use<>> {
        let ran = self.ran.clone();
        self.gate.wrap(move |exec: Execution| {
            let ran = ran.clone();
            async move {
                ran.lock().unwrap().push(exec);
                Ok::<(), std::io::Error>(())
            }
        })
    }

    async fn again(&self, call: ToolCall) -> GateOutcome<(), std::io::Error> {
        self.tool().call_or_resume(call).await.unwrap()
    }

    fn runs(&self) -> Vec<(Option<RequestId>, Value)> {
        self.ran
            .lock()
            .unwrap()
            .iter()
            .map(|e| (e.idempotency_key(), e.args().clone()))
            .collect()
    }
}

/// The model's call: each attempt gets a call id of its own, as MCP's requests do.
fn mail(call_id: &str) -> ToolCall {
    ToolCall::new(
        "session-1",
        call_id,
        "email.send",
        json!({"to": "bob@example.com"}),
    )
    .with_requester("agent")
    .with_tenant("acme")
}

fn ann() -> Approver {
    Approver::new("ann").with_tenant("acme")
}

fn pending(outcome: GateOutcome<(), std::io::Error>) -> (RequestId, bool) {
    match outcome {
        GateOutcome::Pending(p) => (p.request_id, p.created),
        other => panic!("expected pending, got {}", other.name()),
    }
}

#[tokio::test]
async fn an_approval_runs_once_for_the_identical_call_and_the_next_asks_again() {
    let w = World::new();
    let (id, created) = pending(w.again(mail("c1")).await);
    assert!(created);
    let (joined, created) = pending(w.again(mail("c2")).await);
    assert_eq!((joined, created), (id, false), "waiting: the same request");
    assert!(w.runs().is_empty(), "nothing ran before the approval");

    w.gate.desk().approve(id, &ann()).await.unwrap();
    match w.again(mail("c3")).await {
        GateOutcome::Executed(done) => assert_eq!(done.request_id, Some(id)),
        other => panic!("expected executed, got {}", other.name()),
    }
    assert_eq!(w.runs(), [(Some(id), json!({"to": "bob@example.com"}))]);

    let (next, created) = pending(w.again(mail("c4")).await);
    assert!(
        created && next != id,
        "the approval was used: a new request"
    );
    assert_eq!(w.runs().len(), 1, "the tool ran once");
}

#[tokio::test]
async fn the_approved_edits_run_and_only_for_the_same_caller_and_arguments() {
    let w = World::new();
    let (id, _) = pending(w.again(mail("c1")).await);
    let edited = json!({"to": "bob@example.com", "cc": "audit@example.com"});
    w.gate
        .desk()
        .approve_with_edits(id, &ann(), edited.clone())
        .await
        .unwrap();

    // Other arguments, another requester, another tenant: not the approved call.
    let other_args = mail("c2").with_args(json!({"to": "eve@example.com"}));
    let other_requester = mail("c3").with_requester("someone-else");
    for call in [other_args, other_requester] {
        let (other, created) = pending(w.again(call).await);
        assert!(created && other != id);
    }
    let other_tenant = ToolCall::new(
        "session-1",
        "c4",
        "email.send",
        json!({"to": "bob@example.com"}),
    )
    .with_requester("agent")
    .with_tenant("globex");
    let (other, _) = pending(w.again(other_tenant).await);
    assert_ne!(other, id);
    assert!(w.runs().is_empty());

    // The call as the model made it runs the arguments as approved.
    assert!(matches!(
        w.again(mail("c5")).await,
        GateOutcome::Executed(_)
    ));
    assert_eq!(w.runs(), [(Some(id), edited)]);
}

#[tokio::test]
async fn a_denied_call_asks_again_and_the_request_ids_of_calls_still_resume() {
    let w = World::new();
    let (id, _) = pending(w.again(mail("c1")).await);
    w.gate
        .desk()
        .deny(id, &ann(), Some("not to bob"))
        .await
        .unwrap();
    let (next, created) = pending(w.again(mail("c2")).await);
    assert!(
        created && next != id,
        "a denial is not looked for: a new request"
    );

    // A host that kept the id still resumes as before; call_or_resume then finds the
    // approval used.
    w.gate.desk().approve(next, &ann()).await.unwrap();
    let resumed = w.tool().resume(next, mail("c2")).await.unwrap();
    assert!(matches!(resumed, GateOutcome::Executed(_)));
    let (third, created) = pending(w.again(mail("c3")).await);
    assert!(created && third != next);
    assert_eq!(w.runs().len(), 1);
}
