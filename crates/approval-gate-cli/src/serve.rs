//! `serve`: the console of `approval-gate-server` over the deployment's gate, knowing
//! people by the bearer tokens (kept as hashes) and/or the trusted proxy of the config.

use std::io::Read as _;

use approval_gate::Approver;
use approval_gate_server::{AppState, Auth, BearerToken, ProxyHeaders, router};
use axum::http::HeaderName;
use sha2::{Digest, Sha256};

use crate::deploy::{Deployment, ProxyConfig, ServeConfig};
use crate::error::CliError;
use crate::output::Out;

/// The address `serve` listens on unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// Builds the console's authentication from the config file's `serve` section.
pub fn auth(config: &ServeConfig) -> Result<Auth, CliError> {
    let mut auth = Auth::new();
    let mut ways = 0;
    for (i, token) in config.tokens.iter().enumerate() {
        let mut approver = Approver::new(&token.id);
        for role in &token.roles {
            approver = approver.with_role(role);
        }
        if let Some(tenant) = &token.tenant {
            approver = approver.with_tenant(tenant);
        }
        let token = BearerToken::from_sha256_hex(&token.sha256, approver).map_err(|e| {
            CliError::usage(
                format!("config file: serve.tokens[{i}].sha256: {e}"),
                "put the hash `approval-gate token-hash` prints, never the token itself",
            )
        })?;
        auth = auth.bearer(token);
        ways += 1;
    }
    match &config.trust_proxy {
        None | Some(ProxyConfig::Enabled(false)) => {}
        Some(ProxyConfig::Enabled(true)) => {
            auth = auth.trust_proxy(ProxyHeaders::default());
            ways += 1;
        }
        Some(ProxyConfig::Headers {
            user,
            groups,
            tenant,
        }) => {
            let mut headers = ProxyHeaders::default();
            let name = |field: &str, value: &str| {
                HeaderName::try_from(value).map_err(|_| {
                    CliError::usage(
                        format!(
                            "config file: serve.trust_proxy.{field}: `{value}` is not a header name"
                        ),
                        "write a lowercase header name such as `x-forwarded-user`",
                    )
                })
            };
            if let Some(user) = user {
                headers.user = name("user", user)?;
            }
            if let Some(groups) = groups {
                headers.groups = name("groups", groups)?;
            }
            if let Some(tenant) = tenant {
                headers.tenant = name("tenant", tenant)?;
            }
            auth = auth.trust_proxy(headers);
            ways += 1;
        }
    }
    if ways == 0 {
        return Err(CliError::usage(
            "the console would know nobody: no bearer tokens and no trusted proxy",
            "add `serve.tokens` or `serve.trust_proxy` to the config file",
        ));
    }
    Ok(auth)
}

/// Runs the console until interrupted.
pub async fn serve(deploy: &Deployment, listen: Option<&str>, out: &Out) -> Result<(), CliError> {
    let auth = auth(&deploy.serve)?;
    let gate = deploy.gate().await?;
    // The notifier runs beside the console when the config names channels.
    let notifier = match deploy.notify.as_ref().filter(|c| !c.channels.is_empty()) {
        Some(config) => Some(crate::notify::notifier(gate.clone(), config)?),
        None => None,
    };
    let slack = match &deploy.serve.slack {
        Some(config) => Some(
            approval_gate_server::SlackActions::new(gate.clone(), config).map_err(|e| {
                CliError::usage(
                    format!("config file: serve.slack: {e}"),
                    "fix the config file's `serve.slack` section",
                )
            })?,
        ),
        None => None,
    };
    let mut state = AppState::new(gate, auth);
    if let Some(role) = &deploy.serve.admin_role {
        state = state.admin_role(role);
    }
    let listen = listen
        .or(deploy.serve.listen.as_deref())
        .unwrap_or(DEFAULT_LISTEN);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| CliError::Failed {
            message: format!("cannot listen on `{listen}`"),
            source: Some(Box::new(e)),
        })?;
    let bound = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| listen.to_owned());
    out.line(&format!(
        "console listening on http://{bound}/ (Ctrl-C stops it)"
    ));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut app = router(state);
    if let Some(slack) = slack {
        out.line("Slack's interactive endpoint at /slack/actions");
        app = app.merge(slack.router());
    }
    let console = axum::serve(listener, app).with_graceful_shutdown({
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        }
    });
    let console = async {
        console.await.map_err(|e| CliError::Failed {
            message: "the console stopped".into(),
            source: Some(Box::new(e)),
        })
    };
    let notifying = async {
        let Some(notifier) = &notifier else {
            return Ok(());
        };
        out.line(&format!("notifier {} delivering", notifier.holder()));
        let mut stopped = stopped.clone();
        crate::notify::run(notifier, async move {
            let _ = stopped.wait_for(|s| *s).await;
        })
        .await
    };
    let interrupted = async {
        let _ = tokio::signal::ctrl_c().await;
        let _ = stop.send(true);
    };
    tokio::select! {
        // A failing console or notifier stops the whole command.
        out = async { tokio::try_join!(console, notifying).map(drop) } => out,
        () = async { interrupted.await; std::future::pending::<()>().await } => Ok(()),
    }
}

/// `token-hash`: reads a bearer token from standard input and prints its SHA-256 (hex),
/// for `serve.tokens` in the config file.
pub fn token_hash(out: &Out) -> Result<(), CliError> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|source| CliError::Io {
            what: "cannot read",
            path: "standard input".into(),
            source,
        })?;
    let token = text.trim();
    if token.chars().count() < 32 {
        return Err(CliError::usage(
            "a bearer token must have at least 32 characters",
            "mint one with `head -c 32 /dev/urandom | base64`",
        ));
    }
    let digest = Sha256::digest(token.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    out.line(&hex);
    Ok(())
}
