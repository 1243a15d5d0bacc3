/**
 * Versioned schema migrations. Each entry runs once, in order, inside a transaction; the
 * database's `user_version` pragma records how far it got. Never edit a published entry:
 * append a new one.
 */
export const MIGRATIONS: readonly string[] = [
  // 1: the initial head-end schema.
  `
  CREATE TABLE service_identities (
    role TEXT PRIMARY KEY, cert_der BLOB NOT NULL, sealed_key BLOB NOT NULL,
    created_at INTEGER NOT NULL);
  CREATE TABLE devices (
    id TEXT PRIMARY KEY, hardware_id TEXT NOT NULL, public_key BLOB NOT NULL,
    cert_der BLOB NOT NULL, serial TEXT NOT NULL, agent_version TEXT NOT NULL,
    security_level INTEGER NOT NULL, platform TEXT NOT NULL, model TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'active', provisioned_at INTEGER NOT NULL,
    revoked_at INTEGER, revoke_reason TEXT);
  CREATE INDEX devices_hardware ON devices(hardware_id);
  CREATE TABLE provisioning_events (hardware_id TEXT NOT NULL, at INTEGER NOT NULL);
  CREATE INDEX provisioning_events_hw ON provisioning_events(hardware_id, at);
  CREATE TABLE policies (name TEXT PRIMARY KEY, spec TEXT NOT NULL, updated_at INTEGER NOT NULL);
  CREATE TABLE content_keys (
    kid TEXT PRIMARY KEY, sealed_key BLOB NOT NULL, content_id TEXT NOT NULL,
    policy TEXT, track_type INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL);
  CREATE INDEX content_keys_content ON content_keys(content_id);
  CREATE TABLE roots (
    id TEXT PRIMARY KEY, policy TEXT, sealed_secret BLOB NOT NULL, created_at INTEGER NOT NULL);
  CREATE TABLE nonces (nonce TEXT PRIMARY KEY, expires_at INTEGER NOT NULL);
  CREATE INDEX nonces_expiry ON nonces(expires_at);
  CREATE TABLE licenses (
    id TEXT NOT NULL, device_id TEXT NOT NULL, content_id TEXT NOT NULL, kids TEXT NOT NULL,
    policy TEXT NOT NULL, kind TEXT NOT NULL, issued_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL, status TEXT NOT NULL, renewals INTEGER NOT NULL DEFAULT 0,
    released_at INTEGER, PRIMARY KEY (id, device_id));
  CREATE TABLE accounts (
    id TEXT PRIMARY KEY, domain_id TEXT NOT NULL UNIQUE, service_id TEXT NOT NULL,
    max_devices INTEGER NOT NULL, revision INTEGER NOT NULL, domain_public_key BLOB,
    sealed_domain_key BLOB, service_hold TEXT, created_at INTEGER NOT NULL);
  CREATE TABLE domain_members (
    account_id TEXT NOT NULL REFERENCES accounts(id), device_id TEXT NOT NULL,
    friendly_name TEXT NOT NULL, joined_at INTEGER NOT NULL,
    PRIMARY KEY (account_id, device_id));
  `,
  // 2: server flags shared by every worker and kept across restarts; provisioning attempts
  // pruned by time (the index makes each prune touch only the rows that expired).
  `
  CREATE TABLE flags (name TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at INTEGER NOT NULL);
  CREATE INDEX provisioning_events_at ON provisioning_events(at);
  CREATE INDEX domain_members_device ON domain_members(device_id);
  `,
  // 3: fleet (issue 5): revocation entries, issued revocation lists (the list number is the
  // highest issued; `revision` counts entry changes so a publisher knows a list is due),
  // device fleet status and queued commands with their last ack.
  `
  CREATE TABLE revocations (
    kind TEXT NOT NULL, value TEXT NOT NULL, revoked_at INTEGER NOT NULL,
    reason TEXT NOT NULL, revision INTEGER NOT NULL, PRIMARY KEY (kind, value));
  CREATE TABLE fleet_state (id INTEGER PRIMARY KEY CHECK (id = 1), revision INTEGER NOT NULL);
  INSERT INTO fleet_state (id, revision) VALUES (1, 0);
  CREATE TABLE revocation_lists (
    number INTEGER PRIMARY KEY, revision INTEGER NOT NULL, issued_at INTEGER NOT NULL,
    next_update INTEGER NOT NULL, signed BLOB NOT NULL);
  CREATE TABLE fleet_devices (
    device_id TEXT PRIMARY KEY, online INTEGER NOT NULL DEFAULT 0,
    agent_version TEXT NOT NULL DEFAULT '', license_count INTEGER NOT NULL DEFAULT 0,
    list_number INTEGER NOT NULL DEFAULT 0, output_status TEXT NOT NULL DEFAULT '',
    reported_at INTEGER NOT NULL DEFAULT 0, updated_at INTEGER NOT NULL);
  CREATE TABLE fleet_commands (
    id TEXT PRIMARY KEY, device_id TEXT NOT NULL, action INTEGER NOT NULL,
    argument TEXT NOT NULL, created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL,
    published_at INTEGER, acked_at INTEGER, ack_ok INTEGER, ack_code INTEGER, ack_message TEXT);
  CREATE INDEX fleet_commands_device ON fleet_commands(device_id, created_at);
  `,
];
