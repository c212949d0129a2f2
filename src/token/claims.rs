//! [`Claims`]: what an approval token says.

use serde::{Deserialize, Serialize};
use time::{OffsetDateTime, PrimitiveDateTime};

use crate::call::ArgsHash;

/// The payload of an approval token: which call was approved, by whom, until when.
///
/// Serialized as a JSON object with exactly these field names; `args_hash` is 64 lowercase
/// hex digits and `iat`/`exp` are unix seconds, as in any JWT. Other fields in a token's
/// payload are ignored when it is read.
///
/// ```
/// use approval_gate::{ArgsHash, token::Claims};
/// use serde_json::json;
///
/// let claims = Claims {
///     jti: "req-1".into(),
///     run_id: "run-1".into(),
///     call_id: "call-1".into(),
///     tool: "email.send".into(),
///     args_hash: ArgsHash::compute(&json!({"to": "bob@example.com"})).unwrap(),
///     policy_version: "policy-v1".into(),
///     approvers: vec!["alice".into()],
///     iat: 1_767_225_600,
///     exp: 1_767_225_900,
/// };
/// assert_eq!(claims.expires_at().unix_timestamp(), 1_767_225_900);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The approval request's id. A token is single use: the store's claim on this id
    /// enforces it, not the token.
    pub jti: String,
    /// The agent run the approved call belongs to.
    pub run_id: String,
    /// The approved tool call's id within its run.
    pub call_id: String,
    /// The approved tool, for example `email.send`.
    pub tool: String,
    /// The hash of the approved arguments.
    pub args_hash: ArgsHash,
    /// The version (content hash) of the policy the approval was given under.
    pub policy_version: String,
    /// Who approved the call.
    pub approvers: Vec<String>,
    /// When the token was issued, in unix seconds.
    pub iat: i64,
    /// When the token expires, in unix seconds: it is refused from this second on.
    pub exp: i64,
}

impl Claims {
    /// When the token was issued ([`iat`](Claims::iat)); out-of-range values are clamped
    /// to the earliest or latest representable instant.
    pub fn issued_at(&self) -> OffsetDateTime {
        from_unix_clamped(self.iat)
    }

    /// When the token expires ([`exp`](Claims::exp)); out-of-range values are clamped to
    /// the earliest or latest representable instant.
    pub fn expires_at(&self) -> OffsetDateTime {
        from_unix_clamped(self.exp)
    }
}

fn from_unix_clamped(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(secs).unwrap_or_else(|_| {
        if secs < 0 {
            PrimitiveDateTime::MIN.assume_utc()
        } else {
            PrimitiveDateTime::MAX.assume_utc()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::test_support::{args_hash, claims, t0};
    use serde_json::json;

    #[test]
    fn json_uses_the_documented_names() {
        let v = serde_json::to_value(claims()).unwrap();
        assert_eq!(
            v,
            json!({
                "jti": "req-1",
                "run_id": "run-1",
                "call_id": "call-1",
                "tool": "email.send",
                "args_hash": args_hash().to_string(),
                "policy_version": "policy-v1",
                "approvers": ["alice", "bob"],
                "iat": t0().unix_timestamp(),
                "exp": t0().unix_timestamp() + 300,
            })
        );
        let back: Claims = serde_json::from_value(v).unwrap();
        assert_eq!(back, claims());
    }

    #[test]
    fn times_convert_and_clamp() {
        let c = claims();
        assert_eq!(c.issued_at(), t0());
        assert_eq!(c.expires_at(), t0() + time::Duration::seconds(300));
        let far = Claims {
            exp: i64::MAX,
            iat: i64::MIN,
            ..claims()
        };
        assert_eq!(far.expires_at(), PrimitiveDateTime::MAX.assume_utc());
        assert_eq!(far.issued_at(), PrimitiveDateTime::MIN.assume_utc());
    }
}
