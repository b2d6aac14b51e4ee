//! authgate: an authentication sidecar. See ARCHITECTURE.md for the map.

pub mod accounts;
pub mod admin;
pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod cookies;
pub mod cors;
pub mod dialects;
pub mod email;
pub mod files;
pub mod gate;
pub mod graphql;
pub mod jwt;
pub mod keys;
pub mod metrics;
pub mod pages;
pub mod proxy;
pub mod reply;
pub mod server;
pub mod store;
pub mod verifier;
