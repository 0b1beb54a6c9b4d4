-- The catalog schema at user_version 3, exactly as shared/catalog.py (commit 7460631) wrote it before
-- the catalog became a package with ordered migrations. tests/unit/test_migrations.py upgrades it.
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    source TEXT NOT NULL,              -- 'upload' or 'folder'
    folder TEXT NOT NULL DEFAULT '',   -- upload folder name or server path, for display and filters
    created_at REAL NOT NULL,
    cancelled INTEGER NOT NULL DEFAULT 0,
    error TEXT                         -- a job-level failure (the whole job could not run)
);
CREATE TABLE IF NOT EXISTS job_items (
    id INTEGER PRIMARY KEY,
    job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    file TEXT NOT NULL,                -- path relative to the uploaded/ingested folder
    stored_path TEXT NOT NULL,         -- where the bytes wait, relative to the data dir or absolute
    status TEXT NOT NULL DEFAULT 'queued',  -- queued|running|indexed|duplicate|failed|cancelled
    reason TEXT,
    media_id INTEGER,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS job_items_job ON job_items(job_id, status);
CREATE TABLE IF NOT EXISTS media (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: media URLs are cached as immutable
    sha256 TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,                -- 'image' or 'video'
    mime TEXT NOT NULL,
    path TEXT NOT NULL,                -- original, relative to the data dir
    name TEXT NOT NULL,                -- relative path as the user named it
    folder TEXT NOT NULL DEFAULT '',
    size INTEGER NOT NULL,
    width INTEGER, height INTEGER,
    duration REAL, fps REAL,
    phash TEXT,
    near_duplicate_of INTEGER REFERENCES media(id) ON DELETE SET NULL,
    job_id TEXT,
    status TEXT NOT NULL DEFAULT 'pending', -- pending (frames not all embedded) | indexed
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS media_phash ON media(phash);
CREATE TABLE IF NOT EXISTS frames (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: frame URLs are cached as immutable
    media_id INTEGER NOT NULL REFERENCES media(id) ON DELETE CASCADE,
    timestamp REAL,                    -- seconds into the video; NULL for a still image
    path TEXT NOT NULL,                -- normalised JPEG, relative to the data dir
    thumb_path TEXT NOT NULL,
    width INTEGER NOT NULL, height INTEGER NOT NULL,
    vector_row INTEGER UNIQUE          -- row in the vectors store; NULL until embedded
);
CREATE INDEX IF NOT EXISTS frames_media ON frames(media_id);
CREATE TABLE IF NOT EXISTS video_vectors (   -- one pooled vector per video, over its frame vectors
    media_id INTEGER PRIMARY KEY REFERENCES media(id) ON DELETE CASCADE,
    vector_row INTEGER NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS clusters (        -- auto-albums: media grouped by vector similarity
    id INTEGER PRIMARY KEY,
    centroid BLOB NOT NULL,            -- float32 unit vector
    name TEXT,                         -- given by the user; never overwritten by labelling
    label TEXT,                        -- best vocabulary concepts for the centroid
    label_centroid BLOB,               -- the centroid when it was labelled (relabel once it moved)
    label_model TEXT,                  -- model id of the vectors the label was computed with
    dirty INTEGER NOT NULL DEFAULT 1,  -- changed since the last re-clustering
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS cluster_members (
    media_id INTEGER PRIMARY KEY REFERENCES media(id) ON DELETE CASCADE,
    cluster_id INTEGER NOT NULL REFERENCES clusters(id) ON DELETE CASCADE,
    similarity REAL NOT NULL,          -- cosine to the centroid when assigned
    added_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS cluster_members_cluster ON cluster_members(cluster_id);
-- A member leaving (its media deleted) moves the centroid: the next re-clustering recomputes it.
CREATE TRIGGER IF NOT EXISTS cluster_member_gone AFTER DELETE ON cluster_members BEGIN
    UPDATE clusters SET dirty=1 WHERE id=OLD.cluster_id;
END;
CREATE TABLE IF NOT EXISTS collections (     -- named sets of media made by the user or by an upload
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    job_id TEXT UNIQUE REFERENCES jobs(id) ON DELETE SET NULL,  -- the upload whose folder it is
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS collection_members (
    collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    media_id INTEGER NOT NULL REFERENCES media(id) ON DELETE CASCADE,
    added_at REAL NOT NULL,
    PRIMARY KEY (collection_id, media_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS collection_members_media ON collection_members(media_id);
CREATE TABLE IF NOT EXISTS library_state (   -- small named timestamps (e.g. when re-clustering was asked)
    key TEXT PRIMARY KEY,
    value REAL NOT NULL
);
