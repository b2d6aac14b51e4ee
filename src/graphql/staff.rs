//! Staff queries: `users` (a Relay connection) and `user`.

use async_graphql::connection::{query, Connection, Edge, EmptyFields};
use async_graphql::{Context, Object, Result, SimpleObject, ID};

use super::context::{accounts, caller};
use super::errors::query_error;
use super::types::UserNode;
use crate::accounts::UserFilter;

#[derive(SimpleObject)]
pub struct TotalCount {
    pub total_count: usize,
}

pub type UserConnection = Connection<usize, UserNode, TotalCount, EmptyFields>;

#[derive(Default)]
pub struct StaffQuery;

#[Object]
impl StaffQuery {
    /// Staff only: users, filtered, as a Relay connection.
    #[allow(clippy::too_many_arguments)]
    async fn users(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        email: Option<String>,
        username: Option<String>,
        verified: Option<bool>,
        archived: Option<bool>,
        is_staff: Option<bool>,
        search: Option<String>,
    ) -> Result<Option<UserConnection>> {
        let filter = UserFilter {
            email,
            username,
            verified,
            archived,
            is_staff,
            search,
            ..Default::default()
        };
        let list = accounts(ctx)?
            .staff
            .list(caller(ctx), &filter)
            .await
            .map_err(query_error)?;
        let connection = query(
            after,
            before,
            first,
            last,
            |after, before, first, last| async move {
                let total = list.len();
                let mut start = after.map_or(0, |a: usize| a.saturating_add(1)).min(total);
                let mut end = before.unwrap_or(total).min(total).max(start);
                if let Some(first) = first {
                    end = end.min(start + first);
                }
                if let Some(last) = last {
                    start = start.max(end.saturating_sub(last));
                }
                let mut connection = Connection::with_additional_fields(
                    start > 0,
                    end < total,
                    TotalCount { total_count: total },
                );
                connection.edges.extend(
                    list[start..end]
                        .iter()
                        .enumerate()
                        .map(|(i, user)| Edge::new(start + i, UserNode(user.clone()))),
                );
                Ok::<_, async_graphql::Error>(connection)
            },
        )
        .await?;
        Ok(Some(connection))
    }

    /// Staff, or the user themself.
    async fn user(&self, ctx: &Context<'_>, id: ID) -> Result<Option<UserNode>> {
        let user = accounts(ctx)?
            .staff
            .user(caller(ctx), &id)
            .await
            .map_err(query_error)?;
        Ok(user.map(UserNode))
    }
}
