//! Firms, users and their credentials as parsed values: an [`Email`] is always normalised, a
//! [`FirmSlug`] always URL-safe, a [`Password`] always meets the policy.

use crate::ValidationError;
use std::fmt;

/// A lower-cased e-mail address with one `@`, a plausible local part and a dotted domain.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Parses an address; `field` names the input in the error.
    pub fn parse_field(raw: &str, field: &str) -> Result<Self, ValidationError> {
        let s = raw.trim();
        let invalid = |why: &str| ValidationError::new(field, format!("{why}: {raw:?}"));
        if s.is_empty() {
            return Err(ValidationError::new(field, "must not be empty"));
        }
        if s.len() > 254 {
            return Err(ValidationError::new(field, "must be at most 254 characters"));
        }
        let (local, domain) = s.rsplit_once('@').ok_or_else(|| invalid("not an e-mail address (no @)"))?;
        if local.is_empty() || local.len() > 64 || local.contains('@') {
            return Err(invalid("not an e-mail address (bad local part)"));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';' | '"')) {
            return Err(invalid("not an e-mail address (forbidden character)"));
        }
        let labels: Vec<&str> = domain.split('.').collect();
        if labels.len() < 2
            || labels.iter().any(|l| {
                l.is_empty()
                    || l.starts_with('-')
                    || l.ends_with('-')
                    || !l.chars().all(|c| c.is_alphanumeric() || c == '-')
            })
        {
            return Err(invalid("not an e-mail address (bad domain)"));
        }
        Ok(Self(s.to_lowercase()))
    }

    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        Self::parse_field(raw, "email")
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A firm's short, URL-safe handle: 2–63 of `[a-z0-9-]`, not starting or ending with `-`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirmSlug(String);

impl FirmSlug {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let ok_chars = raw.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !(2..=63).contains(&raw.len()) || !ok_chars || raw.starts_with('-') || raw.ends_with('-') {
            return Err(ValidationError::new(
                "slug",
                format!("{raw:?} is not a valid slug: use 2-63 lowercase letters, digits or '-'"),
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A human name (firm or person): trimmed, 1–200 characters, no control characters.
pub fn parse_name(raw: &str, field: &str) -> Result<String, ValidationError> {
    let s = raw.trim();
    if s.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if s.chars().count() > 200 {
        return Err(ValidationError::new(field, "must be at most 200 characters"));
    }
    if s.chars().any(char::is_control) {
        return Err(ValidationError::new(field, "must not contain control characters"));
    }
    Ok(s.to_owned())
}

/// A password that meets the policy. Deliberately no `Display`, and `Debug` is redacted.
#[derive(Clone)]
pub struct Password(String);

/// Passwords that pass a length rule but are guessed first.
const COMMON: &[&str] = &[
    "password",
    "password1",
    "password123",
    "12345678",
    "123456789",
    "1234567890",
    "qwertyuiop",
    "iloveyou",
    "letmein123",
    "welcome123",
    "changeme",
    "admin1234",
    "secret123",
    "abc12345",
];

impl Password {
    pub const MIN_LEN: usize = 10;

    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let n = raw.chars().count();
        if n == 0 {
            return Err(ValidationError::new("password", "must not be empty"));
        }
        if n < Self::MIN_LEN {
            return Err(ValidationError::new(
                "password",
                format!("too weak: use at least {} characters", Self::MIN_LEN),
            ));
        }
        if n > 1024 {
            return Err(ValidationError::new("password", "must be at most 1024 characters"));
        }
        let mut distinct: Vec<char> = raw.chars().collect();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() < 4 || COMMON.contains(&raw.to_lowercase().as_str()) {
            return Err(ValidationError::new("password", "too weak: it is too easy to guess"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(Email::parse(" Ann@Acme.Test ").unwrap().as_str(), "ann@acme.test");
        for bad in ["", "ann", "ann@", "@acme.test", "ann@acme", "ann@-acme.test", "a b@acme.test", "ann@acme..test"] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
        let err = Email::parse_field("x", "attendees[0].email").unwrap_err();
        assert_eq!(err.field, "attendees[0].email");
    }

    #[test]
    fn slugs() {
        assert!(FirmSlug::parse("acme").is_ok());
        assert!(FirmSlug::parse("acme-2").is_ok());
        for bad in ["", "a", "Acme", "acme_co", "-acme", "acme-", "a c"] {
            assert!(FirmSlug::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn password_policy() {
        assert!(Password::parse("correct horse battery").is_ok());
        assert_eq!(Password::parse("").unwrap_err().message, "must not be empty");
        assert!(Password::parse("short1!").unwrap_err().message.contains("at least"));
        assert!(Password::parse("aaaaaaaaaaaa").is_err());
        assert!(Password::parse("Password123").is_err());
        assert_eq!(format!("{:?}", Password::parse("correct horse battery").unwrap()), "Password([redacted])");
    }

    #[test]
    fn names() {
        assert_eq!(parse_name("  Ann  ", "name").unwrap(), "Ann");
        assert!(parse_name("   ", "name").is_err());
        assert!(parse_name(&"x".repeat(201), "name").is_err());
    }
}
