//! Who holds a lease: a member of the cluster, by name.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A member's name (Patroni's `name`), unique within a cluster: 1 to 128 characters, none of them `/`,
/// white space or a control character (it is also part of the key `members/<name>`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MemberName(String);

/// A string that is not a valid [`MemberName`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid member name {0:?}: use 1 to 128 characters without '/', white space or control characters")]
pub struct InvalidMemberName(pub String);

impl MemberName {
    /// Checks and wraps a name.
    pub fn new(name: impl Into<String>) -> Result<Self, InvalidMemberName> {
        let name = name.into();
        let bad_char = |c: char| c == '/' || c.is_whitespace() || c.is_control();
        if name.is_empty() || name.chars().count() > 128 || name.chars().any(bad_char) {
            return Err(InvalidMemberName(name));
        }
        Ok(MemberName(name))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MemberName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for MemberName {
    type Err = InvalidMemberName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MemberName::new(s)
    }
}

impl TryFrom<String> for MemberName {
    type Error = InvalidMemberName;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        MemberName::new(s)
    }
}

impl From<MemberName> for String {
    fn from(name: MemberName) -> String {
        name.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_names_are_checked() {
        assert_eq!(MemberName::new("pg-1.example").map(String::from), Ok("pg-1.example".to_owned()));
        for bad in ["", "a/b", "a b", "tab\t", &"x".repeat(129)] {
            assert_eq!(MemberName::new(bad), Err(InvalidMemberName(bad.to_owned())));
        }
        assert!(serde_json::from_str::<MemberName>("\"a/b\"").is_err());
    }
}
