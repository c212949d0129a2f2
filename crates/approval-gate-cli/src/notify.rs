//! `notify`: the notifier of `approval-gate-server` over the deployment's gate, run on its
//! own (`notify run`) or inside `serve`; and where it stands (`notify status`).

use approval_gate::Gate;
use approval_gate_server::notify::{self, Notifier, NotifyConfig};
use serde_json::json;

use crate::deploy::Deployment;
use crate::error::CliError;
use crate::output::{Format, Out, cell, rfc3339, short};

/// What `notify` does.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum NotifyCommand {
    /// Deliver notices to the config file's `notify.channels` until interrupted: every
    /// event the channels take, reminders, escalations and timeout-spike alerts.
    Run,
    /// Show each channel's place in the trail and the deliveries given up on.
    Status,
}

/// Runs `command`.
pub async fn notify(
    deploy: &Deployment,
    command: &NotifyCommand,
    out: &Out,
) -> Result<(), CliError> {
    match command {
        NotifyCommand::Run => {
            let config = config(deploy)?;
            let notifier = notifier(deploy.gate().await?, config)?;
            // A first pass takes each channel's place in the trail (a new channel starts
            // at its end), so that everything from this line on is delivered.
            notifier.step().await.map_err(|e| CliError::Failed {
                message: "the notifier could not start".into(),
                source: Some(Box::new(e)),
            })?;
            out.line(&format!(
                "notifier {} delivering (Ctrl-C stops it)",
                notifier.holder()
            ));
            run(&notifier, async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
        }
        NotifyCommand::Status => status(deploy, out).await,
    }
}

/// The config file's `notify` section, with at least one channel.
fn config(deploy: &Deployment) -> Result<&NotifyConfig, CliError> {
    deploy
        .notify
        .as_ref()
        .filter(|c| !c.channels.is_empty())
        .ok_or_else(|| {
            CliError::usage(
                "the config file names no notify channels",
                "add `notify.channels` to the config file (see the README's Notifications)",
            )
        })
}

/// A notifier over `gate` with `config`.
pub fn notifier(gate: Gate, config: &NotifyConfig) -> Result<Notifier, CliError> {
    Notifier::new(gate, config).map_err(|e| {
        CliError::usage(
            format!("config file: notify: {e}"),
            "fix the config file's `notify` section",
        )
    })
}

/// Runs `notifier` until `stop`. A failure (the store unreachable, say) is printed on
/// standard error and the notifier starts again after a pause: it never takes the
/// console down with it.
pub async fn run(
    notifier: &Notifier,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), CliError> {
    let mut stop = std::pin::pin!(stop);
    loop {
        match notifier.run(stop.as_mut()).await {
            Ok(()) => return Ok(()),
            Err(e) => {
                let mut line = format!("notifier: {e}");
                let mut source = std::error::Error::source(&e);
                while let Some(cause) = source {
                    line.push_str(&format!(": {cause}"));
                    source = cause.source();
                }
                eprintln!("{line}; starting again in {} s", PAUSE.as_secs());
            }
        }
        tokio::select! {
            () = tokio::time::sleep(PAUSE) => {}
            () = stop.as_mut() => return Ok(()),
        }
    }
}

/// How long the notifier rests after a failure before it starts again.
const PAUSE: std::time::Duration = std::time::Duration::from_secs(10);

/// `notify status`.
async fn status(deploy: &Deployment, out: &Out) -> Result<(), CliError> {
    let gate = deploy.reader().await?;
    let status = notify::status(&**gate.store()).await?;
    if out.format() == Format::Json {
        for c in &status.channels {
            out.json(&json!({
                "channel": c.channel,
                "after_seq": c.cursor.after_seq,
                "behind": c.behind,
                "holder": c.cursor.holder,
                "lease_until": rfc3339(c.cursor.lease_until),
            }));
        }
        for f in &status.failed {
            out.json(&json!({
                "failed_delivery": {
                    "at": rfc3339(f.at),
                    "channel": f.channel,
                    "record_seq": f.record_seq,
                    "record_event": f.record_event,
                    "attempts": f.attempts,
                    "error": f.error,
                }
            }));
        }
        return Ok(());
    }
    if status.channels.is_empty() {
        out.line("no notifier has run on this store");
    } else {
        let now = gate.now();
        let rows: Vec<Vec<String>> = status
            .channels
            .iter()
            .map(|c| {
                let held = (c.cursor.lease_until > now).then_some(c.cursor.holder.as_str());
                vec![
                    c.channel.clone(),
                    c.cursor.after_seq.to_string(),
                    if c.behind >= 1000 {
                        "1000+".into()
                    } else {
                        c.behind.to_string()
                    },
                    cell(held),
                ]
            })
            .collect();
        out.table(&["CHANNEL", "AFTER SEQ", "BEHIND", "HELD BY"], &rows);
    }
    if !status.failed.is_empty() {
        out.line("");
        out.line(&format!("{} deliveries given up on:", status.failed.len()));
        let rows: Vec<Vec<String>> = status
            .failed
            .iter()
            .map(|f| {
                vec![
                    rfc3339(f.at),
                    f.channel.clone(),
                    f.record_seq.to_string(),
                    f.record_event.clone(),
                    f.attempts.to_string(),
                    short(&f.error, 60),
                ]
            })
            .collect();
        out.table(
            &["AT", "CHANNEL", "SEQ", "EVENT", "ATTEMPTS", "ERROR"],
            &rows,
        );
    }
    Ok(())
}
