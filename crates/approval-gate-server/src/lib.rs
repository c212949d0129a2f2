//! The approval-gate console and its JSON API: an axum [`Router`] over a [`Gate`], where
//! people decide approval requests with the same rules as the library's desk.
//!
//! ```no_run
//! use approval_gate::{Gate, Key, Keyring, Policy};
//! use approval_gate_server::{AppState, Auth, ProxyHeaders, router};
//!
//! # async fn serve() -> Result<(), Box<dyn std::error::Error>> {
//! let policy = Policy::from_yaml_str("approvals:\n  required_for: [email.send]\n")?;
//! let gate = Gate::builder(policy, Keyring::new(Key::generate("k1")?)).build();
//! // Who decides comes from a trusted proxy's headers, never from a form.
//! let app = router(AppState::new(gate, Auth::new().trust_proxy(ProxyHeaders::default())));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```
//!
//! Routes (all in [`router`]):
//!
//! | route | what |
//! | --- | --- |
//! | `GET /` | the queue: pending requests the person may see, oldest first, 50 a page (`?tenant=` narrows to one tenant) |
//! | `GET /requests/{id}` | a request: preview, redacted arguments, args hash, rules, tier, votes, expiry, history |
//! | `GET /runs/{run_id}` | a run's trail: every record of the run the person may see, oldest first, 200 a page |
//! | `POST /requests/{id}/approve` | approve (form field `edit`: edited arguments as JSON; or `grant_scope`, `grant_minutes`, `grant_max_uses`, `grant_same_args`: a standing grant) |
//! | `POST /requests/{id}/deny` | deny (form field `feedback`) |
//! | `POST /requests/{id}/cancel` | cancel (form field `reason`) |
//! | `GET /grants`, `POST /grants/{id}/revoke` | live standing grants of the person's tenant; revoke |
//! | `GET /controls`, `POST /controls/kill-switch`, `POST /controls/read-only` | run controls (administrators) |
//! | `GET /stats` | timeout rate, time to decision, oldest pending (administrators) |
//! | `GET /events` | server-sent events: `queue` each time the person's queue changes |
//! | `GET /signin`, `POST /signin`, `POST /signout` | a browser signs in with a bearer token (kept in an `HttpOnly`, `SameSite=Strict` cookie) and out |
//! | `GET /api/v1/requests`, `GET /api/v1/requests/{id}` | the same as JSON |
//! | `GET /api/v1/runs/{run_id}/trail` | a run's trail as JSON |
//! | `POST /api/v1/requests/{id}/approve`, `…/deny`, `…/cancel` | the same actions with JSON bodies |
//!
//! The [`notify`] module holds the notifier: it tells people of requests from the store's
//! trail, through signed webhooks, Slack or channels of the host's own; reminds,
//! escalates and alerts on timeout spikes.
//!
//! Slack's interactive endpoint, `POST /slack/actions` (the Approve and Deny buttons of
//! the notifier's [`Slack`](notify::Slack) messages), is a router of its own,
//! [`SlackActions::router`], since it knows callers by Slack's signature rather than by
//! [`Auth`]: merge it into the host's app, or serve it apart.
//!
//! Who sees what: a person bound to a tenant sees that tenant's requests and records
//! only (`?tenant=` names another: an empty list, not an error); one of the console's
//! administrators without a tenant sees every tenant's, with a tenant column; anyone
//! else without a tenant sees what has no tenant, as the desk shows it.
//!
//! Safe by construction: every value from the model is escaped by the templates
//! (askama, compiled at build time); a state-changing request made with a proxy's
//! identity must come from the console's own pages (Fetch Metadata, else `Origin`);
//! every answer carries a content security policy without inline script, and refuses
//! framing; the decisions work as plain forms without JavaScript, which only adds live
//! updates, the countdown and the JSON editor's checks.
#![forbid(unsafe_code)]

mod act;
mod admin;
mod api;
mod auth;
mod error;
mod guard;
mod live;
pub mod notify;
mod pages;
mod runs;
mod signin;
mod slack;
mod view;

pub use auth::{Auth, BearerToken, ProxyHeaders, TokenConfigError};
pub use error::{ApiError, ConsoleError};
pub use slack::{SLACK_MAX_SKEW_SECONDS, SlackActions, SlackConfig, SlackConfigError, SlackUser};
pub use view::{HistoryLine, RequestView, TrailLine};

use approval_gate::Gate;
use axum::Router;
use axum::routing::{get, post};

/// What the console's handlers share: the gate (cheap to clone) and how callers are
/// known.
#[derive(Debug, Clone)]
pub struct AppState {
    gate: Gate,
    auth: std::sync::Arc<Auth>,
    admin_role: std::sync::Arc<str>,
}

impl AppState {
    /// The console of `gate`, knowing callers by `auth`. Its administrators (who see
    /// the controls and the figures of every tenant) hold the role `approval-admin`.
    pub fn new(gate: Gate, auth: Auth) -> Self {
        AppState {
            gate,
            auth: std::sync::Arc::new(auth),
            admin_role: "approval-admin".into(),
        }
    }

    /// Names the role the console's administrators hold.
    pub fn admin_role(mut self, role: &str) -> Self {
        self.admin_role = role.into();
        self
    }
}

/// Every route of the console and its API, in one place; mount it in a host's app or
/// serve it alone.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(pages::queue))
        .route("/requests/{id}", get(pages::request))
        .route("/requests/{id}/approve", post(pages::approve))
        .route("/requests/{id}/deny", post(pages::deny))
        .route("/requests/{id}/cancel", post(pages::cancel))
        .route("/runs/{run_id}", get(runs::run))
        .route("/grants", get(admin::grants))
        .route("/grants/{id}/revoke", post(admin::revoke))
        .route("/controls", get(admin::controls))
        .route("/controls/kill-switch", post(admin::kill_switch))
        .route("/controls/read-only", post(admin::read_only))
        .route("/stats", get(admin::stats))
        .route("/events", get(live::events))
        .route("/signin", get(signin::form).post(signin::sign_in))
        .route("/signout", post(signin::sign_out))
        .route("/assets/console.css", get(pages::stylesheet))
        .route("/assets/console.js", get(pages::script))
        .route("/api/v1/requests", get(api::list))
        .route("/api/v1/requests/{id}", get(api::show))
        .route("/api/v1/requests/{id}/approve", post(api::approve))
        .route("/api/v1/requests/{id}/deny", post(api::deny))
        .route("/api/v1/requests/{id}/cancel", post(api::cancel))
        .route("/api/v1/runs/{run_id}/trail", get(runs::trail))
        .layer(axum::middleware::from_fn(guard::security_headers))
        .with_state(state)
}
