//! The console in a real browser: Debian's `chromium`, headless, driven over the Chrome
//! DevTools Protocol. The console sits behind a stand-in for the trusted proxy, which
//! adds the signed-in person's headers to every request, as a real proxy would after
//! its login. Where no `chromium` is installed, the test says it was skipped and passes.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use approval_gate::serde_json::{Value, json};
use approval_gate::{
    Execution, Gate, GateOutcome, Key, Keyring, ManualClock, Policy, RequestId, RequestState,
    ToolCall,
};
use approval_gate_server::{AppState, Auth, ProxyHeaders, router};
use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{Html, Response};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

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

/// A hang guard, not a timing assertion: a browser that stops answering fails the test
/// instead of stalling CI.
const GUARD: Duration = Duration::from_secs(60);

fn chromium() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("APPROVAL_GATE_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// One page of a headless browser, spoken to over the DevTools Protocol.
struct Page {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    next_id: u64,
    events: Vec<String>,
    _browser: tokio::process::Child,
    _dir: TempDir,
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Page {
    async fn open(chromium: &Path) -> Page {
        let dir = std::env::temp_dir().join(format!("approval-gate-browser-{}", RequestId::new()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut browser = tokio::process::Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", dir.display()))
            .arg("about:blank")
            .stderr(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromium starts");
        let mut lines = BufReader::new(browser.stderr.take().unwrap()).lines();
        // Guarded: a browser that never says where it listens fails the test (and is
        // killed on drop) instead of stalling CI.
        let browser_ws = tokio::time::timeout(GUARD, async {
            loop {
                let line = lines
                    .next_line()
                    .await
                    .unwrap()
                    .expect("chromium says where DevTools listen");
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    break url.trim().to_owned();
                }
            }
        })
        .await
        .expect("chromium says where DevTools listen, in time");
        // Keep reading what chromium prints, so that it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let (mut control, _) =
            tokio::time::timeout(GUARD, tokio_tungstenite::connect_async(&browser_ws))
                .await
                .expect("DevTools answer in time")
                .unwrap();
        let create =
            json!({"id": 1, "method": "Target.createTarget", "params": {"url": "about:blank"}});
        control
            .send(Message::text(create.to_string()))
            .await
            .unwrap();
        let target = tokio::time::timeout(GUARD, async {
            loop {
                let msg = control.next().await.unwrap().unwrap();
                let v: Value = approval_gate::serde_json::from_str(msg.to_text().unwrap()).unwrap();
                if v["id"] == 1 {
                    break v["result"]["targetId"].as_str().unwrap().to_owned();
                }
            }
        })
        .await
        .expect("DevTools make a page in time");
        let base = browser_ws.split("/devtools/").next().unwrap();
        let (ws, _) = tokio::time::timeout(
            GUARD,
            tokio_tungstenite::connect_async(format!("{base}/devtools/page/{target}")),
        )
        .await
        .expect("the page's DevTools answer in time")
        .unwrap();
        let mut page = Page {
            ws,
            next_id: 1,
            events: Vec::new(),
            _browser: browser,
            _dir: TempDir(dir),
        };
        page.call("Page.enable", json!({})).await;
        page.call("Runtime.enable", json!({})).await;
        page
    }

    /// Sends a command and returns its result, keeping the events that come meanwhile.
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let msg = json!({"id": id, "method": method, "params": params});
        self.ws.send(Message::text(msg.to_string())).await.unwrap();
        loop {
            let msg = tokio::time::timeout(GUARD, self.ws.next())
                .await
                .expect("the browser answers")
                .unwrap()
                .unwrap();
            let Ok(text) = msg.to_text() else { continue };
            let v: Value = approval_gate::serde_json::from_str(text).unwrap();
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
            if let Some(event) = v["method"].as_str() {
                self.events.push(event.to_owned());
            }
        }
    }

    /// Waits for the next page load.
    async fn loaded(&mut self) {
        loop {
            if let Some(i) = self.events.iter().position(|e| e == "Page.loadEventFired") {
                self.events.drain(..=i);
                return;
            }
            let msg = tokio::time::timeout(GUARD, self.ws.next())
                .await
                .expect("the page loads")
                .unwrap()
                .unwrap();
            let Ok(text) = msg.to_text() else { continue };
            let v: Value = approval_gate::serde_json::from_str(text).unwrap();
            if let Some(event) = v["method"].as_str() {
                self.events.push(event.to_owned());
            }
        }
    }

    async fn goto(&mut self, url: &str) {
        self.events.clear();
        self.call("Page.navigate", json!({"url": url})).await;
        self.loaded().await;
    }

    async fn eval(&mut self, expression: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true}),
            )
            .await;
        r["result"]["value"].clone()
    }

    /// Waits, without a timer, until `text` is in the page: a promise in the page
    /// resolves when a change to the document brings it (the hang guard stops a wait
    /// that never ends).
    async fn wait_for_text(&mut self, text: &str) {
        let text = approval_gate::serde_json::to_string(text).unwrap();
        let expression = format!(
            "new Promise((resolve) => {{ \
               const ok = () => document.body.innerText.includes({text}); \
               if (ok()) return resolve(true); \
               const watch = new MutationObserver(() => {{ if (ok()) {{ watch.disconnect(); resolve(true); }} }}); \
               watch.observe(document.body, {{ childList: true, subtree: true, characterData: true }}); \
             }})"
        );
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "awaitPromise": true, "returnByValue": true}),
            )
            .await;
        assert_eq!(r["result"]["value"], json!(true), "{r}");
    }

    async fn text(&mut self) -> String {
        self.eval("document.body.innerText")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    async fn html(&mut self) -> String {
        self.eval("document.documentElement.outerHTML")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Clicks the element `selector` names and waits for the page it leads to.
    async fn click(&mut self, selector: &str) {
        self.events.clear();
        let clicked = self
            .eval(&format!("(() => {{ const e = document.querySelector({selector:?}); if (!e) return false; e.click(); return true; }})()"))
            .await;
        assert_eq!(clicked, json!(true), "nothing matches `{selector}`");
        self.loaded().await;
    }

    /// Saves a screenshot to `path` (for the README), when asked to.
    async fn screenshot(&mut self, name: &str) {
        let Ok(dir) = std::env::var("APPROVAL_GATE_SCREENSHOTS") else {
            return;
        };
        use base64::Engine;
        let shot = self
            .call("Page.captureScreenshot", json!({"format": "png"}))
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        std::fs::write(Path::new(&dir).join(name), png).unwrap();
    }
}

/// Who the stand-in proxy says is signed in.
#[derive(Clone, Default)]
struct SignedIn(Arc<Mutex<String>>);

impl SignedIn {
    fn set(&self, user: &str) {
        *self.0.lock().unwrap() = user.to_owned();
    }
}

async fn serve(app: axum::Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_decides_in_a_real_browser() {
    let Some(chromium) = chromium() else {
        eprintln!("skipped: no chromium installed (set APPROVAL_GATE_CHROMIUM to its path)");
        return;
    };
    let gate = Gate::builder(
        Policy::from_yaml_str(POLICY).unwrap(),
        Keyring::new(Key::new("k1", [5u8; 32]).unwrap()),
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
    let signed_in = SignedIn::default();
    signed_in.set("ann");
    let who = signed_in.clone();
    let proxy = move |mut request: Request, next: Next| {
        let who = who.clone();
        async move {
            let user = who.0.lock().unwrap().clone();
            let headers = request.headers_mut();
            headers.insert("x-forwarded-user", HeaderValue::from_str(&user).unwrap());
            headers.insert("x-forwarded-tenant", HeaderValue::from_static("acme"));
            Ok::<Response, std::convert::Infallible>(next.run(request).await)
        }
    };
    let console = router(AppState::new(
        gate.clone(),
        Auth::new().trust_proxy(ProxyHeaders::default()),
    ))
    .layer(axum::middleware::from_fn(proxy));
    let base = serve(console).await;
    let mut page = Page::open(&chromium).await;

    let file = |call_id: &str, subject: &str| {
        ToolCall::new(
            "run-1",
            call_id,
            "email.send",
            json!({"to": "bob@example.com", "subject": subject, "api_key": "sk-SECRET-42"}),
        )
        .with_requester("bob")
        .with_tenant("acme")
    };

    // The agent files a request; it is in the queue.
    let call = file("c1", "Your refund");
    let id = match tool.call(call.clone()).await.unwrap() {
        GateOutcome::Pending(p) => p.request_id,
        other => panic!("{}", other.name()),
    };
    page.goto(&format!("{base}/")).await;
    assert!(
        page.text()
            .await
            .contains("mail to bob@example.com: Your refund")
    );
    page.screenshot("queue.png").await;

    // The request page: redacted, escaped; approving runs the tool once.
    page.click(&format!("a[href='/requests/{id}']")).await;
    assert!(page.text().await.contains("[redacted]"));
    assert!(
        !page.html().await.contains("sk-SECRET-42"),
        "a redacted secret is in the page"
    );
    page.screenshot("request.png").await;
    page.click("button[name=approve]").await;
    assert!(page.text().await.contains("approved"));
    assert!(
        tool.resume(id, call.clone())
            .await
            .unwrap()
            .executed()
            .is_some()
    );
    assert!(tool.resume(id, call).await.unwrap().stopped().is_some());
    assert_eq!(ran.lock().unwrap().len(), 1);

    // A preview holding a script shows as text, and no script runs.
    let script = file("c2", "<script>window.pwned = 1</script>");
    let sid = tool
        .call(script)
        .await
        .unwrap()
        .pending()
        .unwrap()
        .request_id;
    page.goto(&format!("{base}/requests/{sid}")).await;
    assert!(
        page.text()
            .await
            .contains("<script>window.pwned = 1</script>")
    );
    assert_eq!(page.eval("typeof window.pwned").await, json!("undefined"));

    // The requester's own approval is refused with a message, and nothing changes.
    signed_in.set("bob");
    page.goto(&format!("{base}/requests/{sid}")).await;
    page.click("button[name=approve]").await;
    assert!(
        page.text().await.contains("cannot approve"),
        "{}",
        page.text().await
    );
    assert_eq!(
        gate.desk().show(sid).await.unwrap().stored_state(),
        RequestState::Pending
    );

    // A page on another origin that auto-submits an approve form gets 403.
    signed_in.set("ann");
    let evil_page = format!(
        "<!doctype html><form method=post action='{base}/requests/{sid}/approve'></form>\
         <script>document.forms[0].submit()</script>"
    );
    let evil = serve(axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let html = evil_page.clone();
            async move { Html(html) }
        }),
    ))
    .await;
    page.goto(&format!("{evil}/")).await;
    if page
        .eval("location.href")
        .await
        .as_str()
        .is_some_and(|h| h.starts_with(&evil))
    {
        page.loaded().await;
    }
    assert!(
        page.text().await.contains("did not come from the console"),
        "{}",
        page.text().await
    );
    assert_eq!(
        gate.desk().show(sid).await.unwrap().stored_state(),
        RequestState::Pending
    );

    // A quorum of two shows 1 of 2 after the first approver.
    let wire = ToolCall::new("run-1", "c3", "payments.wire", json!({"amount": 10}))
        .with_requester("bob")
        .with_tenant("acme");
    let wid = tool.call(wire).await.unwrap().pending().unwrap().request_id;
    page.goto(&format!("{base}/requests/{wid}")).await;
    page.click("button[name=approve]").await;
    assert!(
        page.text().await.contains("1 of 2"),
        "{}",
        page.text().await
    );

    // Deny with feedback: the agent sees it.
    let denied = file("c4", "Another one");
    let did = tool
        .call(denied.clone())
        .await
        .unwrap()
        .pending()
        .unwrap()
        .request_id;
    page.goto(&format!("{base}/requests/{did}")).await;
    page.eval("document.querySelector('input[name=feedback]').value = 'use the template'")
        .await;
    page.click("button[name=deny]").await;
    let outcome = tool.resume(did, denied).await.unwrap();
    assert!(
        outcome
            .stopped()
            .unwrap()
            .message()
            .contains("use the template"),
        "{}",
        outcome.stopped().unwrap().message()
    );

    // A request filed while the queue is open appears without a reload.
    page.goto(&format!("{base}/")).await;
    assert!(!page.text().await.contains("Quarterly numbers"));
    page.eval("window.sameDocument = true").await;
    let later = file("c5", "Quarterly numbers");
    let lid = tool
        .call(later.clone())
        .await
        .unwrap()
        .pending()
        .unwrap()
        .request_id;
    page.wait_for_text("mail to bob@example.com: Quarterly numbers")
        .await;
    assert_eq!(page.eval("window.sameDocument").await, json!(true));

    // The JSON editor refuses invalid JSON before it is sent, and says what changed.
    page.goto(&format!("{base}/requests/{lid}")).await;
    let set_edit = |json: &str| {
        format!(
            "(() => {{ const e = document.querySelector('textarea[name=edit]'); \
             e.value = {}; e.dispatchEvent(new Event('input')); \
             return [document.getElementById('edit-status').textContent, \
                     document.querySelector('button[name=approve-edited]').disabled]; }})()",
            approval_gate::serde_json::to_string(json).unwrap()
        )
    };
    let invalid = page.eval(&set_edit("{\"to\": ")).await;
    assert!(
        invalid[0].as_str().unwrap().starts_with("Not valid JSON"),
        "{invalid}"
    );
    assert_eq!(invalid[1], json!(true));
    let edited =
        r#"{"to": "carol@example.com", "subject": "Quarterly numbers", "api_key": "[redacted]"}"#;
    let valid = page.eval(&set_edit(edited)).await;
    assert_eq!(valid[0], json!("Changes: to"), "{valid}");
    assert_eq!(valid[1], json!(false));

    // Approved with the edit, the executor gets the edited arguments, and the secret the
    // person never saw is the filed one, not the placeholder.
    page.click("button[name=approve-edited]").await;
    assert!(
        page.text().await.contains("approved"),
        "{}",
        page.text().await
    );
    assert!(tool.resume(lid, later).await.unwrap().executed().is_some());
    let last = ran.lock().unwrap().last().cloned().unwrap();
    assert_eq!(last["to"], json!("carol@example.com"));
    assert_eq!(last["api_key"], json!("sk-SECRET-42"));
}
