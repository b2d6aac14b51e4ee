//! The GraphQL account API: a thin adapter from the schema to the account logic.
//!
//! Each area of the API is its own `#[Object]` merged into [`Query`] (and, as they land,
//! `Mutation`), so adding one is a new file and a line here.

mod keys;

use std::sync::Arc;

use async_graphql::{EmptyMutation, EmptySubscription, MergedObject, Schema};

use crate::app::App;
use crate::config::GraphqlSection;

pub type AuthgateSchema = Schema<Query, EmptyMutation, EmptySubscription>;

#[derive(MergedObject, Default)]
pub struct Query(keys::KeysQuery);

pub fn build_schema(app: Arc<App>, limits: &GraphqlSection) -> AuthgateSchema {
    let mut builder = Schema::build(Query::default(), EmptyMutation, EmptySubscription)
        .data(app)
        .limit_depth(limits.max_depth)
        .limit_complexity(limits.max_complexity);
    if !limits.introspection {
        builder = builder.disable_introspection();
    }
    builder.finish()
}

/// A GraphQL answer ready for HTTP.
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Runs one GraphQL-over-HTTP POST body (`{query, variables, operationName}`).
pub async fn execute(schema: &AuthgateSchema, body: &[u8]) -> Reply {
    let is_object = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    let parsed = if is_object {
        serde_json::from_slice(body)
    } else {
        Err(serde::de::Error::custom("expected a JSON object"))
    };
    let request: async_graphql::Request = match parsed {
        Ok(request) => request,
        Err(e) => {
            let message = if std::str::from_utf8(body).is_err() {
                "request body is not UTF-8".to_string()
            } else {
                format!("request body is not a GraphQL JSON request: {e}")
            };
            return Reply {
                status: 400,
                body: error_body(&message),
            };
        }
    };
    let response = schema.execute(request).await;
    Reply {
        status: 200,
        body: serde_json::to_vec(&response).unwrap_or_else(|_| error_body("internal error")),
    }
}

/// A GraphQL-shaped error document: `{"errors": [{"message": ...}]}`.
pub fn error_body(message: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "errors": [{ "message": message }] }))
        .unwrap_or_default()
}

/// The GraphiQL page served on `GET /graphql` when `graphql.playground` is on.
pub fn graphiql_page() -> String {
    async_graphql::http::GraphiQLSource::build()
        .endpoint("/graphql")
        .title("authgate")
        .finish()
}
