//! The admin token: a random secret the server writes to `<data_dir>/admin.token` (mode 0600) at
//! start, and that the CLI on the same host reads and presents to the admin listener. It keeps
//! other local users (who can reach loopback but not the data directory) out of the admin API.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

const FILE: &str = "admin.token";

pub fn create(data_dir: &Path) -> std::io::Result<String> {
    std::fs::create_dir_all(data_dir)?;
    let bytes: [u8; 32] = rand::random();
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let path = data_dir.join(FILE);
    let tmp = data_dir.join(format!(".{FILE}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(token.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, &path)?;
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
