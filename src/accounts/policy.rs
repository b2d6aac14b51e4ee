//! The password policy, with Django's error codes: minimum length (configurable), at most
//! 128 characters, not entirely numeric, not too similar to the user's email, username or name,
//! and not one of 20,000 common passwords.
//!
//! The common-password list (`common-passwords.txt.gz`) is the list Django ships in
//! `django/contrib/auth/`: 20,000 lowercased passwords compiled by Royce Williams
//! (<https://gist.github.com/roycewilliams/226886fd01572964e1431ac8afc999ce>), BSD-licensed
//! with Django.

use std::collections::HashMap;
use std::io::Read;
use std::sync::OnceLock;

use super::error::{Code, Failure, Field};

pub const MAX_LENGTH: usize = 128;
const MAX_SIMILARITY: f64 = 0.7;

static COMMON_GZ: &[u8] = include_bytes!("common-passwords.txt.gz");

/// The common passwords sorted in one string, found by bisection over their offsets: about
/// 230 KiB where a `HashSet<String>` of the 20,000 took about 1 MiB.
struct CommonPasswords {
    /// The passwords, sorted, each followed by `\n`.
    text: Box<str>,
    /// Where each password starts in `text`.
    starts: Box<[u32]>,
}

impl CommonPasswords {
    fn load() -> CommonPasswords {
        let mut raw = String::new();
        let _ = flate2::read::GzDecoder::new(COMMON_GZ).read_to_string(&mut raw);
        let mut lines: Vec<&str> = raw
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        lines.sort_unstable();
        lines.dedup();
        let mut text = String::with_capacity(raw.len());
        let mut starts = Vec::with_capacity(lines.len());
        for line in lines {
            starts.push(text.len() as u32);
            text.push_str(line);
            text.push('\n');
        }
        CommonPasswords {
            text: text.into_boxed_str(),
            starts: starts.into_boxed_slice(),
        }
    }

    /// The password that starts at `start`.
    fn at(&self, start: u32) -> &str {
        let rest = &self.text[start as usize..];
        &rest[..rest.find('\n').unwrap_or(rest.len())]
    }

    fn contains(&self, password: &str) -> bool {
        self.starts
            .binary_search_by(|&start| self.at(start).cmp(password))
            .is_ok()
    }

    fn len(&self) -> usize {
        self.starts.len()
    }
}

fn common_passwords() -> &'static CommonPasswords {
    static SET: OnceLock<CommonPasswords> = OnceLock::new();
    SET.get_or_init(CommonPasswords::load)
}

/// Loads the common-password list now rather than on the first registration.
pub fn preload() -> usize {
    common_passwords().len()
}

/// What the password is compared with: (attribute name as shown to users, value).
pub type Attributes<'a> = [(&'a str, Option<&'a str>)];

pub struct PasswordPolicy {
    pub min_length: usize,
}

impl PasswordPolicy {
    /// Every rule a new password breaks.
    pub fn check(&self, password: &str, attributes: &Attributes<'_>) -> Failure {
        let field = Field::NewPassword;
        let mut failure = Failure::default();
        let length = password.chars().count();
        if length < self.min_length {
            failure.add(
                field,
                Code::PasswordTooShort,
                format!(
                    "This password is too short. It must contain at least {} characters.",
                    self.min_length
                ),
            );
        }
        if length > MAX_LENGTH {
            failure.add(
                field,
                Code::PasswordTooLong,
                format!(
                    "This password is too long. It must contain at most {MAX_LENGTH} characters."
                ),
            );
            return failure;
        }
        if let Some(name) = too_similar(password, attributes) {
            failure.add(
                field,
                Code::PasswordTooSimilar,
                format!("The password is too similar to the {name}."),
            );
        }
        if common_passwords().contains(&password.trim().to_lowercase()) {
            failure.add(
                field,
                Code::PasswordTooCommon,
                "This password is too common.",
            );
        }
        if !password.is_empty() && password.chars().all(|c| c.is_ascii_digit()) {
            failure.add(
                field,
                Code::PasswordEntirelyNumeric,
                "This password is entirely numeric.",
            );
        }
        failure
    }
}

fn too_similar<'a>(password: &str, attributes: &Attributes<'a>) -> Option<&'a str> {
    let password = password.to_lowercase();
    for (name, value) in attributes {
        let Some(value) = value.filter(|v| !v.is_empty()) else {
            continue;
        };
        let value = value.to_lowercase();
        let parts = value
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .chain(std::iter::once(value.as_str()));
        for part in parts {
            if far_longer(&password, part) {
                continue;
            }
            if quick_ratio(&password, part) >= MAX_SIMILARITY {
                return Some(name);
            }
        }
    }
    None
}

/// A password ten times longer than the value cannot be similar enough to matter.
fn far_longer(password: &str, value: &str) -> bool {
    let (p, v) = (
        password.chars().count() as f64,
        value.chars().count() as f64,
    );
    p >= 10.0 * v && v < MAX_SIMILARITY / 2.0 * p
}

/// 2·M / T where M counts the characters the two strings share (as multisets): the upper bound
/// on similarity that Python's `SequenceMatcher.quick_ratio` computes.
fn quick_ratio(a: &str, b: &str) -> f64 {
    let total = a.chars().count() + b.chars().count();
    if total == 0 {
        return 1.0;
    }
    let mut counts: HashMap<char, usize> = HashMap::new();
    for c in b.chars() {
        *counts.entry(c).or_default() += 1;
    }
    let mut matches = 0;
    for c in a.chars() {
        if let Some(n) = counts.get_mut(&c).filter(|n| **n > 0) {
            *n -= 1;
            matches += 1;
        }
    }
    2.0 * matches as f64 / total as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(password: &str) -> Vec<&'static str> {
        let policy = PasswordPolicy { min_length: 8 };
        let attrs = [
            ("email", Some("ada.lovelace@example.com")),
            ("username", Some("adalove")),
            ("first name", Some("Ada")),
        ];
        policy
            .check(password, &attrs)
            .codes()
            .into_iter()
            .map(Code::as_str)
            .collect()
    }

    #[test]
    fn django_rules() {
        assert!(preload() > 19_000, "the list loads whole");
        let list = common_passwords();
        let all: Vec<&str> = list.starts.iter().map(|&s| list.at(s)).collect();
        assert!(all.windows(2).all(|w| w[0] < w[1]), "sorted, each once");
        assert!(all.iter().all(|p| list.contains(p)));
        assert!(!list.contains("") && !list.contains("vX9!kq2#Lm"));
        assert!(codes("vX9!kq2#Lm").is_empty());
        assert_eq!(codes("short"), ["password_too_short"]);
        assert_eq!(codes("password"), ["password_too_common"]);
        assert_eq!(codes("PassWord"), ["password_too_common"]);
        assert_eq!(codes("83920174652"), ["password_entirely_numeric"]);
        assert!(codes("12345678").contains(&"password_too_common"));
        assert_eq!(
            codes(&"x".repeat(129)),
            ["password_too_short", "password_too_long"][1..]
        );
        assert_eq!(codes("Lovelace1"), ["password_too_similar"]);
        assert_eq!(codes("adalove99"), ["password_too_similar"]);
    }

    #[test]
    fn quick_ratio_matches_python() {
        // SequenceMatcher(a='abcd', b='bcde').quick_ratio() == 0.75
        assert!((quick_ratio("abcd", "bcde") - 0.75).abs() < 1e-9);
        assert_eq!(quick_ratio("", ""), 1.0);
        assert_eq!(quick_ratio("abc", "xyz"), 0.0);
    }
}
