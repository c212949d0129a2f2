//! The console and its API through HTTP requests on the router, as a browser and a bot
//! send them: identity from the proxy's headers or a bearer token, the desk's rules,
//! cross-site requests refused, values escaped, secrets redacted.

use std::sync::{Arc, Mutex};

use approval_gate::serde_json::{Value, json};
use approval_gate::{
    Approver, Execution, Gate, GateOutcome, Gated, Key, Keyring, ManualClock, Policy, RequestId,
    RequestState, StopReason, ToolCall, ToolExecutor,
};
use approval_gate_server::{AppState, Auth, BearerToken, ProxyHeaders, router};
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use tower::ServiceExt;

const POLICY: &str = "\
approvals:
  redact: [args.api_key]
tiers:
  pair:
    quorum: 2
rules:
  - id: mail
    tool: email.send
    effect: approval_required
    preview: 'mail to {to}: {subject}'
  - id: wires
    tool: payments.wire
    effect: approval_required
    tier: pair
";

const BOT_TOKEN: &str = "bot-token-0123456789abcdef0123456789abcdef";

struct World {
    gate: Gate,
    app: axum::Router,
    ran: Arc<Mutex<Vec<Execution>>>,
}

impl World {
    fn new() -> Self {
        let gate = Gate::builder(
            Policy::from_yaml_str(POLICY).unwrap(),
            Keyring::new(Key::new("k1", [6u8; 32]).unwrap()),
        )
        .clock(ManualClock::default())
        .build();
        let bot = Approver::new("bot").with_tenant("acme");
        let auth = Auth::new()
            .trust_proxy(ProxyHeaders::default())
            .bearer(BearerToken::from_secret(BOT_TOKEN, bot).unwrap());
        let app = router(AppState::new(gate.clone(), auth));
        World {
            gate,
            app,
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

    async fn file(&self, call: ToolCall) -> RequestId {
        match self.tool().call(call).await.unwrap() {
            GateOutcome::Pending(p) => p.request_id,
            other => panic!("expected pending, got {}", other.name()),
        }
    }

    async fn send(&self, request: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, headers, String::from_utf8(body.to_vec()).unwrap())
    }

    async fn state(&self, id: RequestId) -> RequestState {
        self.gate.desk().show(id).await.unwrap().stored_state()
    }
}

fn mail(call_id: &str, to: &str, subject: &str) -> ToolCall {
    ToolCall::new(
        "run-1",
        call_id,
        "email.send",
        json!({"to": to, "subject": subject, "api_key": "sk-SECRET-1234"}),
    )
    .with_requester("bob")
    .with_tenant("acme")
}

/// A browser request as the proxy forwards it for `user` of tenant acme.
fn as_user(user: &str, method: &str, uri: &str) -> axum::http::request::Builder {
    Request::builder()
        .method(method)
        .uri(uri)
        .header(header::HOST, "console.test")
        .header("x-forwarded-user", user)
        .header("x-forwarded-tenant", "acme")
}

/// A form post from the console's own page.
fn form(user: &str, uri: &str, body: &str) -> Request<Body> {
    as_user(user, "POST", uri)
        .header("sec-fetch-site", "same-origin")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

fn get(user: &str, uri: &str) -> Request<Body> {
    as_user(user, "GET", uri).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn a_request_without_identity_gets_401() {
    let w = World::new();
    let (status, _, _) = w.send(Request::get("/").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let bad_token = Request::get("/api/v1/requests")
        .header(
            header::AUTHORIZATION,
            "Bearer not-a-known-token-0123456789abcdef",
        )
        .body(Body::empty())
        .unwrap();
    assert_eq!(w.send(bad_token).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_queue_shows_the_tenants_requests_escaped_with_security_headers() {
    let w = World::new();
    let id = w
        .file(mail("c1", "bob@example.com", "<script>alert(1)</script>"))
        .await;
    w.file(
        ToolCall::new(
            "run-9",
            "c1",
            "email.send",
            json!({"to": "x", "subject": "theirs"}),
        )
        .with_requester("zed")
        .with_tenant("globex"),
    )
    .await;
    let (status, headers, html) = w.send(get("ann", "/")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(&format!("/requests/{id}")), "{html}");
    assert!(
        !html.contains("theirs"),
        "another tenant's request is shown"
    );
    assert!(!html.contains("<script>alert(1)</script>"));
    assert!(html.contains("&#60;script&#62;alert(1)"), "{html}");
    assert!(!html.contains("sk-SECRET-1234"));
    let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline"));
    assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
}

#[tokio::test]
async fn the_request_page_shows_redacted_arguments_and_its_history() {
    let w = World::new();
    let id = w.file(mail("c1", "bob@example.com", "Refund")).await;
    let (status, _, html) = w.send(get("ann", &format!("/requests/{id}"))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("mail to bob@example.com: Refund"));
    assert!(html.contains("[redacted]"));
    assert!(
        !html.contains("sk-SECRET-1234"),
        "a redacted secret is in the HTML"
    );
    assert!(html.contains("approval_required"));
    let other = w
        .send(get("ann", &format!("/requests/{}", RequestId::new())))
        .await;
    assert_eq!(other.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn approving_by_form_lets_the_agent_run_the_tool_once() {
    let w = World::new();
    let call = mail("c1", "bob@example.com", "Refund");
    let id = w.file(call.clone()).await;
    let (status, headers, _) = w
        .send(form("ann", &format!("/requests/{id}/approve"), ""))
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], format!("/requests/{id}"));
    assert_eq!(w.state(id).await, RequestState::Approved);
    assert!(
        w.tool()
            .resume(id, call.clone())
            .await
            .unwrap()
            .executed()
            .is_some()
    );
    assert!(w.tool().resume(id, call).await.unwrap().stopped().is_some());
    assert_eq!(w.ran.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn an_edit_reaches_the_executor_and_bad_json_is_refused() {
    let w = World::new();
    let call = mail("c1", "bob@example.com", "Refund");
    let id = w.file(call.clone()).await;
    let uri = format!("/requests/{id}/approve");
    let (status, _, html) = w.send(form("ann", &uri, "edit=%7Bnot+json")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("not JSON"), "{html}");
    assert_eq!(w.state(id).await, RequestState::Pending);
    let edit = "edit=%7B%22to%22%3A%22carol%40example.com%22%2C%22subject%22%3A%22Refund%22%2C%22api_key%22%3A%22sk-SECRET-1234%22%7D";
    let (status, _, _) = w.send(form("ann", &uri, edit)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let outcome = w.tool().resume(id, call).await.unwrap();
    let done = outcome.executed().expect("ran");
    assert!(done.edit.is_some());
    assert_eq!(w.ran.lock().unwrap()[0].args()["to"], "carol@example.com");
}

#[tokio::test]
async fn a_denial_with_feedback_reaches_the_agent() {
    let w = World::new();
    let call = mail("c1", "bob@example.com", "Refund");
    let id = w.file(call.clone()).await;
    let (status, _, _) = w
        .send(form(
            "ann",
            &format!("/requests/{id}/deny"),
            "feedback=use+the+template",
        ))
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let outcome = w.tool().resume(id, call).await.unwrap();
    let stop = outcome.stopped().expect("stopped");
    assert!(matches!(
        &stop.reason,
        StopReason::ApprovalDenied { feedback: Some(f), .. } if f == "use the template"
    ));
}

#[tokio::test]
async fn refusals_show_a_message_and_change_nothing() {
    let w = World::new();
    let id = w.file(mail("c1", "bob@example.com", "Refund")).await;
    // The requester approving their own call.
    let (status, _, html) = w
        .send(form("bob", &format!("/requests/{id}/approve"), ""))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(html.contains("cannot approve"), "{html}");
    assert_eq!(w.state(id).await, RequestState::Pending);
    // A second decision after the first.
    w.send(form("ann", &format!("/requests/{id}/deny"), ""))
        .await;
    let (status, _, _) = w
        .send(form("cid", &format!("/requests/{id}/approve"), ""))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(w.state(id).await, RequestState::Denied);
}

#[tokio::test]
async fn a_quorum_of_two_shows_one_of_two_after_the_first_approver() {
    let w = World::new();
    let id = w
        .file(
            ToolCall::new("run-1", "c1", "payments.wire", json!({"amount": 10}))
                .with_requester("bob")
                .with_tenant("acme"),
        )
        .await;
    w.send(form("ann", &format!("/requests/{id}/approve"), ""))
        .await;
    let (_, _, html) = w.send(get("cid", &format!("/requests/{id}"))).await;
    assert!(html.contains("1 of 2"), "{html}");
    assert_eq!(w.state(id).await, RequestState::Pending);
}

#[tokio::test]
async fn a_cross_site_form_post_is_refused_and_nothing_changes() {
    let w = World::new();
    let id = w.file(mail("c1", "bob@example.com", "Refund")).await;
    let uri = format!("/requests/{id}/approve");
    let cross = as_user("ann", "POST", &uri)
        .header("sec-fetch-site", "cross-site")
        .header(header::ORIGIN, "https://evil.example")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::empty())
        .unwrap();
    assert_eq!(w.send(cross).await.0, StatusCode::FORBIDDEN);
    // Without Fetch Metadata, the Origin must be the console's own.
    let other_origin = as_user("ann", "POST", &uri)
        .header(header::ORIGIN, "https://evil.example")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::empty())
        .unwrap();
    assert_eq!(w.send(other_origin).await.0, StatusCode::FORBIDDEN);
    let neither = as_user("ann", "POST", &uri)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::empty())
        .unwrap();
    assert_eq!(w.send(neither).await.0, StatusCode::FORBIDDEN);
    assert_eq!(w.state(id).await, RequestState::Pending);
    let own_origin = as_user("ann", "POST", &uri)
        .header(header::ORIGIN, "http://console.test")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::empty())
        .unwrap();
    assert_eq!(w.send(own_origin).await.0, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_bot_decides_through_the_api_with_its_token() {
    let w = World::new();
    let id = w.file(mail("c1", "bob@example.com", "Refund")).await;
    let api = |method: &str, uri: &str, body: Value| {
        Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {BOT_TOKEN}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let (status, _, body) = w.send(api("GET", "/api/v1/requests", Value::Null)).await;
    assert_eq!(status, StatusCode::OK);
    let list: Value = approval_gate::serde_json::from_str(&body).unwrap();
    assert_eq!(list[0]["id"], id.to_string());
    assert!(!body.contains("sk-SECRET-1234"));
    // The arguments are JSON, as the command prints them, secrets redacted.
    assert_eq!(list[0]["shown_args"]["api_key"], json!("[redacted]"));
    assert_eq!(list[0]["call_id"], json!("c1"), "{body}");
    let (status, _, body) = w
        .send(api(
            "POST",
            &format!("/api/v1/requests/{id}/approve"),
            json!({}),
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let shown: Value = approval_gate::serde_json::from_str(&body).unwrap();
    assert_eq!(shown["state"], "approved");
    assert_eq!(shown["approvers"], json!(["bot"]));
    let (status, _, body) = w
        .send(api(
            "POST",
            &format!("/api/v1/requests/{id}/deny"),
            json!({"feedback": "late"}),
        ))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let error: Value = approval_gate::serde_json::from_str(&body).unwrap();
    assert_eq!(error["status"], 409);
}

#[tokio::test]
async fn grants_are_listed_for_the_tenant_and_revoked_by_their_author() {
    let w = World::new();
    let call = mail("c1", "bob@example.com", "Refund");
    let id = w.file(call).await;
    let spec = approval_gate::GrantSpec::new(
        approval_gate::GrantScope::Run,
        std::time::Duration::from_secs(3600),
    );
    let (_, grant) = w
        .gate
        .desk()
        .approve_with_grant(id, &Approver::new("ann").with_tenant("acme"), &spec)
        .await
        .unwrap();
    let grant = grant.unwrap();
    let (status, _, html) = w.send(get("ann", "/grants")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(&grant.id().to_string()));
    let uri = format!("/grants/{}/revoke", grant.id());
    let (status, _, _) = w.send(form("ann", &uri, "")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(w.gate.desk().grants().await.unwrap().is_empty());
}

#[tokio::test]
async fn controls_and_stats_are_for_administrators_and_name_who_flipped_a_switch() {
    let w = World::new();
    let (status, _, _) = w.send(get("ann", "/controls")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let admin = |method: &str, uri: &str| {
        as_user("olga", method, uri)
            .header("x-forwarded-groups", "approval-admin")
            .header("sec-fetch-site", "same-origin")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
    };
    let engage = admin("POST", "/controls/kill-switch")
        .body(Body::from("scope=tool&name=email.send&engaged=on"))
        .unwrap();
    assert_eq!(w.send(engage).await.0, StatusCode::SEE_OTHER);
    let blocked = w
        .tool()
        .call(mail("c2", "bob@example.com", "Hi"))
        .await
        .unwrap();
    assert!(matches!(
        blocked.stopped().map(|s| &s.reason),
        Some(StopReason::KillSwitch { .. })
    ));
    let (status, _, html) = w
        .send(admin("GET", "/controls").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("email.send"), "{html}");
    let who = w
        .gate
        .store()
        .audit_records(&approval_gate::trail::AuditQuery::actor("olga"))
        .await
        .unwrap();
    assert_eq!(who[0].event_name(), "kill_switch_changed");
    let (status, _, html) = w
        .send(admin("GET", "/stats").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Timeout rate"));
    let bad = admin("POST", "/controls/read-only")
        .body(Body::from("on=maybe"))
        .unwrap();
    assert_eq!(w.send(bad).await.0, StatusCode::UNPROCESSABLE_ENTITY);
}

/// A `MemoryStore` that remembers what `list` was asked and how many requests it
/// returned.
#[derive(Default)]
struct ListingStore {
    inner: approval_gate::MemoryStore,
    lists: Mutex<Vec<(approval_gate::RequestQuery, usize)>>,
}

mod listing {
    use super::ListingStore;
    use approval_gate::desk::{Grant, GrantId};
    use approval_gate::store::{
        ControlStore, CursorStore, Expired, Filed, GrantStore, RequestStore, RunUsage,
        Subscription, Switches, TrailCursor, TrailReader, TrailWriter, UsageDelta,
    };
    use approval_gate::time::OffsetDateTime;
    use approval_gate::trail::{AuditQuery, AuditRecord};
    use approval_gate::{ApprovalRequest, KillScope, RequestId, RequestQuery, StoreError};
    use async_trait::async_trait;

    #[async_trait]
    impl RequestStore for ListingStore {
        async fn create(
            &self,
            r: ApprovalRequest,
            record: &AuditRecord,
            now: OffsetDateTime,
        ) -> Result<Filed, StoreError> {
            self.inner.create(r, record, now).await
        }
        async fn get(&self, id: RequestId) -> Result<ApprovalRequest, StoreError> {
            self.inner.get(id).await
        }
        async fn update(
            &self,
            next: &ApprovalRequest,
            record: &AuditRecord,
        ) -> Result<Vec<AuditRecord>, StoreError> {
            self.inner.update(next, record).await
        }
        async fn list(
            &self,
            q: &RequestQuery,
            now: OffsetDateTime,
        ) -> Result<Vec<ApprovalRequest>, StoreError> {
            let found = self.inner.list(q, now).await?;
            self.lists.lock().unwrap().push((q.clone(), found.len()));
            Ok(found)
        }
        async fn sweep_expired(
            &self,
            now: OffsetDateTime,
            limit: usize,
        ) -> Result<Vec<Expired>, StoreError> {
            self.inner.sweep_expired(now, limit).await
        }
        async fn subscribe(&self) -> Result<Subscription, StoreError> {
            self.inner.subscribe().await
        }
    }

    #[async_trait]
    impl ControlStore for ListingStore {
        async fn switches(&self) -> Result<Switches, StoreError> {
            self.inner.switches().await
        }
        async fn set_kill_switch(
            &self,
            scope: KillScope,
            engaged: bool,
            record: &AuditRecord,
        ) -> Result<(), StoreError> {
            self.inner.set_kill_switch(scope, engaged, record).await
        }
        async fn set_read_only(&self, on: bool, record: &AuditRecord) -> Result<(), StoreError> {
            self.inner.set_read_only(on, record).await
        }
        async fn add_usage(
            &self,
            run_id: &str,
            delta: UsageDelta,
            now: OffsetDateTime,
        ) -> Result<RunUsage, StoreError> {
            self.inner.add_usage(run_id, delta, now).await
        }
        async fn usage(&self, run_id: &str) -> Result<RunUsage, StoreError> {
            self.inner.usage(run_id).await
        }
    }

    #[async_trait]
    impl GrantStore for ListingStore {
        async fn put_grant(&self, grant: &Grant, record: &AuditRecord) -> Result<(), StoreError> {
            self.inner.put_grant(grant, record).await
        }
        async fn grant(&self, id: GrantId) -> Result<Grant, StoreError> {
            self.inner.grant(id).await
        }
        async fn grants(&self, now: OffsetDateTime) -> Result<Vec<Grant>, StoreError> {
            self.inner.grants(now).await
        }
        async fn update_grant(&self, next: &Grant, record: &AuditRecord) -> Result<(), StoreError> {
            self.inner.update_grant(next, record).await
        }
    }

    #[async_trait]
    impl TrailWriter for ListingStore {
        async fn append_audit(&self, record: &AuditRecord) -> Result<(), StoreError> {
            self.inner.append_audit(record).await
        }
    }

    #[async_trait]
    impl TrailReader for ListingStore {
        async fn audit_records(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
            self.inner.audit_records(query).await
        }
    }

    #[async_trait]
    impl CursorStore for ListingStore {
        async fn lease_cursor(
            &self,
            name: &str,
            holder: &str,
            now: OffsetDateTime,
            until: OffsetDateTime,
        ) -> Result<Option<TrailCursor>, StoreError> {
            self.inner.lease_cursor(name, holder, now, until).await
        }

        async fn advance_cursor(
            &self,
            name: &str,
            holder: &str,
            after_seq: u64,
            until: OffsetDateTime,
        ) -> Result<bool, StoreError> {
            self.inner
                .advance_cursor(name, holder, after_seq, until)
                .await
        }

        async fn release_cursor(&self, name: &str, holder: &str) -> Result<(), StoreError> {
            self.inner.release_cursor(name, holder).await
        }

        async fn cursors(&self) -> Result<Vec<TrailCursor>, StoreError> {
            self.inner.cursors().await
        }
    }
}

/// A console on a `ListingStore`, with 60 pending requests of tenant acme filed a second
/// apart, oldest first in the returned ids.
async fn sixty_pending() -> (World, Arc<ListingStore>, Vec<RequestId>) {
    let store = Arc::new(ListingStore::default());
    let clock = ManualClock::default();
    let gate = Gate::builder(
        Policy::from_yaml_str(POLICY).unwrap(),
        Keyring::new(Key::new("k1", [6u8; 32]).unwrap()),
    )
    .shared_store(store.clone())
    .clock(clock.clone())
    .build();
    let auth = Auth::new().trust_proxy(ProxyHeaders::default());
    let w = World {
        app: router(AppState::new(gate.clone(), auth)),
        gate,
        ran: Arc::default(),
    };
    let mut ids = Vec::new();
    for i in 0..60 {
        let call = ToolCall::new(
            format!("run-{i}"),
            "c1",
            "email.send",
            json!({"to": "bob@example.com", "subject": format!("mail {i}")}),
        )
        .with_requester("bob")
        .with_tenant("acme");
        ids.push(w.file(call).await);
        clock.advance(std::time::Duration::from_secs(1));
    }
    store.lists.lock().unwrap().clear();
    (w, store, ids)
}

#[tokio::test]
async fn the_queue_asks_the_store_for_one_page_not_every_request() {
    let (w, store, ids) = sixty_pending().await;
    let (status, _, html) = w.send(get("ann", "/")).await;
    assert_eq!(status, StatusCode::OK);
    let lists = std::mem::take(&mut *store.lists.lock().unwrap());
    assert_eq!(lists.len(), 1, "{lists:?}");
    let (query, returned) = &lists[0];
    assert_eq!(
        query.limit,
        Some(50),
        "the queue's list query carries no limit"
    );
    assert_eq!(*returned, 50);
    assert_eq!(query.state, Some(RequestState::Pending));
    assert_eq!(query.tenant.as_deref(), Some("acme"));
    assert_eq!(html.matches("href=\"/requests/").count(), 50);
    assert!(
        html.contains(&format!("/requests/{}", ids[0])),
        "oldest first"
    );
    assert!(!html.contains(&format!("/requests/{}", ids[50])));
    assert!(html.contains("href=\"/?after="), "a link to the next page");
}

/// The queue lists the oldest first; its link to the next page shows the requests after
/// the last one shown, so every pending request can be reached from the queue.
#[tokio::test]
async fn the_queues_next_page_shows_the_newer_requests() {
    let (w, store, ids) = sixty_pending().await;
    let (_, _, html) = w.send(get("ann", "/")).await;
    let next = html
        .split("href=\"")
        .find(|s| s.starts_with("/?after="))
        .and_then(|s| s.split('"').next())
        .expect("a link to the next page")
        .replace("&amp;", "&");
    store.lists.lock().unwrap().clear();
    let (status, _, html) = w.send(get("ann", &next)).await;
    assert_eq!(status, StatusCode::OK);
    let lists = std::mem::take(&mut *store.lists.lock().unwrap());
    assert_eq!(lists.len(), 1, "{lists:?}");
    assert_eq!(lists[0].0.limit, Some(50));
    assert_eq!(html.matches("href=\"/requests/").count(), 10, "{html}");
    assert!(!html.contains(&format!("/requests/{}", ids[0])));
    assert!(html.contains(&format!("/requests/{}", ids[59])));
}

/// A GET as the proxy forwards it for `user`, of `tenant` and with `groups` if any.
fn get_as(user: &str, tenant: Option<&str>, groups: Option<&str>, uri: &str) -> Request<Body> {
    let mut request = Request::get(uri)
        .header(header::HOST, "console.test")
        .header("x-forwarded-user", user);
    if let Some(tenant) = tenant {
        request = request.header("x-forwarded-tenant", tenant);
    }
    if let Some(groups) = groups {
        request = request.header("x-forwarded-groups", groups);
    }
    request.body(Body::empty()).unwrap()
}

/// One of the console's administrators, bound to no tenant.
fn admin_get(uri: &str) -> Request<Body> {
    get_as("olga", None, Some("approval-admin"), uri)
}

fn parse(body: &str) -> Value {
    approval_gate::serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// The events of a run's trail as its API lists them.
fn events(trail: &Value) -> Vec<String> {
    trail["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["event"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_runs_page_lists_its_trail_after_a_call_an_approval_and_a_resume() {
    let w = World::new();
    let call = mail("c1", "bob@example.com", "Refund");
    let id = w.file(call.clone()).await;
    // The queue and the request page link to the run.
    let (_, _, queue) = w.send(get("ann", "/")).await;
    assert!(queue.contains("href=\"/runs/run-1\""), "{queue}");
    let (_, _, page) = w.send(get("ann", &format!("/requests/{id}"))).await;
    assert!(page.contains("href=\"/runs/run-1\""), "{page}");
    w.send(form("ann", &format!("/requests/{id}/approve"), ""))
        .await;
    assert!(
        w.tool()
            .resume(id, call)
            .await
            .unwrap()
            .executed()
            .is_some()
    );

    let (status, _, html) = w.send(get("ann", "/runs/run-1")).await;
    assert_eq!(status, StatusCode::OK);
    let steps = [
        "approval_required",
        "approval_granted",
        "execution_started",
        "executed",
    ];
    let places: Vec<usize> = steps
        .iter()
        .map(|e| {
            html.find(&format!("<td>{e}</td>"))
                .unwrap_or_else(|| panic!("{e} is not on the page: {html}"))
        })
        .collect();
    assert!(places.is_sorted(), "not in order: {html}");
    assert!(html.contains(&format!("href=\"/requests/{id}\"")), "{html}");
    assert!(html.contains("<td>ann</td>"), "the approver: {html}");
    assert!(html.contains("<td>email.send</td>"), "{html}");
    assert!(!html.contains("sk-SECRET-1234"));
    assert!(!html.contains("More records"));

    // The API lists the same, as the bot of the same tenant sees them.
    let api = Request::get("/api/v1/runs/run-1/trail")
        .header(header::AUTHORIZATION, format!("Bearer {BOT_TOKEN}"))
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = w.send(api).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let trail = parse(&body);
    assert_eq!(trail["run_id"], "run-1");
    assert_eq!(events(&trail), steps);
    assert_eq!(trail["records"][0]["request_id"], id.to_string());
    assert_eq!(trail["records"][1]["actor"], "ann");
    assert_eq!(trail["records"][0]["tenant"], "acme");
    assert_eq!(trail["next_after"], Value::Null);
    assert!(!body.contains("sk-SECRET-1234"));
}

#[tokio::test]
async fn a_runs_trail_is_shown_to_its_tenant_and_to_administrators_without_one() {
    let w = World::new();
    let id = w.file(mail("c1", "bob@example.com", "Refund")).await;
    w.send(form(
        "ann",
        &format!("/requests/{id}/deny"),
        "feedback=%3Cb%3Enot+now%3C%2Fb%3E",
    ))
    .await;

    // The tenant's person sees it, the feedback escaped.
    let (_, _, html) = w.send(get("ann", "/runs/run-1")).await;
    assert!(html.contains("approval_denied"), "{html}");
    assert!(html.contains("&#60;b&#62;not now&#60;/b&#62;"), "{html}");
    assert!(!html.contains("<b>not now"));

    // Another tenant's person sees nothing of it, on the page or in the API.
    let (status, _, html) = w
        .send(get_as("zed", Some("globex"), None, "/runs/run-1"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(!html.contains(&id.to_string()), "{html}");
    assert!(!html.contains("approval_required"), "{html}");
    let (_, _, body) = w
        .send(get_as(
            "zed",
            Some("globex"),
            None,
            "/api/v1/runs/run-1/trail",
        ))
        .await;
    assert_eq!(events(&parse(&body)), Vec::<String>::new());
    // So does a person without a tenant who is no administrator.
    let (_, _, body) = w
        .send(get_as("nobody", None, None, "/api/v1/runs/run-1/trail"))
        .await;
    assert_eq!(events(&parse(&body)), Vec::<String>::new());

    // An administrator without a tenant sees every tenant's records, with their tenant.
    let (_, _, html) = w.send(admin_get("/runs/run-1")).await;
    assert!(html.contains("approval_denied"), "{html}");
    assert!(html.contains("<th>Tenant</th>") && html.contains("<td>acme</td>"));
    let (_, _, body) = w.send(admin_get("/api/v1/runs/run-1/trail")).await;
    assert_eq!(
        events(&parse(&body)),
        ["approval_required", "approval_denied"]
    );

    // Without an identity: 401, for the page and the API.
    for uri in ["/runs/run-1", "/api/v1/runs/run-1/trail"] {
        let anonymous = Request::get(uri).body(Body::empty()).unwrap();
        assert_eq!(w.send(anonymous).await.0, StatusCode::UNAUTHORIZED, "{uri}");
    }
}

#[tokio::test]
async fn a_long_run_is_shown_two_hundred_records_a_page() {
    let w = World::new();
    // No rule names `db.drop`: each call is denied, one record each.
    for i in 0..205 {
        let call = ToolCall::new("run-long", format!("c{i}"), "db.drop", json!({"n": i}))
            .with_requester("bob")
            .with_tenant("acme");
        assert!(w.tool().call(call).await.unwrap().stopped().is_some());
    }
    let all = w
        .gate
        .store()
        .audit_records(&approval_gate::trail::AuditQuery::run("run-long"))
        .await
        .unwrap();
    assert_eq!(all.len(), 205);

    let (_, _, body) = w.send(get("ann", "/api/v1/runs/run-long/trail")).await;
    let first = parse(&body);
    assert_eq!(first["records"].as_array().unwrap().len(), 200);
    let after = first["next_after"].as_u64().expect("a next page");
    assert_eq!(Some(after), all[199].chain.as_ref().map(|c| c.seq));
    let (_, _, html) = w.send(get("ann", "/runs/run-long")).await;
    assert!(
        html.contains(&format!("href=\"/runs/run-long?after={after}\"")),
        "{html}"
    );
    assert_eq!(html.matches("<td>policy_denied</td>").count(), 200);

    let (_, _, body) = w
        .send(get(
            "ann",
            &format!("/api/v1/runs/run-long/trail?after={after}"),
        ))
        .await;
    let second = parse(&body);
    assert_eq!(second["records"].as_array().unwrap().len(), 5);
    assert_eq!(second["records"][4]["call_id"], "c204");
    assert_eq!(second["next_after"], Value::Null);

    let (status, _, _) = w.send(get("ann", "/runs/run-long?after=soon")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn a_run_shared_by_two_tenants_shows_each_only_its_own_records() {
    let w = World::new();
    for i in 0..450 {
        let call = ToolCall::new("run-shared", format!("g{i}"), "db.drop", json!({}))
            .with_requester("zed")
            .with_tenant("globex");
        w.tool().call(call).await.unwrap();
    }
    for i in 0..3 {
        let call = ToolCall::new("run-shared", format!("a{i}"), "db.drop", json!({}))
            .with_requester("bob")
            .with_tenant("acme");
        w.tool().call(call).await.unwrap();
    }
    let (_, _, body) = w.send(get("ann", "/api/v1/runs/run-shared/trail")).await;
    let trail = parse(&body);
    let calls: Vec<&str> = trail["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["call_id"].as_str().unwrap())
        .collect();
    assert_eq!(calls, ["a0", "a1", "a2"]);
    assert_eq!(trail["next_after"], Value::Null);
}

/// Files one request in the viewer's tenant (acme) and one in another (globex).
async fn file_in_two_tenants(w: &World) -> (RequestId, RequestId) {
    let ours = w.file(mail("c1", "bob@example.com", "Refund")).await;
    let theirs = ToolCall::new(
        "run-9",
        "c1",
        "email.send",
        json!({"to": "x", "subject": "theirs"}),
    )
    .with_requester("zed")
    .with_tenant("globex");
    (ours, w.file(theirs).await)
}

/// Whether a page links to the request.
fn shows(html: &str, id: RequestId) -> bool {
    html.contains(&format!("/requests/{id}"))
}

#[tokio::test]
async fn a_tenant_filter_narrows_the_queue_and_never_widens_it() {
    let w = World::new();
    let (ours, theirs) = file_in_two_tenants(&w).await;

    // A person bound to acme who asks for globex sees nothing of it (an empty list, not
    // an error), and not their own either.
    let (status, _, html) = w.send(get("ann", "/?tenant=globex")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!shows(&html, theirs) && !shows(&html, ours), "{html}");
    assert!(!html.contains("<th>Tenant</th>"));
    let (status, _, body) = w.send(get("ann", "/api/v1/requests?tenant=globex")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(parse(&body), json!([]));
    // Their own tenant, in any case, is theirs.
    let (_, _, html) = w.send(get("ann", "/?tenant=ACME")).await;
    assert!(shows(&html, ours) && !shows(&html, theirs), "{html}");
    // The filter form keeps what was asked.
    assert!(html.contains("name=\"tenant\" value=\"ACME\""), "{html}");
    // Another tenant's request stays out of reach by its id.
    let (status, _, _) = w.send(get("ann", &format!("/requests/{theirs}"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A person without a tenant who is no administrator sees neither.
    let (_, _, body) = w
        .send(get_as("nobody", None, None, "/api/v1/requests"))
        .await;
    assert_eq!(parse(&body), json!([]));
    let (_, _, body) = w
        .send(get_as("nobody", None, None, "/api/v1/requests?tenant=acme"))
        .await;
    assert_eq!(parse(&body), json!([]));
    // Nor does an administrator bound to a tenant see another.
    let (_, _, body) = w
        .send(get_as(
            "olga",
            Some("acme"),
            Some("approval-admin"),
            "/api/v1/requests?tenant=globex",
        ))
        .await;
    assert_eq!(parse(&body), json!([]));

    // A malformed tenant is refused.
    let (status, _, _) = w.send(get("ann", "/?tenant=%E2%80%8B")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn an_administrator_without_a_tenant_sees_every_tenant_and_filters_by_one() {
    let w = World::new();
    let (ours, theirs) = file_in_two_tenants(&w).await;

    let (status, _, html) = w.send(admin_get("/")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(shows(&html, ours) && shows(&html, theirs), "{html}");
    assert!(html.contains("<th>Tenant</th>"), "{html}");
    assert!(html.contains("<td class=\"tenant\">globex</td>"), "{html}");

    let (_, _, html) = w.send(admin_get("/?tenant=globex")).await;
    assert!(shows(&html, theirs) && !shows(&html, ours), "{html}");
    // The next page's link would keep the filter (and the form shows it).
    assert!(html.contains("name=\"tenant\" value=\"globex\""), "{html}");

    let (_, _, body) = w.send(admin_get("/api/v1/requests")).await;
    let mut ids: Vec<String> = parse(&body)
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    // Filed at the same instant: in the order of their ids.
    ids.sort();
    let mut both = [ours.to_string(), theirs.to_string()];
    both.sort();
    assert_eq!(ids, both);
    let (_, _, body) = w.send(admin_get("/api/v1/requests?tenant=acme")).await;
    let list = parse(&body);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], ours.to_string());
    assert_eq!(list[0]["tenant"], "acme");

    // The administrator may open any tenant's request...
    let (status, _, html) = w.send(admin_get(&format!("/requests/{theirs}"))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("globex"), "{html}");
    // ...but the desk's rules still decide who may decide it: not someone of no tenant.
    let approve = Request::post(format!("/requests/{theirs}/approve"))
        .header(header::HOST, "console.test")
        .header("x-forwarded-user", "olga")
        .header("x-forwarded-groups", "approval-admin")
        .header("sec-fetch-site", "same-origin")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::empty())
        .unwrap();
    let (status, _, _) = w.send(approve).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(w.state(theirs).await, RequestState::Pending);
}
