//! `apiKeys`, `createApiKey`, `revokeApiKey`.

use async_graphql::{Context, Object, Result, ID};

use super::context::{accounts, caller};
use super::errors::query_error;
use super::payload::payload;
use super::types::ApiKeyNode;

payload! {
    /// `key` is shown this once; authgate keeps only its hash.
    CreateApiKeyPayload { key: String, api_key: ApiKeyNode }
    RevokeApiKeyPayload {}
}

#[derive(Default)]
pub struct ApiKeysQuery;

#[Object]
impl ApiKeysQuery {
    /// The caller's own API keys.
    async fn api_keys(&self, ctx: &Context<'_>) -> Result<Vec<ApiKeyNode>> {
        let keys = accounts(ctx)?
            .api_keys
            .list(caller(ctx))
            .await
            .map_err(query_error)?;
        Ok(keys.into_iter().map(ApiKeyNode).collect())
    }
}

#[derive(Default)]
pub struct ApiKeysMutation;

#[Object]
impl ApiKeysMutation {
    async fn create_api_key(&self, ctx: &Context<'_>, name: String) -> Result<CreateApiKeyPayload> {
        Ok(
            match accounts(ctx)?.api_keys.create(caller(ctx), &name).await {
                Ok((key, record)) => CreateApiKeyPayload {
                    success: true,
                    errors: None,
                    key: Some(key),
                    api_key: Some(ApiKeyNode(record)),
                },
                Err(failure) => CreateApiKeyPayload::failed(failure),
            },
        )
    }

    async fn revoke_api_key(&self, ctx: &Context<'_>, id: ID) -> Result<RevokeApiKeyPayload> {
        let result = accounts(ctx)?.api_keys.revoke(caller(ctx), &id).await;
        Ok(RevokeApiKeyPayload::from_result(result))
    }
}
