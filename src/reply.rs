//! An HTTP answer of authgate's own (GraphQL, pages, key documents, errors) as plain values:
//! what the adapters produce and the proxy writes.

use bytes::Bytes;
use serde::Serialize;

/// The JSON error document of the public listener: `{"error", "error_description"}`.
#[derive(Serialize)]
pub struct ErrorBody {
    pub error: &'static str,
    pub error_description: String,
}

impl ErrorBody {
    pub fn new(error: &'static str, description: impl Into<String>) -> Self {
        ErrorBody {
            error,
            error_description: description.into(),
        }
    }
}

/// A complete response from one of our own endpoints.
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Bytes,
    pub headers: Vec<(http::HeaderName, String)>,
}

impl Reply {
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
        Reply {
            status,
            content_type,
            body: body.into(),
            headers: Vec::new(),
        }
    }

    pub fn json_error(status: u16, body: &ErrorBody) -> Reply {
        Reply::new(
            status,
            "application/json",
            serde_json::to_vec(body).unwrap_or_default(),
        )
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers
            .push((http::HeaderName::from_static(name), value.into()));
        self
    }
}
