//! Who is deciding: established by authentication, never read from a form or a body.

use approval_gate::Approver;
use approval_gate::desk::Desk;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, header};
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::error::ConsoleError;

/// How the console knows who is deciding. A request it cannot place gets 401.
///
/// Two ways, either or both:
///
/// - **A trusted reverse proxy** that authenticates people and passes who they are in
///   headers ([`ProxyHeaders`]). Trust it only when every request reaches the console
///   through that proxy, and the proxy removes these headers from what clients send.
/// - **Bearer tokens** listed in the configuration, each kept as its SHA-256 hash and
///   mapped to one [`Approver`] ([`BearerToken`]), for bots and other UIs; a person in
///   a browser signs in with theirs once (`/signin`), and the browser keeps it in an
///   `HttpOnly`, `SameSite=Strict` cookie until they sign out.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    proxy: Option<ProxyHeaders>,
    tokens: Vec<BearerToken>,
}

impl Auth {
    /// Nobody is known: every request gets 401 until a way is added.
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts a reverse proxy's headers.
    pub fn trust_proxy(mut self, headers: ProxyHeaders) -> Self {
        self.proxy = Some(headers);
        self
    }

    /// Accepts a bearer token.
    pub fn bearer(mut self, token: BearerToken) -> Self {
        self.tokens.push(token);
        self
    }

    /// The caller of a request with `headers`, if it can be placed.
    pub(crate) fn caller(&self, headers: &HeaderMap) -> Option<Caller> {
        if let Some(value) = headers.get(header::AUTHORIZATION) {
            let presented = value.to_str().ok()?.strip_prefix("Bearer ")?.trim();
            return Some(Caller {
                approver: self.token_holder(presented)?.clone(),
                by: Via::Bearer,
            });
        }
        if let Some(presented) = session_cookie(headers) {
            return Some(Caller {
                approver: self.token_holder(presented)?.clone(),
                by: Via::Session,
            });
        }
        let proxy = self.proxy.as_ref()?;
        let user = header_text(headers, &proxy.user)?;
        let mut approver = Approver::new(user);
        if let Some(groups) = header_text(headers, &proxy.groups) {
            for role in groups.split(',').map(str::trim).filter(|r| !r.is_empty()) {
                approver = approver.with_role(role);
            }
        }
        if let Some(tenant) = header_text(headers, &proxy.tenant) {
            approver = approver.with_tenant(tenant);
        }
        Some(Caller {
            approver,
            by: Via::Proxy,
        })
    }
}

impl Auth {
    /// The approver a presented bearer token maps to, if it is one of the configured.
    pub(crate) fn token_holder(&self, presented: &str) -> Option<&Approver> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        // The digests compared are of secrets that hold 256 bits at least (see
        // `BearerToken`): a comparison's timing can tell an attacker nothing of one.
        self.tokens
            .iter()
            .find(|t| t.sha256 == digest)
            .map(|t| &t.approver)
    }
}

/// The name of the cookie that carries a signed-in browser's token.
pub(crate) const SESSION_COOKIE: &str = "approval_gate_session";

/// The token in the request's session cookie, if it has one.
fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

fn header_text<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    let text = headers.get(name)?.to_str().ok()?.trim();
    (!text.is_empty()).then_some(text)
}

/// The headers a trusted reverse proxy sets: the user's id, their groups (taken as roles,
/// comma-separated) and their tenant.
#[derive(Debug, Clone)]
pub struct ProxyHeaders {
    /// The user's id; a request without it is not placed by the proxy.
    pub user: HeaderName,
    /// The user's groups, comma-separated, taken as roles.
    pub groups: HeaderName,
    /// The user's tenant.
    pub tenant: HeaderName,
}

impl Default for ProxyHeaders {
    /// `x-forwarded-user`, `x-forwarded-groups`, `x-forwarded-tenant`.
    fn default() -> Self {
        ProxyHeaders {
            user: HeaderName::from_static("x-forwarded-user"),
            groups: HeaderName::from_static("x-forwarded-groups"),
            tenant: HeaderName::from_static("x-forwarded-tenant"),
        }
    }
}

/// A bearer token the console accepts, kept as its SHA-256 hash, and the person it acts
/// as.
#[derive(Clone)]
pub struct BearerToken {
    sha256: [u8; 32],
    approver: Approver,
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerToken")
            .field("approver", &self.approver)
            .finish_non_exhaustive()
    }
}

/// A bearer token's hash is not 64 hex digits, or a token is too short to be a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenConfigError {
    /// Not a SHA-256 hash in hex.
    #[error("a bearer token hash must be 64 hex digits")]
    NotAHash,
    /// Shorter than 32 characters.
    #[error("a bearer token must have at least 32 characters")]
    TooShort,
}

impl BearerToken {
    /// A token given as the hex SHA-256 hash of its text (as a config file keeps it), for
    /// `approver`. Mint tokens of at least 32 random characters.
    pub fn from_sha256_hex(hash: &str, approver: Approver) -> Result<Self, TokenConfigError> {
        let hash = hash.trim();
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(TokenConfigError::NotAHash);
        }
        let mut sha256 = [0u8; 32];
        for (i, byte) in sha256.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hash[2 * i..2 * i + 2], 16)
                .map_err(|_| TokenConfigError::NotAHash)?;
        }
        Ok(BearerToken { sha256, approver })
    }

    /// A token given as its text, for `approver`: only its hash is kept. At least 32
    /// characters.
    pub fn from_secret(secret: &str, approver: Approver) -> Result<Self, TokenConfigError> {
        if secret.chars().count() < 32 {
            return Err(TokenConfigError::TooShort);
        }
        Ok(BearerToken {
            sha256: Sha256::digest(secret.as_bytes()).into(),
            approver,
        })
    }
}

/// How a caller was placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via {
    /// By a reverse proxy's headers, which a browser sends along with any request, so a
    /// state-changing request must come from the console's own pages.
    Proxy,
    /// By a bearer token, which a browser never adds by itself.
    Bearer,
    /// By a bearer token kept in the session cookie of a browser that signed in with it
    /// (`/signin`): the browser sends it along with any request, so, as with a proxy,
    /// a state-changing request must come from the console's own pages.
    Session,
}

/// The person behind a request.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub(crate) approver: Approver,
    pub(crate) by: Via,
}

impl Caller {
    /// Whether the caller sees every tenant's requests and records: one of the
    /// console's administrators ([`AppState::admin_role`]) who is bound to no tenant.
    ///
    /// Anyone else sees their own tenant only, as the desk shows it: a person with a
    /// tenant, that tenant's; a person without one who is not an administrator, only
    /// what has no tenant. A missing tenant alone never widens the view, so a proxy
    /// that forgets the tenant header shows nobody another tenant's requests.
    pub(crate) fn sees_every_tenant(&self, app: &AppState) -> bool {
        self.approver.tenant().is_none() && self.approver.has_role(&app.admin_role)
    }

    /// Whether the caller may see what belongs to `tenant` (a request, a record).
    pub(crate) fn sees(&self, app: &AppState, tenant: Option<&str>) -> bool {
        self.sees_every_tenant(app) || self.approver.tenant() == tenant
    }

    /// The desk the caller works at: every tenant's for an administrator without a
    /// tenant (to list and show), else the desk bound to the caller. Either way a
    /// decision is checked against the caller as the person acting, so the desk's
    /// rules (tenant, roles, no self-approval) refuse what they may not decide: for an
    /// administrator who can see a request of another tenant, 403 rather than 404.
    pub(crate) fn desk(&self, app: &AppState) -> Desk {
        if self.sees_every_tenant(app) {
            app.gate.desk()
        } else {
            app.gate.desk().for_approver(self.approver.clone())
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ConsoleError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        state
            .auth
            .caller(&parts.headers)
            .ok_or(ConsoleError::Unauthenticated)
    }
}
