#![doc = include_str!("../README.md")]
//!
//! # The parts
//!
//! - [`GatedServer`] wraps any [`rmcp::ServerHandler`]: every `tools/call` goes through
//!   the gate ([`Gated::call_or_resume`](approval_gate::Gated::call_or_resume)), every
//!   other request passes through.
//! - [`Upstream`] is a [`rmcp::ServerHandler`] that forwards `tools/list` and
//!   `tools/call` to another MCP server, reached as an rmcp client; with
//!   [`Upstream::spawn`], a child process on stdio, started again when it exits; with
//!   [`Upstream::connect`], a server over streamable HTTP (`http://` only).
//!   `GatedServer<Upstream>` is the gateway that `approval-gate mcp` runs.
//! - [`outcome_unknown`] is the error a handler gives for a call it sent on and lost:
//!   the gate records it in doubt and never sends it again.
//!
//! What a call's outcome becomes on the wire is in one place (the crate's `translate`
//! module): the inner tool's result, unchanged, when it ran; an `isError` result with a
//! text for the model when it waits for a person or will not run; a JSON-RPC error when
//! the gate itself failed (and then nothing ran).
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod doubt;
mod in_client;
mod server;
mod translate;
mod upstream;

/// The `rmcp` crate (the official Rust MCP SDK) at the version this crate uses, for the
/// host's own handlers, transports and clients.
pub use rmcp;

pub use doubt::{is_outcome_unknown, outcome_unknown};
pub use in_client::InClientApproval;
pub use server::{DEFAULT_CALL_TIMEOUT, GatedServer};
pub use upstream::{Upstream, UpstreamError};
