//! The CLI side of account administration: straight into the store when no server holds it
//! (always, with a database: every replica and the CLI share it), otherwise through the
//! running server's admin listener.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use super::CreateUser;
use crate::accounts::Failure;
use crate::app::StartError;
use crate::config::Config;
use crate::store::sled::OpenError;

/// Creates an account; returns its id and email, or a one-line reason.
pub fn create_user(config: &Config, request: CreateUser) -> Result<(String, String), String> {
    match crate::app::open_stores(config) {
        Ok(stores) => create_locally(config, stores, request),
        Err(StartError::Store(OpenError::Locked(_))) => create_remotely(config, &request),
        Err(e) => Err(e.to_string()),
    }
}

fn create_locally(
    config: &Config,
    stores: crate::app::Stores,
    request: CreateUser,
) -> Result<(String, String), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let keys = crate::keys::KeyRing::open_or_init(&config.jwt.keys_dir, config.jwt.key_bits)
            .map_err(|e| e.to_string())?;
        let tokens = Arc::new(crate::jwt::TokenService::new(
            Arc::new(keys),
            &config.jwt.issuer,
            config.jwt.audience.as_deref(),
            config.jwt.access_ttl,
            config.jwt.leeway,
        ));
        let accounts =
            crate::app::build_accounts(config, stores, tokens).map_err(|e| e.to_string())?;
        let links = crate::app::native_links(config);
        let user = super::create(&accounts, links.as_ref(), request)
            .await
            .map_err(|f| describe(&f))?;
        Ok((user.id, user.email))
    })
}

fn create_remotely(config: &Config, request: &CreateUser) -> Result<(String, String), String> {
    let token = super::token::read(&config.storage.data_dir).map_err(|e| {
        format!("the server holds the user store, and its admin token cannot be read: {e}")
    })?;
    let addr = admin_addr(config);
    let body = serde_json::to_vec(request).map_err(|e| e.to_string())?;
    let (status, reply) = send(addr, "POST", "/users", Some(&token), &body)
        .map_err(|e| format!("admin listener {addr}: {e}"))?;
    let reply: serde_json::Value = serde_json::from_slice(&reply).unwrap_or_default();
    match status {
        201 => Ok((
            reply["id"].as_str().unwrap_or_default().to_string(),
            reply["email"].as_str().unwrap_or_default().to_string(),
        )),
        _ => Err(describe_json(&reply["errors"])
            .unwrap_or_else(|| format!("admin listener answered {status}"))),
    }
}

/// The running server's readiness (`authgate health`): its `/readyz` answer when it is 200,
/// else why not.
pub fn readiness(config: &Config) -> Result<String, String> {
    let addr = admin_addr(config);
    let (status, body) = send(addr, "GET", "/readyz", None, &[])
        .map_err(|e| format!("admin listener {addr}: {e}"))?;
    let body = String::from_utf8_lossy(&body).trim().to_string();
    match status {
        200 => Ok(body),
        _ => Err(format!("not ready (HTTP {status}): {body}")),
    }
}

/// The admin listener as a local client reaches it (a wildcard bind is reached on loopback).
fn admin_addr(config: &Config) -> SocketAddr {
    let addr = config.server.admin_listen;
    if addr.ip().is_unspecified() {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
    } else {
        addr
    }
}

/// A minimal HTTP/1.1 request over loopback: (status, body).
fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> std::io::Result<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let authorization = token
        .map(|token| format!("Authorization: Bearer {token}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{authorization}\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("malformed response"))?;
    let status = std::str::from_utf8(&response[..split])
        .ok()
        .and_then(|head| head.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other("malformed status line"))?;
    Ok((status, response[split + 4..].to_vec()))
}

/// `email: A user with that email already exists. (unique)`
pub fn describe(failure: &Failure) -> String {
    describe_json(&super::errors_json(failure.clone())).unwrap_or_default()
}

fn describe_json(errors: &serde_json::Value) -> Option<String> {
    let map = errors.as_object()?;
    let parts: Vec<String> = map
        .iter()
        .flat_map(|(field, list)| {
            list.as_array().into_iter().flatten().map(move |e| {
                format!(
                    "{field}: {} ({})",
                    e["message"].as_str().unwrap_or_default(),
                    e["code"].as_str().unwrap_or_default()
                )
            })
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}
