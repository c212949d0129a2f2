use serde::{Deserialize, Serialize};

/// A person who decides approval requests: an id, the roles they hold, and the tenant
/// they belong to.
///
/// A tier's `approvers` names the roles that may approve its requests; nobody approves a
/// call they asked for themselves, and nobody approves across tenants.
///
/// ```
/// use approval_gate::Approver;
///
/// let ann = Approver::new("ann").role("finance-lead").tenant("acme");
/// assert_eq!(ann.id(), "ann");
/// assert!(ann.has_role("finance-lead"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Approver {
    id: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tenant: Option<String>,
}

impl Approver {
    /// An approver known to the host by `id`, with no roles and no tenant.
    pub fn new(id: impl Into<String>) -> Self {
        Approver {
            id: id.into(),
            roles: Vec::new(),
            tenant: None,
        }
    }

    /// Adds a role.
    pub fn role(mut self, role: impl Into<String>) -> Self {
        self.roles.push(role.into());
        self
    }

    /// Sets the tenant.
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    /// The approver's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The approver's roles.
    pub fn roles(&self) -> &[String] {
        &self.roles
    }

    /// The approver's tenant.
    pub fn tenant_id(&self) -> Option<&str> {
        self.tenant.as_deref()
    }

    /// Whether the approver holds `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}
