//! The caller's own account: `me`, `updateAccount`, `passwordChange`, `archiveAccount`,
//! `deleteAccount`.

use std::sync::Arc;

use super::core::Core;
use super::error::{Code, Failure, Field};
use super::model::User;
use super::{valid_username, DeleteMode, TokenPair};

#[derive(Debug, Clone, Default)]
pub struct ProfileUpdate {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub username: Option<String>,
}

pub struct Profile {
    core: Arc<Core>,
}

impl Profile {
    pub(super) fn new(core: Arc<Core>) -> Profile {
        Profile { core }
    }

    /// The caller's account, or `None` when not logged in (or gone).
    pub async fn me(&self, user_id: Option<&str>) -> Result<Option<User>, Failure> {
        match self.core.active(user_id).await {
            Ok(user) => Ok(Some(user)),
            Err(f) if f.is(Code::Unauthenticated) => Ok(None),
            Err(f) => Err(f),
        }
    }

    pub async fn update(
        &self,
        user_id: Option<&str>,
        update: ProfileUpdate,
    ) -> Result<User, Failure> {
        let mut user = self.core.verified(user_id).await?;
        if let Some(first) = update.first_name {
            user.first_name = first.trim().to_string();
        }
        if let Some(last) = update.last_name {
            user.last_name = last.trim().to_string();
        }
        if let Some(name) = update.username {
            let name = name.trim().to_string();
            if !valid_username(&name) {
                return Err(Failure::field(
                    Field::Username,
                    Code::Invalid,
                    "Enter a valid username: up to 150 letters, digits and @/./+/-/_.",
                ));
            }
            user.username = Some(name);
        }
        self.core.users.update(&user).await?;
        Ok(user)
    }

    /// Changes the password (the old one must match), revokes every session, and returns a
    /// fresh pair for this one.
    pub async fn change_password(
        &self,
        user_id: Option<&str>,
        old: String,
        new1: String,
        new2: String,
    ) -> Result<TokenPair, Failure> {
        let core = &self.core;
        let mut user = core.verified(user_id).await?;
        if !core.hasher.verify(user.password_hash.clone(), old).await? {
            return Err(Failure::invalid_password());
        }
        core.apply_new_password(&mut user, new1, new2).await?;
        core.users.update(&user).await?;
        core.end_sessions(&user.id).await?;
        core.pair(&user, None).await
    }

    /// Archives the account (the next login unarchives it); every session ends.
    pub async fn archive(&self, user_id: Option<&str>, password: String) -> Result<(), Failure> {
        let mut user = self.core.confirmed(user_id, password).await?;
        user.archived = true;
        self.core.users.update(&user).await?;
        self.core.end_sessions(&user.id).await
    }

    /// Deletes the account as `mode` says; sessions and API keys end with it.
    pub async fn delete(
        &self,
        user_id: Option<&str>,
        password: String,
        mode: DeleteMode,
    ) -> Result<(), Failure> {
        let core = &self.core;
        let mut user = core.confirmed(user_id, password).await?;
        core.end_sessions(&user.id).await?;
        core.api_keys.delete_keys_of(&user.id).await?;
        core.key_cache.forget_user(&user.id);
        match mode {
            DeleteMode::Hard => core.users.delete(&user.id).await?,
            DeleteMode::Deactivate => {
                user.is_active = false;
                core.users.update(&user).await?;
            }
        }
        Ok(())
    }
}
