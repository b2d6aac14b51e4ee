//! The integration tests, one binary (linked once): the real `authgate` binary on ephemeral
//! ports, in front of real upstreams, with real SMTP, Redis and browser processes where an area
//! needs them. One module per area; `common` is the harness.

mod common;

mod accounts;
mod api_keys;
mod browser;
mod cli;
mod cors;
mod dialect_craft;
mod dialect_django;
mod dialect_karrio;
mod dialect_krypton;
mod gateway;
mod graphql_http;
mod jwt_attacks;
mod keys;
mod logs;
mod postgres_store;
mod profile;
mod recovery;
mod refresh_stores;
mod replicas;
mod revocation;
mod secondary_email;
mod sessions;
mod staff;
mod store_migrate;
mod totp;
mod verifier;
