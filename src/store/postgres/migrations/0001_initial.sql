-- Schema version 1: users with their unique addresses and names, API keys, refresh-token
-- families, rate-limit windows and the secrets every replica shares.

-- One row per account. `record` is the whole account as JSON (the same serialization the
-- embedded store keeps), so fields added later with a default need no migration; `email`,
-- `username` and `date_joined` are copies for people reading the table with SQL.
CREATE TABLE users (
    id          text PRIMARY KEY,
    email       text NOT NULL,
    username    text,
    date_joined bigint NOT NULL,
    record      jsonb NOT NULL
);

-- Every primary and secondary email, folded (trimmed, lower-cased): the primary key makes
-- an address belong to one account at most, across primary and secondary addresses.
CREATE TABLE user_emails (
    address text PRIMARY KEY,
    user_id text NOT NULL REFERENCES users (id) ON DELETE CASCADE
);
CREATE INDEX user_emails_user ON user_emails (user_id);

-- Folded usernames, unique the same way.
CREATE TABLE user_names (
    name    text PRIMARY KEY,
    user_id text NOT NULL REFERENCES users (id) ON DELETE CASCADE
);
CREATE INDEX user_names_user ON user_names (user_id);

-- API keys, by the SHA-256 of the key (the key itself is never stored).
CREATE TABLE api_keys (
    hash         text PRIMARY KEY,
    id           text NOT NULL,
    user_id      text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         text NOT NULL,
    prefix       text NOT NULL,
    created_at   bigint NOT NULL,
    last_used_at bigint
);
CREATE INDEX api_keys_user ON api_keys (user_id, created_at, id);

-- Refresh-token families. A revoked family stays as a tombstone until it expires, so a
-- token issued into it after the revocation (a rotation racing a reuse) is refused.
CREATE TABLE refresh_families (
    family     text PRIMARY KEY,
    user_id    text NOT NULL,
    expires_at bigint NOT NULL,
    revoked    boolean NOT NULL DEFAULT false
);
CREATE INDEX refresh_families_user ON refresh_families (user_id);
CREATE INDEX refresh_families_expiry ON refresh_families (expires_at);

-- Refresh tokens by the SHA-256 of the token. Used tokens stay until their family is
-- revoked or they expire: presenting one again is reuse.
CREATE TABLE refresh_tokens (
    hash       text PRIMARY KEY,
    family     text NOT NULL REFERENCES refresh_families (family) ON DELETE CASCADE,
    user_id    text NOT NULL,
    expires_at bigint NOT NULL,
    used       boolean NOT NULL DEFAULT false
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family);
CREATE INDEX refresh_tokens_expiry ON refresh_tokens (expires_at);

-- Fixed rate-limit windows shared by every replica. Unlogged: counters are cheap to lose in
-- a database crash, and writes skip the WAL.
CREATE UNLOGGED TABLE rate_limits (
    key          text NOT NULL,
    window_start bigint NOT NULL,
    window_end   bigint NOT NULL,
    count        integer NOT NULL,
    PRIMARY KEY (key, window_start)
);
CREATE INDEX rate_limits_end ON rate_limits (window_end);

-- Secrets every replica must agree on (the email-token key, the admin token): the first
-- replica to start writes one, every other reads it.
CREATE TABLE shared_secrets (
    name       text PRIMARY KEY,
    value      bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
