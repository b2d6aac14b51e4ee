-- The revocation list (SPEC §13): kind 'a' is an account's not_before (at), kind 's' a
-- revoked session (sid) whose tokens are all dead by `at`. `until` is when the row can go.
-- `recorded` is the database clock (milliseconds) at the last write: replicas read the rows
-- recorded since their previous read.
CREATE TABLE revocations (
    kind     "char" NOT NULL,
    id       text NOT NULL,
    at       bigint NOT NULL,
    until    bigint NOT NULL,
    recorded bigint NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE INDEX revocations_recorded ON revocations (recorded);
CREATE INDEX revocations_until ON revocations (until);
