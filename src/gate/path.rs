//! Canonical request paths, so that the path authgate authorizes is the path the upstream serves.
//!
//! Percent-encoded unreserved characters are decoded (RFC 3986 §6.2.2.2), repeated slashes are
//! merged, and anything an upstream might resolve differently is refused: dot segments
//! (`/public/../admin`, also as `%2e%2e`), encoded or literal separators (`%2F`, `%5C`, `\`),
//! NUL and control characters.

use std::borrow::Cow;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path must start with `/`")]
    NotAbsolute,
    #[error("dot segments are not allowed in the path")]
    DotSegment,
    #[error("encoded slashes and backslashes are not allowed in the path")]
    EncodedSeparator,
    #[error("control characters are not allowed in the path")]
    Control,
    #[error("malformed percent-encoding in the path")]
    BadEncoding,
}

/// Returns the canonical form of `raw` (a path without its query): `raw` itself, borrowed,
/// when it is canonical already (the common case, which costs one scan and no allocation).
pub fn canonical_path(raw: &str) -> Result<Cow<'_, str>, PathError> {
    if !raw.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    let plain = !raw.contains("//")
        && raw
            .bytes()
            .all(|b| !matches!(b, b'%' | b'\\' | 0..=0x1f | 0x7f));
    let out = if plain {
        Cow::Borrowed(raw)
    } else {
        Cow::Owned(rewrite(raw)?)
    };
    if out
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return Err(PathError::DotSegment);
    }
    Ok(out)
}

/// Decodes, merges and refuses, byte by byte.
fn rewrite(raw: &str) -> Result<String, PathError> {
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or(PathError::BadEncoding)?;
                let hex = std::str::from_utf8(hex).map_err(|_| PathError::BadEncoding)?;
                let value = u8::from_str_radix(hex, 16).map_err(|_| PathError::BadEncoding)?;
                match value {
                    b'/' | b'\\' => return Err(PathError::EncodedSeparator),
                    0..=0x1f | 0x7f => return Err(PathError::Control),
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                        out.push(value as char)
                    }
                    _ => {
                        out.push('%');
                        out.push_str(&hex.to_ascii_uppercase());
                    }
                }
                i += 3;
            }
            b'\\' => return Err(PathError::EncodedSeparator),
            0..=0x1f | 0x7f => return Err(PathError::Control),
            b'/' if out.ends_with('/') => i += 1,
            _ => {
                // Multi-byte UTF-8 is copied whole; `raw` is a &str so boundaries are valid.
                let len = utf8_len(b);
                out.push_str(&raw[i..i + len]);
                i += len;
            }
        }
    }
    Ok(out)
}

fn utf8_len(first: u8) -> usize {
    match first {
        0xf0..=0xff => 4,
        0xe0..=0xef => 3,
        0xc0..=0xdf => 2,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms() {
        assert_eq!(canonical_path("/").unwrap(), "/");
        assert_eq!(canonical_path("/api//v1///x").unwrap(), "/api/v1/x");
        assert_eq!(canonical_path("//admin").unwrap(), "/admin");
        assert_eq!(canonical_path("/%61pi/%7euser").unwrap(), "/api/~user");
        assert_eq!(canonical_path("/a%20b/%c3%a9").unwrap(), "/a%20b/%C3%A9");
        assert_eq!(canonical_path("/café/x.json").unwrap(), "/café/x.json");
        assert_eq!(canonical_path("/a/..b/c.").unwrap(), "/a/..b/c.");
        assert!(matches!(canonical_path("/api/v1/x"), Ok(Cow::Borrowed(_))));
        assert!(matches!(canonical_path("/api//x"), Ok(Cow::Owned(_))));
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        for (raw, err) in [
            ("/public/../admin", PathError::DotSegment),
            ("/public/%2e%2e/admin", PathError::DotSegment),
            ("/public/.%2E/admin", PathError::DotSegment),
            ("/./admin", PathError::DotSegment),
            ("/public/..", PathError::DotSegment),
            ("/..", PathError::DotSegment),
            ("/a/./", PathError::DotSegment),
            ("/public%2f..%2fadmin", PathError::EncodedSeparator),
            ("/public%5Cadmin", PathError::EncodedSeparator),
            ("/public\\admin", PathError::EncodedSeparator),
            ("/a%00b", PathError::Control),
            ("/a%zz", PathError::BadEncoding),
            ("/a%4", PathError::BadEncoding),
            ("api", PathError::NotAbsolute),
        ] {
            assert_eq!(canonical_path(raw), Err(err), "{raw}");
        }
    }
}
