//! Validated input values. Each constructor checks its limits and returns a [`ValueError`]
//! whose message says what is wrong without echoing the value (it may be PHI).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a value was refused. The message names the field and the rule, never the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {rule}")]
pub struct ValueError {
    /// The field, as named in the API.
    pub field: &'static str,
    /// The rule it broke, as a person would read it.
    pub rule: &'static str,
}

impl ValueError {
    /// A new error.
    #[must_use]
    pub const fn new(field: &'static str, rule: &'static str) -> Self {
        Self { field, rule }
    }
}

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// Checks a one-line human text (a name, a label): trimmed, 1..=`max` characters, no control
/// characters (so nothing can forge log lines or terminal escapes).
pub fn single_line(field: &'static str, s: &str, max: usize) -> Result<String, ValueError> {
    let t = s.trim();
    if t.is_empty() {
        return Err(ValueError::new(field, "must not be empty"));
    }
    if t.chars().count() > max {
        return Err(ValueError::new(field, "is too long"));
    }
    if has_control(t) {
        return Err(ValueError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(t.to_owned())
}

/// Checks multi-line free text: at most `max_bytes` bytes; control characters other than
/// newline and tab are refused.
pub fn free_text(field: &'static str, s: &str, max_bytes: usize) -> Result<String, ValueError> {
    if s.len() > max_bytes {
        return Err(ValueError::new(field, "is too long"));
    }
    if s.chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
    {
        return Err(ValueError::new(
            field,
            "must not contain control characters",
        ));
    }
    if s.trim().is_empty() {
        return Err(ValueError::new(field, "must not be empty"));
    }
    Ok(s.to_owned())
}

/// An email address, normalized to lower case. Only the shape is checked (one `@`, a dot in
/// the domain, no spaces, at most 254 characters — RFC 5321 §4.5.3.1.3).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    /// Parses and normalizes an address.
    pub fn parse(field: &'static str, s: &str) -> Result<Self, ValueError> {
        let t = s.trim().to_lowercase();
        if t.len() > 254 {
            return Err(ValueError::new(field, "is too long"));
        }
        let mut parts = t.split('@');
        let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(ValueError::new(
                field,
                "must be an email address like name@example.com",
            ));
        };
        if local.is_empty()
            || domain.len() < 3
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
            || t.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(ValueError::new(
                field,
                "must be an email address like name@example.com",
            ));
        }
        Ok(Self(t))
    }

    /// The normalized address.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Email {
    type Error = ValueError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse("email", &s)
    }
}

impl From<Email> for String {
    fn from(e: Email) -> Self {
        e.0
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Contact details stay out of debug output and logs.
        f.write_str("Email(***)")
    }
}

/// A phone number: digits with optional `+`, spaces, dashes, dots and parentheses; 5 to 32
/// characters.
pub fn phone(field: &'static str, s: &str) -> Result<String, ValueError> {
    let t = s.trim();
    if t.len() < 5 || t.len() > 32 {
        return Err(ValueError::new(field, "must be 5 to 32 characters"));
    }
    if !t
        .chars()
        .all(|c| c.is_ascii_digit() || " +-.()".contains(c))
    {
        return Err(ValueError::new(
            field,
            "may contain only digits, spaces, and + - . ( )",
        ));
    }
    Ok(t.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(
            Email::parse("email", " Ada@Example.COM ").unwrap().as_str(),
            "ada@example.com"
        );
        for bad in [
            "", "a", "a@b", "a@@b.c", "a b@c.de", "@x.org", "a@.org", "a@org.",
        ] {
            assert_eq!(
                Email::parse("email", bad).unwrap_err().to_string(),
                "email: must be an email address like name@example.com",
                "{bad:?}"
            );
        }
        assert_eq!(
            format!("{:?}", Email::parse("email", "x@y.org").unwrap()),
            "Email(***)"
        );
    }

    #[test]
    fn single_lines() {
        assert_eq!(single_line("name", "  Ada ", 10).unwrap(), "Ada");
        assert_eq!(
            single_line("name", "   ", 10).unwrap_err().to_string(),
            "name: must not be empty"
        );
        assert_eq!(
            single_line("name", "abcdefghijk", 10)
                .unwrap_err()
                .to_string(),
            "name: is too long"
        );
        assert_eq!(
            single_line("name", "a\u{1b}[31m", 10)
                .unwrap_err()
                .to_string(),
            "name: must not contain control characters"
        );
    }

    #[test]
    fn phones() {
        assert_eq!(
            phone("phone", "+1 (555) 010-0199").unwrap(),
            "+1 (555) 010-0199"
        );
        assert!(phone("phone", "call me").is_err());
        assert!(phone("phone", "12").is_err());
    }
}
