//! A person signs a browser in with their console token: the token goes into an
//! `HttpOnly`, `SameSite=Strict` cookie, the cookie places them on every page, and a
//! state-changing request carried by it must still come from the console's own pages.

use approval_gate::serde_json::json;
use approval_gate::{
    Approver, Execution, Gate, Key, Keyring, ManualClock, Policy, RequestId, RequestState, ToolCall,
};
use approval_gate_server::{AppState, Auth, BearerToken, router};
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use tower::ServiceExt;

const ANN_TOKEN: &str = "ann-token-0123456789abcdef0123456789abcdef";

struct World {
    gate: Gate,
    app: axum::Router,
}

impl World {
    fn new() -> Self {
        let gate = Gate::builder(
            Policy::from_yaml_str("approvals:\n  required_for: [email.send]\n").unwrap(),
            Keyring::new(Key::new("k1", [8u8; 32]).unwrap()),
        )
        .clock(ManualClock::default())
        .build();
        let ann = Approver::new("ann").with_tenant("acme");
        let auth = Auth::new().bearer(BearerToken::from_secret(ANN_TOKEN, ann).unwrap());
        let app = router(AppState::new(gate.clone(), auth));
        World { gate, app }
    }

    async fn file(&self) -> RequestId {
        let tool = self
            .gate
            .wrap(|_: Execution| async { Ok::<(), std::io::Error>(()) });
        let call = ToolCall::new("run-1", "c1", "email.send", json!({"to": "bob"}))
            .with_requester("bob")
            .with_tenant("acme");
        tool.call(call).await.unwrap().pending().unwrap().request_id
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

fn post(uri: &str, body: &str, site: Option<&str>, cookie: Option<&str>) -> Request<Body> {
    let mut request = Request::builder()
        .method("POST")
        .uri(uri)
        .header(header::HOST, "console.test")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(site) = site {
        request = request.header("sec-fetch-site", site);
    }
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    request.body(Body::from(body.to_owned())).unwrap()
}

fn get(uri: &str, cookie: Option<&str>) -> Request<Body> {
    let mut request = Request::builder()
        .uri(uri)
        .header(header::HOST, "console.test");
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    request.body(Body::empty()).unwrap()
}

/// Signs in from the console's page; the cookie the browser would send back.
async fn signed_in(w: &World) -> String {
    let (status, headers, _) = w
        .send(post(
            "/signin",
            &format!("token={ANN_TOKEN}"),
            Some("same-origin"),
            None,
        ))
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let set = headers[header::SET_COOKIE].to_str().unwrap().to_owned();
    assert!(set.contains("HttpOnly"), "{set}");
    assert!(set.contains("SameSite=Strict"), "{set}");
    set.split(';').next().unwrap().to_owned()
}

#[tokio::test]
async fn without_a_session_the_pages_ask_to_sign_in() {
    let w = World::new();
    let (status, _, body) = w.send(get("/", None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("href=\"/signin\""), "{body}");
    let (status, _, body) = w.send(get("/signin", None)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("name=\"token\""));
}

#[tokio::test]
async fn a_signed_in_browser_decides_as_its_token_holder() {
    let w = World::new();
    let id = w.file().await;
    let cookie = signed_in(&w).await;

    let (status, _, body) = w.send(get("/", Some(&cookie))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("ann"), "{body}");
    assert!(body.contains(&id.to_string()));

    // The cookie rides along with a cross-site form too: refused, nothing changes.
    let (status, _, _) = w
        .send(post(
            &format!("/requests/{id}/approve"),
            "",
            Some("cross-site"),
            Some(&cookie),
        ))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(w.state(id).await, RequestState::Pending);

    // From the console's own page it approves, as ann.
    let (status, _, _) = w
        .send(post(
            &format!("/requests/{id}/approve"),
            "",
            Some("same-origin"),
            Some(&cookie),
        ))
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let request = w.gate.desk().show(id).await.unwrap();
    assert_eq!(request.stored_state(), RequestState::Approved);
    assert_eq!(request.approvers(), ["ann"]);
}

#[tokio::test]
async fn an_unknown_token_or_another_site_signs_nobody_in() {
    let w = World::new();
    let (status, headers, body) = w
        .send(post(
            "/signin",
            "token=not-a-token-the-console-knows-0123456789",
            Some("same-origin"),
            None,
        ))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(headers.get(header::SET_COOKIE).is_none());
    assert!(body.contains("does not know that token"));

    // Another site cannot sign a person in, even with a real token (login forgery).
    let (status, headers, _) = w
        .send(post(
            "/signin",
            &format!("token={ANN_TOKEN}"),
            Some("cross-site"),
            None,
        ))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(headers.get(header::SET_COOKIE).is_none());

    // A cookie with an unknown token places nobody.
    let (status, _, _) = w
        .send(get("/", Some("approval_gate_session=forged-0123456789")))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn signing_out_drops_the_cookie() {
    let w = World::new();
    let cookie = signed_in(&w).await;
    let (status, headers, _) = w
        .send(post("/signout", "", Some("same-origin"), Some(&cookie)))
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let set = headers[header::SET_COOKIE].to_str().unwrap();
    assert!(set.starts_with("approval_gate_session=;"), "{set}");
    assert!(set.contains("Max-Age=0"), "{set}");
}
