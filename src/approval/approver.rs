use serde::{Deserialize, Serialize};

/// A person who decides approval requests: an id, the roles they hold, and the tenant
/// they belong to.
///
/// A tier's `approvers` names the roles that may approve its requests; nobody approves a
/// call they asked for themselves, and nobody approves across tenants.
///
/// The id and the tenant are kept in their canonical form (see [`canonical_id`]): `Ann`
/// and `ann` are one approver. An approver whose id or tenant is no valid id (empty,
/// padded with spaces, with an invisible or control character, mixing scripts) is
/// refused by every decision ([`TransitionError::InvalidIdentity`]). Roles are kept as
/// given.
///
/// ```
/// use approval_gate::Approver;
///
/// let ann = Approver::new("Ann").with_role("finance-lead").with_tenant("ACME");
/// assert_eq!(ann.id(), "ann");
/// assert_eq!(ann.tenant(), Some("acme"));
/// assert!(ann.has_role("finance-lead"));
/// ```
///
/// [`canonical_id`]: crate::identity::canonical_id
/// [`TransitionError::InvalidIdentity`]: crate::approval::TransitionError::InvalidIdentity
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "Fields")]
pub struct Approver {
    id: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tenant: Option<String>,
}

/// An approver as read, put in canonical form as [`Approver::new`] does.
#[derive(Deserialize)]
struct Fields {
    id: String,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    tenant: Option<String>,
}

impl From<Fields> for Approver {
    fn from(f: Fields) -> Approver {
        Approver {
            id: crate::identity::into_canonical(f.id),
            roles: f.roles,
            tenant: f.tenant.map(crate::identity::into_canonical),
        }
    }
}

impl Approver {
    /// An approver known to the host by `id` (kept in canonical form), with no roles and
    /// no tenant.
    pub fn new(id: impl Into<String>) -> Self {
        Approver {
            id: crate::identity::into_canonical(id.into()),
            roles: Vec::new(),
            tenant: None,
        }
    }

    /// Adds a role.
    pub fn with_role(mut self, role: impl Into<String>) -> Self {
        self.roles.push(role.into());
        self
    }

    /// Sets the tenant (kept in canonical form).
    pub fn with_tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(crate::identity::into_canonical(tenant.into()));
        self
    }

    /// The approver's id, in canonical form.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The approver's roles.
    pub fn roles(&self) -> &[String] {
        &self.roles
    }

    /// The approver's tenant, in canonical form.
    pub fn tenant(&self) -> Option<&str> {
        self.tenant.as_deref()
    }

    /// Whether the approver holds `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}
