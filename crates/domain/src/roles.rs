//! Roles inside a practice and the privileges routes ask for.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A role a member holds in a practice. A member may hold several.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Owns the practice: memberships, settings, billing, approvals. No clinical content
    /// unless also `clinician`.
    Owner,
    /// Manages memberships and settings like an owner. No clinical content unless also
    /// `clinician`.
    Admin,
    /// Dentist, hygienist or therapist: clinical content and scheduling.
    Clinician,
    /// Front desk: patient demographics, contact details and scheduling; never clinical content.
    Reception,
}

impl Role {
    /// Every role, in a stable order.
    pub const ALL: [Role; 4] = [Role::Owner, Role::Admin, Role::Clinician, Role::Reception];

    /// The stable name stored in the database (`membership.roles`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Clinician => "clinician",
            Role::Reception => "reception",
        }
    }

    const fn bit(self) -> u8 {
        match self {
            Role::Owner => 1,
            Role::Admin => 2,
            Role::Clinician => 4,
            Role::Reception => 8,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is not one of `owner`, `admin`, `clinician`, `reception`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown role {0:?}: expected one of owner, admin, clinician, reception")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.chars().take(32).collect()))
    }
}

/// A set of roles.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RoleSet(u8);

impl RoleSet {
    /// The empty set.
    pub const EMPTY: RoleSet = RoleSet(0);

    /// Whether `role` is in the set.
    #[must_use]
    pub const fn contains(self, role: Role) -> bool {
        self.0 & role.bit() != 0
    }

    /// Whether the set holds owner or admin (the roles a practice may require a passkey of).
    #[must_use]
    pub const fn is_manager(self) -> bool {
        self.contains(Role::Owner) || self.contains(Role::Admin)
    }

    /// Whether the set is empty.
    #[must_use]
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Adds a role.
    pub fn insert(&mut self, role: Role) {
        self.0 |= role.bit();
    }

    /// The roles in the set, in [`Role::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Role> {
        Role::ALL.into_iter().filter(move |r| self.contains(*r))
    }

    /// The stable names, in [`Role::ALL`] order (for the database).
    #[must_use]
    pub fn names(self) -> Vec<String> {
        self.iter().map(|r| r.as_str().to_owned()).collect()
    }

    /// Parses stored names; unknown names are an error.
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<Self, UnknownRole> {
        let mut set = RoleSet::EMPTY;
        for n in names {
            set.insert(n.as_ref().parse()?);
        }
        Ok(set)
    }
}

impl FromIterator<Role> for RoleSet {
    fn from_iter<T: IntoIterator<Item = Role>>(iter: T) -> Self {
        let mut set = RoleSet::EMPTY;
        for r in iter {
            set.insert(r);
        }
        set
    }
}

/// What a route needs. The row-level security policies in the database encode the same
/// mapping (see `migrations/`), so a handler that asked for too little still gets nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Privilege {
    /// Any member of the practice (practice name, member directory).
    Member,
    /// Patient demographics, contact details and appointments: clinician or reception.
    Scheduling,
    /// Clinical content (notes, charts): clinician only.
    Clinical,
    /// Memberships and practice settings: owner or admin.
    Manage,
}

impl Privilege {
    /// Whether a member holding `roles` has this privilege.
    #[must_use]
    pub const fn allows(self, roles: RoleSet) -> bool {
        match self {
            Privilege::Member => !roles.is_empty(),
            Privilege::Scheduling => {
                roles.contains(Role::Clinician) || roles.contains(Role::Reception)
            }
            Privilege::Clinical => roles.contains(Role::Clinician),
            Privilege::Manage => roles.contains(Role::Owner) || roles.contains(Role::Admin),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn privilege_matrix() {
        let set = |r: &[Role]| r.iter().copied().collect::<RoleSet>();
        let cases: &[(&[Role], [bool; 4])] = &[
            // roles → [member, scheduling, clinical, manage]
            (&[], [false, false, false, false]),
            (&[Role::Reception], [true, true, false, false]),
            (&[Role::Clinician], [true, true, true, false]),
            (&[Role::Owner], [true, false, false, true]),
            (&[Role::Admin], [true, false, false, true]),
            (&[Role::Owner, Role::Clinician], [true, true, true, true]),
        ];
        for (roles, want) in cases {
            let s = set(roles);
            let got = [
                Privilege::Member.allows(s),
                Privilege::Scheduling.allows(s),
                Privilege::Clinical.allows(s),
                Privilege::Manage.allows(s),
            ];
            assert_eq!(&got, want, "roles {roles:?}");
        }
    }

    #[test]
    fn parse_roles() {
        assert_eq!(
            RoleSet::parse(&["owner", "clinician"]).unwrap().names(),
            ["owner", "clinician"]
        );
        assert_eq!(
            RoleSet::parse(&["superuser"]).unwrap_err().to_string(),
            "unknown role \"superuser\": expected one of owner, admin, clinician, reception"
        );
    }
}
