//! The native GraphQL account API (SPEC §7): a thin adapter from the schema to the account
//! services, one file per area (the same areas as `crate::accounts`), merged into [`Query`]
//! and [`Mutation`]. `errors` maps domain failures to the native error forms; `execute` runs a
//! GraphQL-over-HTTP body for any schema (the dialects use it too).

mod api_keys;
pub mod context;
pub mod errors;
mod keys;
pub(crate) mod payload;
mod profile;
mod recovery;
mod registration;
mod secondary_email;
mod sessions;
mod staff;
mod totp;
pub mod types;

pub use context::REFRESH_COOKIE;

use std::net::IpAddr;
use std::sync::Arc;

use async_graphql::{EmptySubscription, MergedObject, ObjectType, Schema, SubscriptionType};

use crate::app::App;
use crate::config;
use crate::reply::Reply;

pub type AuthgateSchema = Schema<Query, Mutation, EmptySubscription>;

#[derive(MergedObject, Default)]
pub struct Query(
    keys::KeysQuery,
    profile::ProfileQuery,
    registration::RegistrationQuery,
    staff::StaffQuery,
    api_keys::ApiKeysQuery,
);

#[derive(MergedObject, Default)]
pub struct Mutation(
    registration::RegistrationMutation,
    sessions::SessionsMutation,
    profile::ProfileMutation,
    recovery::RecoveryMutation,
    secondary_email::SecondaryEmailMutation,
    api_keys::ApiKeysMutation,
    totp::TotpMutation,
);

/// Who is calling: from the request's `Authorization` header, verified by the proxy.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    pub user_id: Option<String>,
    /// The session (`sid`, the refresh-token family) of the caller's token, if it has one.
    pub session_id: Option<String>,
    pub client_ip: Option<IpAddr>,
    /// The refresh token from the request's cookie, if any.
    pub refresh_cookie: Option<String>,
}

pub fn build_schema(app: Arc<App>, limits: &config::Graphql) -> AuthgateSchema {
    let mut builder = Schema::build(Query::default(), Mutation::default(), EmptySubscription)
        .data(app)
        .limit_depth(limits.max_depth)
        .limit_complexity(limits.max_complexity);
    if !limits.introspection {
        builder = builder.disable_introspection();
    }
    builder.finish()
}

/// A schema that runs requests: the native one, or a dialect's (derived or built at start).
#[async_trait::async_trait]
pub trait Executor: Send + Sync {
    async fn run(&self, request: async_graphql::Request) -> async_graphql::Response;
}

#[async_trait::async_trait]
impl<Q, M, S> Executor for Schema<Q, M, S>
where
    Q: ObjectType + 'static,
    M: ObjectType + 'static,
    S: SubscriptionType + 'static,
{
    async fn run(&self, request: async_graphql::Request) -> async_graphql::Response {
        self.execute(request).await
    }
}

#[async_trait::async_trait]
impl Executor for async_graphql::dynamic::Schema {
    async fn run(&self, request: async_graphql::Request) -> async_graphql::Response {
        self.execute(request).await
    }
}

/// Runs one GraphQL-over-HTTP POST body (`{query, variables, operationName}`) against any
/// schema, with `data` (the caller) in its context.
pub async fn execute<E, D>(schema: &E, body: &[u8], data: D) -> Reply
where
    E: Executor + ?Sized,
    D: std::any::Any + Send + Sync,
{
    let request = match parse_request(body) {
        Ok(request) => request,
        Err(refusal) => return refusal,
    };
    let response = schema.run(request.data(data)).await;
    let body = serde_json::to_vec(&response).unwrap_or_else(|_| error_body("internal error"));
    reply_with_headers(body, &response)
}

/// A `200` JSON answer with the response headers resolvers set (cookies).
pub fn reply_with_headers(body: Vec<u8>, response: &async_graphql::Response) -> Reply {
    let mut reply = Reply::new(200, "application/json", body);
    reply.headers.extend(
        response
            .http_headers
            .iter()
            .filter_map(|(name, value)| Some((name.clone(), value.to_str().ok()?.to_string()))),
    );
    reply
}

/// The GraphQL request in a POST body, or the `400` answer refusing it.
pub fn parse_request(body: &[u8]) -> Result<async_graphql::Request, Reply> {
    // The whole body, not only the fields serde reads: it skips unknown ones unchecked.
    let Ok(text) = std::str::from_utf8(body) else {
        let message = "request body is not UTF-8";
        return Err(Reply::new(400, "application/json", error_body(message)));
    };
    let is_object = text.trim_start().starts_with('{');
    let parsed = if is_object {
        serde_json::from_str(text)
    } else {
        Err(serde::de::Error::custom("expected a JSON object"))
    };
    parsed.map_err(|e| {
        let message = format!("request body is not a GraphQL JSON request: {e}");
        Reply::new(400, "application/json", error_body(&message))
    })
}

/// A GraphQL-shaped error document: `{"errors": [{"message": ...}]}`.
pub fn error_body(message: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "errors": [{ "message": message }] }))
        .unwrap_or_default()
}

/// The GraphiQL page for a GraphQL endpoint, served on `GET` when `graphql.playground` is on.
pub fn graphiql_page(endpoint: &str) -> String {
    graphiql_page_titled(endpoint, "authgate")
}

/// The GraphiQL page for an endpoint, under a title of its own (a dialect's).
pub fn graphiql_page_titled(endpoint: &str, title: &str) -> String {
    async_graphql::http::GraphiQLSource::build()
        .endpoint(endpoint)
        .title(title)
        .finish()
}
