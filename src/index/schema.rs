//! Numbered schema migrations. `PRAGMA user_version` records how many have
//! been applied; each runs once, in order, inside the transaction that opens
//! the index.

/// The migrations, oldest first. Never edit one that has shipped: add another.
pub const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    r#"
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

-- Content-addressed blobs shared by packages: asset lists, app configs.
CREATE TABLE blobs (
    id     INTEGER PRIMARY KEY,
    sha256 TEXT NOT NULL UNIQUE,
    bytes  BLOB NOT NULL
) STRICT;

-- Every asset known to be in the store, so a publish skips it without asking the store.
CREATE TABLE assets (
    id           INTEGER PRIMARY KEY,
    sha256       TEXT NOT NULL UNIQUE,
    size         INTEGER NOT NULL,
    content_type TEXT NOT NULL
) STRICT;

CREATE TABLE packages (
    id           INTEGER PRIMARY KEY,
    channel      TEXT NOT NULL,
    platform     TEXT NOT NULL CHECK (platform IN ('ios', 'android')),
    fingerprint  TEXT NOT NULL,
    version      TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('update', 'rollBackToEmbedded')),
    manifest_id  TEXT,
    created_at   INTEGER NOT NULL,           -- ms since the epoch, UTC
    restamp_of   TEXT,                       -- the original's version, never an intermediate re-stamp
    message      TEXT,
    base_url     TEXT,
    -- Rows are kept small (the index is downloaded and uploaded whole by every
    -- command): assets and shared blobs by row id, digests as raw bytes.
    launch_asset INTEGER REFERENCES assets (id),
    launch_key   TEXT,
    asset_list   INTEGER REFERENCES blobs (id),
    expo_config  INTEGER REFERENCES blobs (id),
    content_hash BLOB NOT NULL,              -- SHA-256 of what a retried publish must match
    signatures   TEXT NOT NULL CHECK (json_valid(signatures)),
    body_sha256  BLOB NOT NULL,              -- of the Expo body, to catch rendering drift
    banned_at    INTEGER,
    ban_reason   TEXT,
    banned_by    TEXT,
    UNIQUE (platform, version),
    CHECK ((banned_at IS NULL AND ban_reason IS NULL AND banned_by IS NULL)
        OR (banned_at IS NOT NULL AND ban_reason IS NOT NULL AND banned_by IS NOT NULL)),
    CHECK (ban_reason IS NULL OR trim(ban_reason) <> ''),
    CHECK ((kind = 'update') = (manifest_id IS NOT NULL AND launch_asset IS NOT NULL
                                AND launch_key IS NOT NULL AND asset_list IS NOT NULL
                                AND base_url IS NOT NULL))
) STRICT;
CREATE INDEX packages_by_pointer ON packages (channel, platform, fingerprint, created_at);
CREATE INDEX packages_by_original ON packages (platform, restamp_of);

-- A package is immutable but for its ban, and a ban is irreversible.
CREATE TRIGGER packages_immutable BEFORE UPDATE ON packages
WHEN OLD.banned_at IS NOT NULL
  OR NEW.id IS NOT OLD.id OR NEW.channel IS NOT OLD.channel OR NEW.platform IS NOT OLD.platform
  OR NEW.fingerprint IS NOT OLD.fingerprint OR NEW.version IS NOT OLD.version OR NEW.kind IS NOT OLD.kind
  OR NEW.manifest_id IS NOT OLD.manifest_id OR NEW.created_at IS NOT OLD.created_at
  OR NEW.restamp_of IS NOT OLD.restamp_of OR NEW.message IS NOT OLD.message
  OR NEW.base_url IS NOT OLD.base_url OR NEW.launch_asset IS NOT OLD.launch_asset
  OR NEW.launch_key IS NOT OLD.launch_key OR NEW.asset_list IS NOT OLD.asset_list
  OR NEW.expo_config IS NOT OLD.expo_config OR NEW.content_hash IS NOT OLD.content_hash
  OR NEW.signatures IS NOT OLD.signatures OR NEW.body_sha256 IS NOT OLD.body_sha256
BEGIN
  SELECT RAISE(ABORT, 'packages are immutable and bans irreversible');
END;
CREATE TRIGGER packages_never_deleted BEFORE DELETE ON packages
BEGIN
  SELECT RAISE(ABORT, 'packages are never deleted');
END;

-- The signed noUpdateAvailable directive of a pointer that has packages but none live.
CREATE TABLE pointer_directives (
    channel     TEXT NOT NULL,
    platform    TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    signatures  TEXT NOT NULL CHECK (json_valid(signatures)),
    body_sha256 TEXT NOT NULL,
    PRIMARY KEY (channel, platform, fingerprint)
) STRICT;

CREATE TABLE operations (
    id         INTEGER PRIMARY KEY,
    kind       TEXT NOT NULL,
    actor      TEXT NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ('pending', 'running', 'succeeded', 'failed')),
    error      TEXT,
    started_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    CHECK ((state = 'failed') = (error IS NOT NULL))
) STRICT;
CREATE TRIGGER operations_insert_pending BEFORE INSERT ON operations
WHEN NEW.state <> 'pending'
BEGIN
  SELECT RAISE(ABORT, 'an operation starts pending');
END;
CREATE TRIGGER operations_transitions BEFORE UPDATE ON operations
WHEN NOT ((OLD.state = 'pending' AND NEW.state IN ('running', 'failed'))
       OR (OLD.state = 'running' AND NEW.state IN ('succeeded', 'failed')))
  OR NEW.id IS NOT OLD.id OR NEW.kind IS NOT OLD.kind OR NEW.actor IS NOT OLD.actor
  OR NEW.started_at IS NOT OLD.started_at
BEGIN
  SELECT RAISE(ABORT, 'operations move pending -> running -> succeeded | failed and never change once finished');
END;

CREATE TABLE audit_events (
    id           INTEGER PRIMARY KEY,
    time         INTEGER NOT NULL,
    actor        TEXT NOT NULL,
    action       TEXT NOT NULL,
    target       TEXT NOT NULL,
    details      TEXT NOT NULL CHECK (json_valid(details)),
    operation_id INTEGER NOT NULL REFERENCES operations (id)
) STRICT;
"#,
    // 2: the commit protocol for every writer (docs/format.md).
    r#"
-- Each invocation's id; a retry finds its change already committed here.
ALTER TABLE operations ADD COLUMN op_id TEXT;
CREATE TABLE operation_results (
    op_id     TEXT PRIMARY KEY,
    operation INTEGER NOT NULL REFERENCES operations (id),
    output    TEXT NOT NULL CHECK (json_valid(output)),
    pointers  TEXT NOT NULL CHECK (json_valid(pointers))
) STRICT;
CREATE TRIGGER operation_results_immutable BEFORE UPDATE ON operation_results
BEGIN
  SELECT RAISE(ABORT, 'a committed operation result never changes');
END;

-- Per pointer: the generation of the last commit that changed what it
-- serves, stamped on its objects so no older view can replace a newer one.
CREATE TABLE pointer_stamps (
    channel     TEXT NOT NULL,
    platform    TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    body_sha256 BLOB NOT NULL,
    generation  INTEGER NOT NULL CHECK (generation >= 0),
    PRIMARY KEY (channel, platform, fingerprint)
) STRICT;
CREATE TRIGGER pointer_stamps_forward BEFORE UPDATE ON pointer_stamps
WHEN NEW.generation < OLD.generation
BEGIN
  SELECT RAISE(ABORT, 'a pointer stamp only moves forward');
END;

-- What a gc that holds the lease decided to delete (so a gc that died resumes).
CREATE TABLE gc_pending (
    key       TEXT PRIMARY KEY,
    marked_at INTEGER NOT NULL
) STRICT;

-- The manifest layout a package was signed in: 1 = launchAsset.fileExtension present.
ALTER TABLE packages ADD COLUMN format INTEGER NOT NULL DEFAULT 1 CHECK (format IN (1, 2));
CREATE TRIGGER packages_format_immutable BEFORE UPDATE ON packages
WHEN NEW.format IS NOT OLD.format
BEGIN
  SELECT RAISE(ABORT, 'packages are immutable and bans irreversible');
END;
"#,
    // 3: staged rollouts (docs/format.md).
    r#"
CREATE TABLE rollouts (
    id              INTEGER PRIMARY KEY,
    channel         TEXT NOT NULL,
    platform        TEXT NOT NULL CHECK (platform IN ('ios', 'android')),
    fingerprint     TEXT NOT NULL,
    candidate       INTEGER NOT NULL UNIQUE REFERENCES packages (id),
    control         INTEGER REFERENCES packages (id),   -- live when the rollout started
    strategy        TEXT NOT NULL CHECK (strategy IN ('linear', 'canary')),
    step            INTEGER NOT NULL CHECK (step BETWEEN 1 AND 100),
    abort_threshold REAL NOT NULL CHECK (abort_threshold BETWEEN 0 AND 1),
    percent         INTEGER NOT NULL CHECK (percent BETWEEN 1 AND 100),
    permutation     BLOB NOT NULL CHECK (length(permutation) = 100),
    state           TEXT NOT NULL CHECK (state IN ('created', 'running', 'paused', 'completed', 'aborted')),
    started_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    generation      INTEGER NOT NULL CHECK (generation >= 0),   -- of the commit that last changed it
    record          BLOB NOT NULL,                               -- the signed rollout.json payload
    signatures      TEXT NOT NULL CHECK (json_valid(signatures)),
    gate            TEXT CHECK (gate IS NULL OR json_valid(gate)),   -- the last gate reading
    reason          TEXT CHECK (reason IS NULL OR trim(reason) <> ''),
    CHECK ((state = 'aborted') = (reason IS NOT NULL))
) STRICT;
-- One campaign at a time per pointer.
CREATE UNIQUE INDEX rollouts_one_active ON rollouts (channel, platform, fingerprint)
    WHERE state IN ('created', 'running', 'paused');

-- created -> running <-> paused -> completed | aborted; terminal rows never
-- change; the percentage only grows; what the campaign is never changes.
CREATE TRIGGER rollouts_lifecycle BEFORE UPDATE ON rollouts
WHEN OLD.state IN ('completed', 'aborted')
  OR NOT (NEW.state = OLD.state
       OR (OLD.state = 'created' AND NEW.state IN ('running', 'aborted'))
       OR (OLD.state = 'running' AND NEW.state IN ('paused', 'completed', 'aborted'))
       OR (OLD.state = 'paused' AND NEW.state IN ('running', 'completed', 'aborted')))
  OR NEW.percent < OLD.percent OR NEW.generation < OLD.generation
  OR NEW.id IS NOT OLD.id OR NEW.channel IS NOT OLD.channel OR NEW.platform IS NOT OLD.platform
  OR NEW.fingerprint IS NOT OLD.fingerprint OR NEW.candidate IS NOT OLD.candidate
  OR NEW.control IS NOT OLD.control OR NEW.strategy IS NOT OLD.strategy OR NEW.step IS NOT OLD.step
  OR NEW.abort_threshold IS NOT OLD.abort_threshold OR NEW.permutation IS NOT OLD.permutation
  OR NEW.started_at IS NOT OLD.started_at
BEGIN
  SELECT RAISE(ABORT, 'rollouts move created -> running <-> paused -> completed | aborted, only grow, and never change once finished');
END;
CREATE TRIGGER rollouts_never_deleted BEFORE DELETE ON rollouts
BEGIN
  SELECT RAISE(ABORT, 'rollouts are never deleted');
END;
"#,
    // 4: embedded updates recorded as patch bases (docs/format.md).
    r#"
CREATE TABLE embedded_bases (
    id           INTEGER PRIMARY KEY,
    platform     TEXT NOT NULL CHECK (platform IN ('ios', 'android')),
    fingerprint  TEXT NOT NULL,
    update_id    TEXT NOT NULL,                  -- the build's embedded update id, lowercase
    launch_asset INTEGER NOT NULL REFERENCES assets (id),
    added_at     INTEGER NOT NULL,
    record       BLOB NOT NULL,                  -- the signed state/embedded record's payload
    signatures   TEXT NOT NULL CHECK (json_valid(signatures)),
    UNIQUE (platform, update_id)
) STRICT;
CREATE TRIGGER embedded_bases_immutable BEFORE UPDATE ON embedded_bases
BEGIN
  SELECT RAISE(ABORT, 'an embedded base never changes');
END;
CREATE TRIGGER embedded_bases_never_deleted BEFORE DELETE ON embedded_bases
BEGIN
  SELECT RAISE(ABORT, 'an embedded base is never deleted');
END;
"#,
    // 5: launch-asset patches made for each (requested update, base update) pair.
    r#"
-- Every pair considered, kept or not, so a pair is diffed once. Rows go only
-- when `gc` finds nobody can ask for the patch any more.
CREATE TABLE patches (
    requested_id TEXT NOT NULL,                  -- manifest id of the update downloaded, lowercase
    base_id      TEXT NOT NULL,                  -- id of the update the device runs, lowercase
    target       BLOB NOT NULL CHECK (length(target) = 32),   -- SHA-256 of the requested launch asset
    base         BLOB NOT NULL CHECK (length(base) = 32),     -- SHA-256 of the base's launch asset
    size         INTEGER CHECK (size IS NULL OR size > 0),    -- bytes of the patch; NULL: not diffed (the bundles share almost nothing)
    full_size    INTEGER NOT NULL CHECK (full_size > 0),      -- bytes of the requested launch asset
    sha256       BLOB CHECK (sha256 IS NULL OR (length(sha256) = 32 AND size IS NOT NULL)),  -- of public/patches/R/B; NULL: not kept
    PRIMARY KEY (requested_id, base_id)
) STRICT, WITHOUT ROWID;
CREATE TRIGGER patches_immutable BEFORE UPDATE ON patches
BEGIN
  SELECT RAISE(ABORT, 'a patch row never changes');
END;
"#,
    // 6: retention (`gc --keep CHANNEL=N`): packages past it are retired.
    r#"
-- A retired package is no rollback or promote target any more and its
-- bundle may be deleted once nothing else uses it; its row and signed
-- envelope stay. Retirement is forever.
-- An asset row a package still names (its launch asset) outlives the
-- object gc deleted: marked deleted, and stored again by the next publish
-- that needs it.
ALTER TABLE assets ADD COLUMN deleted INTEGER CHECK (deleted IS NULL OR deleted = 1);
CREATE TABLE retired (
    package   INTEGER PRIMARY KEY REFERENCES packages (id),
    at        INTEGER NOT NULL,
    keep      INTEGER NOT NULL CHECK (keep > 0)    -- the --keep N that retired it (its audit event names the gc)
) STRICT;
CREATE TRIGGER retired_immutable BEFORE UPDATE ON retired
BEGIN
  SELECT RAISE(ABORT, 'a retirement never changes');
END;
CREATE TRIGGER retired_forever BEFORE DELETE ON retired
BEGIN
  SELECT RAISE(ABORT, 'a retired package stays retired');
END;
"#,
    // 7: `otapub refresh` (docs/format.md).
    r#"
-- The Expo layer pointers and rollout buckets serve for a package, re-signed
-- with the current leaf and chain: same part bytes, another expo-signature
-- and certificate_chain. The package's own signatures (its immutable
-- objects) never change.
CREATE TABLE expo_served (
    package     INTEGER PRIMARY KEY REFERENCES packages (id),
    signature   TEXT NOT NULL,                 -- the expo-signature header
    chain       TEXT,                          -- the certificate_chain part (PEM), if any
    body_sha256 TEXT NOT NULL                  -- of the Expo body pointers serve
) STRICT;
"#,
    // 8: finishing what a committed operation left unwritten (docs/format.md: reruns move forward, never twice).
    r#"
-- The generation an operation committed at, and what was run (the command
-- and its arguments, without the global options): a writer that finds an
-- operation committed after the last generation whose pointers are known
-- written finishes it first, and a rerun of the same command adopts it.
-- Rows from before this migration have neither and are never finished again.
ALTER TABLE operation_results ADD COLUMN generation INTEGER CHECK (generation >= 0);
ALTER TABLE operation_results ADD COLUMN invocation TEXT;
CREATE INDEX operation_results_generation ON operation_results (generation);
"#,
    // 9: the builds in the field, for the runtime-version guard (`otapub
    // builds add`; a publish to a runtime version no build has warns).
    r#"
CREATE TABLE builds (
    platform    TEXT NOT NULL CHECK (platform IN ('ios', 'android')),
    fingerprint TEXT NOT NULL,
    note        TEXT,
    added_at    INTEGER NOT NULL,           -- ms since the epoch, UTC
    record      BLOB NOT NULL,              -- the signed record's payload (state/builds/)
    signatures  TEXT NOT NULL,
    PRIMARY KEY (platform, fingerprint)
) STRICT;
"#,
    // 10: insights from the CDN's access logs (`otapub insights ingest`).
    r#"
-- Daily counters, not log lines. An update as insights see it: the pointer
-- it was served on and its manifest id (an embedded update has no package).
CREATE TABLE insight_updates (
    id          INTEGER PRIMARY KEY,
    channel     TEXT NOT NULL,
    platform    TEXT NOT NULL CHECK (platform IN ('ios', 'android')),
    fingerprint TEXT NOT NULL,
    update_id   TEXT NOT NULL,                   -- lowercase
    UNIQUE (channel, platform, fingerprint, update_id)
) STRICT;
CREATE TABLE insight_daily (
    day              INTEGER NOT NULL,            -- days since the epoch, UTC
    update_row       INTEGER NOT NULL REFERENCES insight_updates (id),
    downloads        INTEGER NOT NULL DEFAULT 0 CHECK (downloads >= 0),
    patch_downloads  INTEGER NOT NULL DEFAULT 0 CHECK (patch_downloads >= 0 AND patch_downloads <= downloads),
    patch_bytes      INTEGER NOT NULL DEFAULT 0,  -- bytes sent as patches
    patch_full_bytes INTEGER NOT NULL DEFAULT 0,  -- what those would have sent as full launch assets
    full_bytes       INTEGER NOT NULL DEFAULT 0,  -- bytes sent as full launch assets
    devices          INTEGER CHECK (devices >= 0),          -- NULL: no log of the day recorded request headers
    failed_devices   INTEGER CHECK (failed_devices >= 0),   -- likewise
    PRIMARY KEY (day, update_row)
) STRICT, WITHOUT ROWID;
-- Each device's latest check-in per day, and the updates it reported failed,
-- kept for the last days only (DEVICE_DAYS): a log ingested later can still
-- change which update a device's latest check-in of the day reports.
CREATE TABLE insight_devices (
    day        INTEGER NOT NULL,
    device     BLOB NOT NULL CHECK (length(device) = 16),  -- eas-client-id
    seen       INTEGER NOT NULL,                            -- ms
    update_row INTEGER NOT NULL REFERENCES insight_updates (id),
    PRIMARY KEY (day, device)
) STRICT, WITHOUT ROWID;
CREATE TABLE insight_failures (
    day        INTEGER NOT NULL,
    device     BLOB NOT NULL CHECK (length(device) = 16),
    update_row INTEGER NOT NULL REFERENCES insight_updates (id),
    PRIMARY KEY (day, device, update_row)
) STRICT, WITHOUT ROWID;
-- Days a log with request headers covered: device figures are known there.
CREATE TABLE insight_header_days (day INTEGER PRIMARY KEY) STRICT;
-- Every log file ingested, by the SHA-256 of its (gunzipped) bytes: the same file counts once.
CREATE TABLE insight_files (
    sha256  BLOB PRIMARY KEY CHECK (length(sha256) = 32),
    format  TEXT NOT NULL,
    lines   INTEGER NOT NULL,
    used    INTEGER NOT NULL,
    skipped INTEGER NOT NULL,
    at      INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
"#,
    // 11: delta bytecode (`otapub publish` in a Hermes project): the JS each
    // published launch asset was compiled from, so unchanged JS reuses the
    // served bytecode instead of being compiled against itself.
    r#"
CREATE TABLE bytecode_sources (
    launch_asset TEXT PRIMARY KEY,           -- SHA-256 of the bytecode
    js_sha256    TEXT NOT NULL,              -- SHA-256 of the JS it was compiled from
    compiler     TEXT NOT NULL               -- hermesc's identity and flags
) STRICT;
"#,
];

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::*;

    fn db() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        for m in MIGRATIONS {
            conn.execute_batch(m).unwrap();
        }
        conn
    }

    const INSERT: &str = "INSERT INTO packages (channel, platform, fingerprint, version, kind, created_at, content_hash, signatures, body_sha256)
        VALUES ('c', 'ios', 'f', 'v', 'rollBackToEmbedded', 1, x'00', '{}', x'00')";

    #[test]
    fn ban_columns_are_all_or_nothing_and_irreversible() {
        let conn = db();
        conn.execute(INSERT, []).unwrap();
        assert!(conn.execute("UPDATE packages SET banned_at = 1", []).is_err());
        assert!(conn
            .execute(
                "UPDATE packages SET banned_at = 1, ban_reason = ' ', banned_by = 'a'",
                []
            )
            .is_err());
        conn.execute(
            "UPDATE packages SET banned_at = 1, ban_reason = 'r', banned_by = 'a'",
            [],
        )
        .unwrap();
        assert!(conn
            .execute(
                "UPDATE packages SET banned_at = NULL, ban_reason = NULL, banned_by = NULL",
                []
            )
            .is_err());
        assert!(conn.execute("DELETE FROM packages", []).is_err());
    }

    #[test]
    fn operations_only_move_forward() {
        let conn = db();
        assert!(conn.execute("INSERT INTO operations (kind, actor, state, started_at, updated_at) VALUES ('k', 'a', 'running', 0, 0)", []).is_err());
        conn.execute(
            "INSERT INTO operations (kind, actor, state, started_at, updated_at) VALUES ('k', 'a', 'pending', 0, 0)",
            [],
        )
        .unwrap();
        assert!(conn.execute("UPDATE operations SET state = 'succeeded'", []).is_err());
        conn.execute("UPDATE operations SET state = 'running'", []).unwrap();
        assert!(
            conn.execute("UPDATE operations SET state = 'failed'", []).is_err(),
            "failed needs an error"
        );
        conn.execute("UPDATE operations SET state = 'succeeded'", []).unwrap();
        assert!(conn
            .execute("UPDATE operations SET state = 'failed', error = 'x'", [])
            .is_err());
    }

    #[test]
    fn rollouts_follow_their_lifecycle_and_only_grow() {
        let conn = db();
        conn.execute(INSERT, []).unwrap();
        let insert = |state: &str, reason: &str| {
            conn.execute(
                &format!(
                    "INSERT INTO rollouts (channel, platform, fingerprint, candidate, strategy, step, abort_threshold, percent,
                     permutation, state, started_at, updated_at, generation, record, signatures, reason)
                     VALUES ('c', 'ios', 'f', 1, 'linear', 10, 0.05, 10, zeroblob(100), '{state}', 0, 0, 1, x'', '{{}}', {reason})"
                ),
                [],
            )
        };
        insert("running", "NULL").unwrap();
        assert!(conn.execute("UPDATE rollouts SET percent = 5", []).is_err(), "shrinks");
        assert!(conn.execute("UPDATE rollouts SET state = 'created'", []).is_err());
        assert!(
            conn.execute("UPDATE rollouts SET state = 'aborted'", []).is_err(),
            "no reason"
        );
        assert!(conn.execute("UPDATE rollouts SET step = 20", []).is_err());
        conn.execute("UPDATE rollouts SET state = 'paused', percent = 20", [])
            .unwrap();
        conn.execute("UPDATE rollouts SET state = 'running'", []).unwrap();
        conn.execute("UPDATE rollouts SET state = 'completed', percent = 100", [])
            .unwrap();
        assert!(conn.execute("UPDATE rollouts SET gate = '{}'", []).is_err(), "terminal");
        assert!(conn.execute("DELETE FROM rollouts", []).is_err());
        assert!(insert("running", "NULL").is_err(), "one candidate, one campaign");
    }
}
