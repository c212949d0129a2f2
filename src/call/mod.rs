//! Tool calls: what an agent asks to run, and who asked.

mod canonical;
mod hash;
mod parse;

pub(crate) use canonical::dispose;
pub use canonical::{ArgsError, ArgsLimits, canonical_json};
pub use hash::{ArgsHash, ParseArgsHashError};
pub use parse::parse_args;

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// One tool call that an agent wants to make, with the facts a policy may look at.
///
/// The ids are the host's own: `run_id` names the agent run (a conversation, a job),
/// `call_id` names this call within the run (the model's tool-call id). The args are the
/// JSON arguments exactly as the model produced them.
///
/// A call is immutable once built and cheap to clone: clones share it (a reference count),
/// however large its arguments.
///
/// ```
/// use approval_gate::ToolCall;
/// use serde_json::json;
///
/// let call = ToolCall::new("run-1", "call-1", "email.send", json!({"to": "bob@example.com"}))
///     .with_requester("alice")
///     .with_tenant("acme")
///     .with_role("support");
/// assert_eq!(call.tool(), "email.send");
/// assert_eq!(call.roles(), ["support"]);
/// ```
#[derive(Clone)]
pub struct ToolCall(Arc<Call>);

/// The fields of a [`ToolCall`], shared by its clones; the builder methods copy them on
/// write. The args have an `Arc` of their own, so replacing or copying the other fields of
/// a shared call never copies them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename = "ToolCall")]
struct Call {
    run_id: String,
    call_id: String,
    tool: String,
    #[serde(with = "shared_value")]
    args: Arc<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    requested_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tenant: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "shared_info")]
    tool_info: Option<Arc<Value>>,
}

/// (De)serializes an `Arc<Value>` as the value itself, without serde's `rc` feature.
mod shared_value {
    use std::sync::Arc;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use serde_json::Value;

    pub(super) fn serialize<S: Serializer>(value: &Arc<Value>, s: S) -> Result<S::Ok, S::Error> {
        Value::serialize(value, s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<Value>, D::Error> {
        Value::deserialize(d).map(Arc::new)
    }
}

/// (De)serializes an `Option<Arc<Value>>` as the value itself, or nothing.
mod shared_info {
    use std::sync::Arc;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use serde_json::Value;

    pub(super) fn serialize<S: Serializer>(
        value: &Option<Arc<Value>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        value.as_deref().serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Arc<Value>>, D::Error> {
        Option::<Value>::deserialize(d).map(|v| v.map(Arc::new))
    }
}

impl Serialize for ToolCall {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for ToolCall {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Call::deserialize(d).map(|call| ToolCall(Arc::new(call)))
    }
}

impl PartialEq for ToolCall {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
    }
}

/// The same text as a derived `Debug` of the fields.
impl fmt::Debug for ToolCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &*self.0;
        f.debug_struct("ToolCall")
            .field("run_id", &c.run_id)
            .field("call_id", &c.call_id)
            .field("tool", &c.tool)
            .field("args", &*c.args)
            .field("requested_by", &c.requested_by)
            .field("tenant", &c.tenant)
            .field("roles", &c.roles)
            .field("mode", &c.mode)
            .field("tool_info", &c.tool_info.as_deref())
            .finish()
    }
}

impl ToolCall {
    /// A call of `tool` with `args` in run `run_id`, identified within the run by `call_id`.
    pub fn new(
        run_id: impl Into<String>,
        call_id: impl Into<String>,
        tool: impl Into<String>,
        args: Value,
    ) -> Self {
        ToolCall(Arc::new(Call {
            run_id: run_id.into(),
            call_id: call_id.into(),
            tool: tool.into(),
            args: Arc::new(args),
            requested_by: None,
            tenant: None,
            roles: Vec::new(),
            mode: None,
            tool_info: None,
        }))
    }

    /// The fields, to change: copied first if a clone shares them (never the args).
    fn edit(&mut self) -> &mut Call {
        Arc::make_mut(&mut self.0)
    }

    /// Sets who asked for the call: the end user or service the agent acts for. Kept in
    /// canonical form (see [`canonical_id`](crate::identity::canonical_id)); the policy denies a
    /// call whose requester is no valid id (rule id `tool_call`).
    pub fn with_requester(mut self, who: impl Into<String>) -> Self {
        self.edit().requested_by = Some(crate::identity::into_canonical(who.into()));
        self
    }

    /// Sets the tenant the call belongs to. Kept in canonical form (see
    /// [`canonical_id`](crate::identity::canonical_id)); the policy denies a call whose tenant is
    /// no valid id (rule id `tool_call`).
    pub fn with_tenant(mut self, tenant: impl Into<String>) -> Self {
        self.edit().tenant = Some(crate::identity::into_canonical(tenant.into()));
        self
    }

    /// Adds a role of the one who asked; policy conditions can test it (`context.roles`).
    pub fn with_role(mut self, role: impl Into<String>) -> Self {
        self.edit().roles.push(role.into());
        self
    }

    /// Sets the run's mode (for example `auto` or `plan`); policy conditions can test it.
    pub fn with_mode(mut self, mode: impl Into<String>) -> Self {
        self.edit().mode = Some(mode.into());
        self
    }

    /// Sets what the tool's server says about the tool (a JSON value, usually an
    /// object), for policy conditions to test as `tool_info`, `tool_info.a.b`: an MCP
    /// gateway passes the server's name and the tool's annotations this way
    /// (`{"server": "files", "annotations": {"destructiveHint": true}}`), so a policy can
    /// ask for approval of every tool that declares itself destructive.
    ///
    /// It is the server's word, not a fact: a condition on it holds only where the
    /// server said so, and a server that omits or misstates it gets the policy's other
    /// rules and its default. It is not part of the args hash, and like roles and mode it
    /// is given again at `resume`, whose re-evaluation sees that call's.
    pub fn with_tool_info(mut self, info: Value) -> Self {
        self.edit().tool_info = Some(Arc::new(info));
        self
    }

    /// Replaces the call id, keeping everything else.
    pub(crate) fn with_call_id(mut self, call_id: &str) -> Self {
        call_id.clone_into(&mut self.edit().call_id);
        self
    }

    /// Replaces the arguments, keeping everything else.
    pub fn with_args(mut self, args: Value) -> Self {
        let mut old = std::mem::replace(&mut self.edit().args, Arc::new(args));
        if let Some(old) = Arc::get_mut(&mut old) {
            canonical::dispose(old);
        }
        self
    }

    /// The agent run this call belongs to.
    pub fn run_id(&self) -> &str {
        &self.0.run_id
    }

    /// The call's id within its run.
    pub fn call_id(&self) -> &str {
        &self.0.call_id
    }

    /// The tool's name, for example `email.send`.
    pub fn tool(&self) -> &str {
        &self.0.tool
    }

    /// The JSON arguments.
    pub fn args(&self) -> &Value {
        &self.0.args
    }

    /// Who asked for the call, if the host said: in canonical form when set with
    /// [`with_requester`](Self::with_requester).
    pub fn requester(&self) -> Option<&str> {
        self.0.requested_by.as_deref()
    }

    /// The tenant, if the host said: in canonical form when set with
    /// [`tenant`](Self::tenant).
    pub fn tenant(&self) -> Option<&str> {
        self.0.tenant.as_deref()
    }

    /// The roles of the one who asked.
    pub fn roles(&self) -> &[String] {
        &self.0.roles
    }

    /// The run's mode, if the host said.
    pub fn mode(&self) -> Option<&str> {
        self.0.mode.as_deref()
    }

    /// What the tool's server says about the tool, if the host passed it
    /// ([`with_tool_info`](Self::with_tool_info)).
    pub fn tool_info(&self) -> Option<&Value> {
        self.0.tool_info.as_deref()
    }

    /// The hash of the arguments under the default [`ArgsLimits`].
    pub fn args_hash(&self) -> Result<ArgsHash, ArgsError> {
        ArgsHash::compute(&self.0.args)
    }

    /// Takes the arguments out of the call.
    pub fn into_args(self) -> Value {
        let args = Arc::clone(&self.0.args);
        drop(self);
        Arc::unwrap_or_clone(args)
    }
}

/// Whoever drops the last reference to a call's arguments drops them without deep
/// recursion, so a host that hands in arguments nested far beyond the limits gets
/// [`StopReason::InvalidArgs`](crate::gate::StopReason::InvalidArgs), not a stack overflow where
/// the gate lets go of the call.
impl Drop for Call {
    fn drop(&mut self) {
        if let Some(args) = Arc::get_mut(&mut self.args) {
            canonical::dispose(args);
        }
    }
}

/// Asserts that `actual` is the JSON text `want`, in a way that holds whether or not
/// `serde_json`'s `preserve_order` is on (a host's other dependencies can switch it on):
/// the same value (objects compared ignoring key order), written in the same format (the
/// same length: compact, with the same escapes and numbers), and the very same text when
/// objects sort their keys, as they do without `preserve_order`.
#[cfg(test)]
pub(crate) fn assert_same_json(actual: &str, want: &str) {
    let parse = |text: &str| serde_json::from_str::<serde_json::Value>(text).unwrap();
    assert_eq!(parse(actual), parse(want), "{actual}");
    assert_eq!(actual.len(), want.len(), "{actual}");
    let sorts_keys = serde_json::json!({"b": 0, "a": 0})
        .as_object()
        .is_some_and(|m| m.keys().next().is_some_and(|k| k == "a"));
    if sorts_keys {
        assert_eq!(actual, want);
    }
}

/// A call with every field set, for the tests of this module and of requests.
#[cfg(test)]
pub(crate) fn every_field() -> ToolCall {
    ToolCall::new(
        "run-1",
        "call-1",
        "payments.refund",
        serde_json::json!({"amount": 500, "to": "acct-1", "nested": {"b": [1, 2.5, null], "a": "é\"\n"}}),
    )
    .with_requester("bob")
    .with_tenant("acme")
    .with_role("support")
    .with_role("ops")
    .with_mode("auto")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The JSON of a call with every field set, as written before its fields were shared.
    const ALL_FIELDS: &str = r#"{"run_id":"run-1","call_id":"call-1","tool":"payments.refund","args":{"amount":500,"nested":{"a":"é\"\n","b":[1,2.5,null]},"to":"acct-1"},"requested_by":"bob","tenant":"acme","roles":["support","ops"],"mode":"auto"}"#;

    use super::every_field;

    fn call() -> ToolCall {
        every_field()
    }

    #[test]
    fn the_json_form_is_unchanged() {
        crate::call::assert_same_json(&serde_json::to_string(&call()).unwrap(), ALL_FIELDS);
        let back: ToolCall = serde_json::from_str(ALL_FIELDS).unwrap();
        assert_eq!(back, call());
        let bare = ToolCall::new("r", "c", "t", json!([1]));
        let text = serde_json::to_string(&bare).unwrap();
        assert_eq!(
            text,
            r#"{"run_id":"r","call_id":"c","tool":"t","args":[1]}"#
        );
        assert_eq!(serde_json::from_str::<ToolCall>(&text).unwrap(), bare);
    }

    #[test]
    fn changing_a_clone_leaves_the_original_as_it_was() {
        let original = call();
        let copy = original.clone();
        assert!(
            std::ptr::eq(original.args(), copy.args()),
            "clones share the args"
        );
        let edited = copy
            .clone()
            .with_args(json!({"amount": 5}))
            .with_role("finance");
        assert_eq!(edited.args(), &json!({"amount": 5}));
        assert_eq!(edited.roles(), ["support", "ops", "finance"]);
        assert_eq!(edited.requester(), Some("bob"));
        assert_eq!(original, copy);
        assert_eq!(original.roles(), ["support", "ops"]);
        assert_eq!(copy.args()["amount"], 500);
        assert_eq!(copy.into_args()["to"], "acct-1");
        assert_eq!(original.into_args()["amount"], 500);
    }

    #[test]
    fn dropping_arguments_nested_far_beyond_the_limits_does_not_overflow_the_stack() {
        let handle = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(|| {
                let deep = || {
                    let mut v = json!(1);
                    for i in 0..100_000 {
                        v = if i % 2 == 0 {
                            Value::Array(vec![v])
                        } else {
                            Value::Object([("k".to_owned(), v)].into_iter().collect())
                        };
                    }
                    v
                };
                let call = ToolCall::new("r", "c", "t", deep());
                assert!(call.args_hash().is_err());
                let copy = call.clone();
                drop(call);
                let replaced = copy.with_args(deep()).with_args(json!({}));
                let back = ToolCall::new("r", "c", "t", deep()).into_args();
                drop(replaced);
                drop(ToolCall::new("r", "c", "t", back));
            })
            .unwrap();
        handle.join().unwrap();
    }

    #[test]
    fn debug_shows_every_field() {
        let text = format!("{:?}", call());
        assert!(text.starts_with("ToolCall { run_id: \"run-1\", call_id: \"call-1\""));
        assert!(
            text.ends_with(
                "roles: [\"support\", \"ops\"], mode: Some(\"auto\"), tool_info: None }"
            )
        );
    }
}
