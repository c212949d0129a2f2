//! An approver edits the arguments they were shown, secrets redacted: a secret left as
//! the placeholder keeps its value, one typed in anew is taken.

use std::sync::{Arc, Mutex};

use approval_gate::serde_json::{Value, json};
use approval_gate::{Approver, Execution, Gate, Key, Keyring, ManualClock, Policy, ToolCall};

#[tokio::test]
async fn a_placeholder_left_in_an_edit_keeps_the_secret() {
    let gate = Gate::builder(
        Policy::from_yaml_str(
            "approvals:\n  required_for: [email.send]\n  redact: [args.api_key]\n",
        )
        .unwrap(),
        Keyring::new(Key::new("k1", [4u8; 32]).unwrap()),
    )
    .clock(ManualClock::default())
    .build();
    let ran: Arc<Mutex<Vec<Value>>> = Arc::default();
    let runs = ran.clone();
    let tool = gate.wrap(move |exec: Execution| {
        let runs = runs.clone();
        async move {
            runs.lock().unwrap().push(exec.args().clone());
            Ok::<(), std::io::Error>(())
        }
    });
    let call = ToolCall::new(
        "run-1",
        "c1",
        "email.send",
        json!({"to": "bob@example.com", "api_key": "sk-SECRET"}),
    )
    .with_requester("bob");
    let id = tool
        .call(call.clone())
        .await
        .unwrap()
        .pending()
        .unwrap()
        .request_id;

    // What the approver sees, edited and sent back.
    let shown = gate.desk().show(id).await.unwrap().shown_args().clone();
    assert_eq!(shown["api_key"], json!("[redacted]"));
    let mut edit = shown;
    edit["to"] = json!("carol@example.com");
    let approved = gate
        .desk()
        .approve_with_edits(id, &Approver::new("ann"), edit)
        .await
        .unwrap();
    assert_eq!(approved.shown_args()["api_key"], json!("[redacted]"));
    assert!(tool.resume(id, call).await.unwrap().executed().is_some());
    assert_eq!(
        ran.lock().unwrap()[0],
        json!({"to": "carol@example.com", "api_key": "sk-SECRET"})
    );
}
