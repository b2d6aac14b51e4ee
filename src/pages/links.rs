//! The links in mail sent through the native schema (and by the CLI), to the pages authgate
//! serves at these paths.

use crate::accounts::{Links, User};

pub const ACTIVATE: &str = "/activate/";
pub const VERIFY_EMAIL: &str = "/verify-email/";
pub const PASSWORD_RESET: &str = "/password/reset";
pub const PASSWORD_SET: &str = "/password/set";

/// Links under one base URL (`email.link_base_url`, or the public URL).
pub struct NativeLinks {
    base: String,
}

impl NativeLinks {
    pub fn new(base: &str) -> NativeLinks {
        NativeLinks {
            base: base.trim_end_matches('/').to_string(),
        }
    }
}

impl Links for NativeLinks {
    fn site(&self) -> &str {
        &self.base
    }

    fn activation(&self, _: &User, token: &str) -> String {
        format!("{}{ACTIVATE}{token}", self.base)
    }

    fn password_reset(&self, _: &User, token: &str) -> String {
        format!("{}{PASSWORD_RESET}?token={token}", self.base)
    }

    fn password_set(&self, _: &User, token: &str) -> String {
        format!("{}{PASSWORD_SET}?token={token}", self.base)
    }

    fn secondary_email(&self, _: &User, token: &str) -> String {
        format!("{}{VERIFY_EMAIL}{token}", self.base)
    }
}
