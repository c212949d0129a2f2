#![doc = include_str!("../README.md")]
//!
//! # The parts
//!
//! - [`GatedDriver`] drives rig's serializable [`AgentRun`](rig_agent::AgentRun) and runs
//!   every tool call through the gate: a call that waits for a person gives back a
//!   [`PendingRun`] (the saved run and the request id, serializable), and
//!   [`GatedDriver::resume`] runs the tool through
//!   [`Gated::resume`](approval_gate::Gated::resume) once a person approved it. This is
//!   the one that binds execution to the approval.
//! - [`GateHook`] is a rig [`AgentHook`](rig_agent::AgentHook) for agents run with rig's
//!   own loop: it stops the run at `approval_required` (the reason names the request;
//!   [`pending_request`] reads it back) and turns a denial into a message to the model.
//!   A hook decides but cannot bind execution to the approval token: the tool rig then
//!   runs is rig's, not run through `Gated::resume`. It is for convenience.
//!
//! # Versions
//!
//! Built on `rig-core` and `rig-agent` 0.44.0, pinned exactly (`=0.44.0`): rig 0.46 needs
//! rustc 1.97.1, and this workspace builds on rustc 1.95. Re-exported as
//! [`rig_core`] and [`rig_agent`], so hosts use the matching version. No default features:
//! no HTTP client, no TLS.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod driver;
mod hook;
mod translate;

/// The `rig-agent` crate (rig's agent runtime: `Agent`, `AgentRun`, hooks) at the version
/// this crate uses.
pub use rig_agent;
/// The `rig-core` crate (rig's models, messages and tools) at the version this crate uses.
pub use rig_core;

pub use driver::{DriveError, DriveOutcome, GatedDriver, PendingRun, StoppedRun};
pub use hook::GateHook;
pub use translate::pending_request;
