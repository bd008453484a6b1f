-- Sites (tenants) and their keys. Keys are random 32-byte secrets, so a SHA-256 digest is
-- enough to store them: only the digest is kept; the key itself is shown once, at creation.
CREATE TABLE sites (
  id text PRIMARY KEY,
  name text NOT NULL UNIQUE,
  write_key_hash text NOT NULL UNIQUE,
  secret_key_hash text NOT NULL UNIQUE,
  -- HMAC key of the site's user tokens: random, separate from the secret key, rotatable.
  token_signing_key text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
