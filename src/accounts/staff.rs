//! The staff view of accounts: the `users` listing and `user` by id.

use std::sync::Arc;

use super::core::Core;
use super::error::Failure;
use super::model::{fold, User};

/// Filters of the staff `users` query.
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    pub email: Option<String>,
    pub username: Option<String>,
    pub verified: Option<bool>,
    pub archived: Option<bool>,
    pub is_staff: Option<bool>,
    /// Case-insensitive substring of email, username or name.
    pub search: Option<String>,
    pub is_active: Option<bool>,
    /// Case-insensitive substring of the username.
    pub username_contains: Option<String>,
    /// Case-insensitive start of the username.
    pub username_starts_with: Option<String>,
    pub secondary_email: Option<String>,
}

impl UserFilter {
    fn keeps(&self, user: &User) -> bool {
        let eq = |a: &Option<String>, b: Option<&str>| {
            a.as_deref()
                .is_none_or(|a| b.is_some_and(|b| fold(a) == fold(b)))
        };
        let search = self.search.as_deref().map(fold).filter(|s| !s.is_empty());
        eq(&self.email, Some(&user.email))
            && eq(&self.username, user.username.as_deref())
            && self.verified.is_none_or(|v| v == user.verified)
            && self.archived.is_none_or(|v| v == user.archived)
            && self.is_staff.is_none_or(|v| v == user.is_staff)
            && self.is_active.is_none_or(|v| v == user.is_active)
            && eq(&self.secondary_email, user.secondary_email.as_deref())
            && self.username_contains.as_deref().is_none_or(|part| {
                user.username
                    .as_deref()
                    .is_some_and(|name| fold(name).contains(&fold(part)))
            })
            && self.username_starts_with.as_deref().is_none_or(|start| {
                user.username
                    .as_deref()
                    .is_some_and(|name| fold(name).starts_with(&fold(start)))
            })
            && search.is_none_or(|needle| {
                [
                    Some(user.email.as_str()),
                    user.username.as_deref(),
                    Some(user.first_name.as_str()),
                    Some(user.last_name.as_str()),
                ]
                .into_iter()
                .flatten()
                .any(|field| fold(field).contains(&needle))
            })
    }
}

pub struct Staff {
    core: Arc<Core>,
}

impl Staff {
    pub(super) fn new(core: Arc<Core>) -> Staff {
        Staff { core }
    }

    /// Staff (or the user themself) may read a user.
    pub async fn user(&self, caller: Option<&str>, id: &str) -> Result<Option<User>, Failure> {
        let me = self.core.active(caller).await?;
        if !me.is_staff && me.id != id {
            return Err(Failure::forbidden("Staff only."));
        }
        Ok(self.core.users.get(id).await?)
    }

    /// Staff (or the user themself) may read a user by its number ([`User::serial`]).
    pub async fn user_by_serial(
        &self,
        caller: Option<&str>,
        serial: i64,
    ) -> Result<Option<User>, Failure> {
        let me = self.core.active(caller).await?;
        if me.serial == Some(serial) {
            return Ok(Some(me));
        }
        if !me.is_staff {
            return Err(Failure::forbidden("Staff only."));
        }
        let users = self.core.users.all().await?;
        Ok(users.into_iter().find(|u| u.serial == Some(serial)))
    }

    /// Staff only: users matching `filter`, in the order they joined.
    pub async fn list(
        &self,
        caller: Option<&str>,
        filter: &UserFilter,
    ) -> Result<Vec<User>, Failure> {
        let me = self.core.active(caller).await?;
        if !me.is_staff {
            return Err(Failure::forbidden("Staff only."));
        }
        let mut users: Vec<User> = self
            .core
            .users
            .all()
            .await?
            .into_iter()
            .filter(|u| filter.keeps(u))
            .collect();
        // Ids are UUIDv7: time-ordered to the millisecond within the same second.
        users.sort_by(|a, b| (a.date_joined, &a.id).cmp(&(b.date_joined, &b.id)));
        Ok(users)
    }
}
