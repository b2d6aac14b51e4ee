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
        let keys = app.tokens.keys().snapshot();
        keys.current()
            .map(|key| key.public_pem.clone())
            .unwrap_or_default()
    }
}
