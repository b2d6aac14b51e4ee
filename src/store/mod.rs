//! Where the account logic's state lives: one implementation of each `crate::accounts::storage`
//! trait per backend. sled (one process: users, API keys, refresh tokens), PostgreSQL
//! (everything, shared by replicas), Redis (refresh tokens and rate limits, shared by
//! replicas) and memory (rate limits of one process); `migrate` copies sled into PostgreSQL.

pub mod memory;
pub mod migrate;
pub mod postgres;
pub mod redis;
pub mod sled;
