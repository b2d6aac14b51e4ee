//! The admin token: a random secret the server writes to `<data_dir>/admin.token` (mode 0600) at
//! start, and that the CLI on the same host reads and presents to the admin listener. It keeps
//! other local users (who can reach loopback but not the data directory) out of the admin API.

use std::path::Path;

use crate::files::{write_atomic, Existing};

const FILE: &str = "admin.token";

pub fn create(data_dir: &Path) -> std::io::Result<String> {
    std::fs::create_dir_all(data_dir)?;
    let bytes: [u8; 32] = rand::random();
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    write_atomic(
        &data_dir.join(FILE),
        token.as_bytes(),
        0o600,
        Existing::Replace,
    )?;
    Ok(token)
}

pub fn read(data_dir: &Path) -> std::io::Result<String> {
    Ok(std::fs::read_to_string(data_dir.join(FILE))?
        .trim()
        .to_string())
}

/// Constant-time comparison of a presented token with the real one.
pub fn matches(presented: &str, real: &str) -> bool {
    use subtle::ConstantTimeEq;
    presented.len() == real.len() && bool::from(presented.as_bytes().ct_eq(real.as_bytes()))
}
