//! Key publishing over GraphQL.

use std::sync::Arc;

use async_graphql::{Context, Object};

use crate::app::App;

#[derive(Default)]
pub struct KeysQuery;

#[Object]
impl KeysQuery {
    /// PEM (SPKI) of the current signing key.
    async fn public_key(&self, ctx: &Context<'_>) -> String {
        let app = ctx.data_unchecked::<Arc<App>>();
        app.tokens.keys().snapshot().current().public_pem.clone()
    }
}
