//! The Entra account a phone is paired for.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// An Entra user: the account a phone is paired for, and the account every inbox request names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// The user principal name, e.g. `ana@contoso.com`.
    pub upn: String,
    /// The Entra tenant (directory) id.
    pub tenant_id: Uuid,
    /// The user's Entra object id.
    pub entra_user_id: Uuid,
}

impl Account {
    /// Whether `other` is the same user: same tenant, same object id, and the same UPN up to
    /// case (Entra compares UPNs without regard to case). All three must agree, so a server
    /// cannot pass one user's object id off under another user's name.
    pub fn is_same_user(&self, other: &Account) -> bool {
        self.tenant_id == other.tenant_id
            && self.entra_user_id == other.entra_user_id
            && self.upn.to_lowercase() == other.upn.to_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ana() -> Account {
        Account {
            upn: "Ana@Contoso.com".to_owned(),
            tenant_id: Uuid::from_u128(1),
            entra_user_id: Uuid::from_u128(2),
        }
    }

    #[test]
    fn same_user_ignores_upn_case_only() {
        let lower = Account {
            upn: "ana@contoso.com".to_owned(),
            ..ana()
        };
        assert!(ana().is_same_user(&lower));
        let other_tenant = Account {
            tenant_id: Uuid::from_u128(9),
            ..ana()
        };
        assert!(!ana().is_same_user(&other_tenant));
        let other_object = Account {
            entra_user_id: Uuid::from_u128(9),
            ..ana()
        };
        assert!(!ana().is_same_user(&other_object));
        let other_name = Account {
            upn: "bob@contoso.com".to_owned(),
            ..ana()
        };
        assert!(!ana().is_same_user(&other_name));
    }
}
