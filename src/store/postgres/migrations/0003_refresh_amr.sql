-- How the login that started a token's family proved itself (the tokens' `amr`, space-separated);
-- empty for tokens stored before, all of which came from a password login.
ALTER TABLE refresh_tokens ADD COLUMN amr text NOT NULL DEFAULT '';
