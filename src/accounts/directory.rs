//! The public directory of accounts: what anyone may know about an account (its id, its
//! username, whether its email is verified), for clients whose original API lists users
//! publicly. Never an email, a name or a role: [`PublicUser`] has no such field.

use std::sync::Arc;

use super::core::Core;
use super::error::Failure;
use super::model::{fold, User};

/// One account as the public sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUser {
    pub id: String,
    pub username: Option<String>,
    pub verified: bool,
}

impl PublicUser {
    fn of(user: &User) -> PublicUser {
        PublicUser {
            id: user.id.clone(),
            username: user.username.clone(),
            verified: user.verified,
        }
    }
}

/// Which accounts a public query asks for: every field given must match.
#[derive(Debug, Clone, Default)]
pub struct PublicFilter {
    pub id: Option<String>,
    /// Any of these ids.
    pub ids: Option<Vec<String>>,
    /// Case-insensitively equal.
    pub username: Option<String>,
    pub verified: Option<bool>,
}

impl PublicFilter {
    fn keeps(&self, user: &User) -> bool {
        self.id.as_ref().is_none_or(|id| *id == user.id)
            && self.ids.as_ref().is_none_or(|ids| ids.contains(&user.id))
            && self
                .username
                .as_deref()
                .is_none_or(|name| user.username.as_deref().map(fold) == Some(fold(name)))
            && self.verified.is_none_or(|v| v == user.verified)
    }
}

/// The order of a listing: by id (ids are time-ordered, so this is also join order).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Order {
    #[default]
    IdAscending,
    IdDescending,
}

pub struct Directory {
    core: Arc<Core>,
}

impl Directory {
    pub(super) fn new(core: Arc<Core>) -> Directory {
        Directory { core }
    }

    /// One account by id, if it is listed (active and not archived).
    pub async fn get(&self, id: &str) -> Result<Option<PublicUser>, Failure> {
        Ok(self
            .core
            .users
            .get(id)
            .await?
            .filter(listed)
            .map(|u| PublicUser::of(&u)))
    }

    /// The listed accounts matching `filter`, in `order`.
    pub async fn find(
        &self,
        filter: &PublicFilter,
        order: Order,
    ) -> Result<Vec<PublicUser>, Failure> {
        let mut users: Vec<User> = self
            .core
            .users
            .all()
            .await?
            .into_iter()
            .filter(|u| listed(u) && filter.keeps(u))
            .collect();
        users.sort_by(|a, b| a.id.cmp(&b.id));
        if order == Order::IdDescending {
            users.reverse();
        }
        Ok(users.iter().map(PublicUser::of).collect())
    }
}

/// Deactivated and archived accounts are not in the directory.
fn listed(user: &User) -> bool {
    user.is_active && !user.archived
}
