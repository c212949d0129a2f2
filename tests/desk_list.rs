//! A desk for a person lists what that person may see, a page at a time, however many
//! requests of others come first.

use approval_gate::serde_json::json;
use approval_gate::{
    Approver, Execution, Gate, Key, Keyring, ManualClock, Policy, RequestId, RequestQuery, ToolCall,
};

async fn file(gate: &Gate, call_id: &str, tenant: Option<&str>) -> RequestId {
    let tool = gate.wrap(|_: Execution| async { Ok::<(), std::io::Error>(()) });
    let mut call =
        ToolCall::new("run-1", call_id, "email.send", json!({"n": call_id})).with_requester("bob");
    if let Some(tenant) = tenant {
        call = call.with_tenant(tenant);
    }
    tool.call(call).await.unwrap().pending().unwrap().request_id
}

#[tokio::test]
async fn a_person_without_a_tenant_gets_full_pages_of_what_they_may_see() {
    let gate = Gate::builder(
        Policy::from_yaml_str("approvals:\n  required_for: [email.send]\n").unwrap(),
        Keyring::new(Key::new("k1", [3u8; 32]).unwrap()),
    )
    .clock(ManualClock::default())
    .build();
    // Sixty requests of a tenant come first, then three without one.
    for i in 0..60 {
        file(&gate, &format!("acme-{i}"), Some("acme")).await;
    }
    let mut mine = Vec::new();
    for i in 0..3 {
        mine.push(file(&gate, &format!("own-{i}"), None).await);
    }
    // Filed at one instant (the clock stands still), they list in id order.
    mine.sort();
    let desk = gate.desk().for_approver(Approver::new("ann"));
    let page = |limit| RequestQuery {
        limit: Some(limit),
        ..RequestQuery::pending()
    };
    let ids = |found: Vec<approval_gate::ApprovalRequest>| {
        found.iter().map(|r| r.id()).collect::<Vec<_>>()
    };
    assert_eq!(ids(desk.list(&page(2)).await.unwrap()), mine[..2]);
    assert_eq!(ids(desk.list(&page(50)).await.unwrap()), mine);
    assert_eq!(ids(desk.pending().await.unwrap()), mine);
}
