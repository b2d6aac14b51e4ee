//! Responses authgate writes itself. Header and body are written directly (not through
//! `respond_error`) so the client's keep-alive connection survives a 401.

use http::HeaderValue;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::Result;

use crate::gate::Denial;
use crate::reply::{ErrorBody, Reply};

pub async fn reply(session: &mut Session, request_id: &HeaderValue, reply: Reply) -> Result<()> {
    let mut header = ResponseHeader::build(reply.status, Some(6 + reply.headers.len()))?;
    // A 204 has no body, and so neither a type nor a length (RFC 9110 §8.6).
    if reply.status != 204 {
        header.insert_header("content-type", reply.content_type)?;
        header.insert_header("content-length", reply.body.len().to_string())?;
    }
    header.insert_header("x-request-id", request_id.clone())?;
    if !reply
        .headers
        .iter()
        .any(|(name, _)| name == "cache-control")
    {
        header.insert_header("cache-control", "no-store")?;
    }
    for (name, value) in reply.headers {
        header.append_header(name, value)?;
    }
    let head_only = session.req_header().method == http::Method::HEAD;
    session
        .write_response_header(Box::new(header), head_only || reply.body.is_empty())
        .await?;
    if !head_only && !reply.body.is_empty() {
        session.write_response_body(Some(reply.body), true).await?;
    }
    Ok(())
}

pub async fn json(
    session: &mut Session,
    request_id: &HeaderValue,
    status: u16,
    body: &ErrorBody,
    www_authenticate: Option<String>,
) -> Result<()> {
    let mut r = Reply::json_error(status, body);
    if let Some(value) = www_authenticate {
        r = r.with_header("www-authenticate", value);
    }
    reply(session, request_id, r).await
}

/// 401 with an RFC 6750 challenge, or 403.
pub async fn denial(
    session: &mut Session,
    request_id: &HeaderValue,
    denial: &Denial,
) -> Result<()> {
    let challenge = (denial.status == 401).then(|| match denial.error {
        None => r#"Bearer realm="authgate""#.to_string(),
        Some(error) => format!(
            r#"Bearer realm="authgate", error="{error}", error_description="{}""#,
            quotable(&denial.description)
        ),
    });
    let body = ErrorBody::new(
        denial.error.unwrap_or("unauthenticated"),
        denial.description.clone(),
    );
    json(session, request_id, denial.status, &body, challenge).await
}

/// An RFC 7230 quoted-string body: no quotes, backslashes or control characters.
fn quotable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c == '"' || c == '\\' || c.is_control() {
                '\''
            } else {
                c
            }
        })
        .collect()
}
