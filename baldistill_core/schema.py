"""The workspace database's DDL: every table and index, in one place (``store.connect`` applies it).

Each table names the module that owns its reads and writes.
"""

SCHEMA_VERSION = 1

# Columns added after workspaces already existed: (table, column, declaration). ``store.connect`` adds
# each one that an older database lacks (the CREATE TABLEs below already have them).
ADDED_COLUMNS = [("ledger", "priced", "INTEGER NOT NULL DEFAULT 1")]

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);

CREATE TABLE IF NOT EXISTS datasets (
    name TEXT PRIMARY KEY,
    spec TEXT NOT NULL,              -- DatasetSpec as JSON
    content_hash TEXT NOT NULL,      -- hash of the loaded train+test rows
    n_train INTEGER NOT NULL,
    n_test INTEGER NOT NULL,
    label_set TEXT,                  -- JSON list for classification tasks
    readme TEXT,
    bundled INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);

CREATE TABLE IF NOT EXISTS examples (
    dataset TEXT NOT NULL REFERENCES datasets(name) ON DELETE CASCADE,
    id TEXT NOT NULL,
    split TEXT NOT NULL CHECK (split IN ('train', 'test')),
    row INTEGER NOT NULL,            -- position in the source file (0-based)
    domain TEXT NOT NULL,
    input TEXT NOT NULL,
    answer TEXT NOT NULL,
    reference TEXT,
    PRIMARY KEY (dataset, id)
);
-- Per domain in file order: counts per domain and the example browser's pages (LIMIT/OFFSET) without a sort.
DROP INDEX IF EXISTS examples_domain;
CREATE INDEX IF NOT EXISTS examples_domain_row ON examples(dataset, split, domain, row);
-- Covering index of the selection pool: ids per domain in file order without reading any text.
CREATE INDEX IF NOT EXISTS examples_pool ON examples(dataset, split, row, domain, id);

-- Teacher: one cache for every call, keyed by backend + model + prompt + parameters.
CREATE TABLE IF NOT EXISTS teacher_cache (
    key TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    model TEXT NOT NULL,
    request TEXT NOT NULL,
    response TEXT NOT NULL,
    tokens_in INTEGER NOT NULL DEFAULT 0,
    tokens_out INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);

-- Teacher: the ledger. One row per logical call a run asked for (cached ones too, with cost 0).
CREATE TABLE IF NOT EXISTS ledger (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT,
    key TEXT NOT NULL,
    purpose TEXT NOT NULL CHECK (purpose IN ('rationale', 'synthesis', 'verification', 'other')),
    cached INTEGER NOT NULL,
    ok INTEGER NOT NULL DEFAULT 1,
    tokens_in INTEGER NOT NULL DEFAULT 0,
    tokens_out INTEGER NOT NULL DEFAULT 0,
    latency_s REAL NOT NULL DEFAULT 0,
    cost_usd REAL NOT NULL DEFAULT 0,
    priced INTEGER NOT NULL DEFAULT 1,    -- 0: a paid call at an unknown price (cost_usd 0 is not a figure)
    examples INTEGER NOT NULL DEFAULT 0,  -- budget units (examples annotated/synthesized)
    error TEXT,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS ledger_run ON ledger(run_id);

-- Synthetic tail examples and their review state.
CREATE TABLE IF NOT EXISTS synthetic (
    id TEXT PRIMARY KEY,
    dataset TEXT NOT NULL,
    run_id TEXT,
    stage INTEGER,
    domain TEXT NOT NULL,
    input TEXT NOT NULL,
    answer TEXT NOT NULL,
    rationale TEXT NOT NULL DEFAULT '',
    teacher_answer TEXT,
    source TEXT NOT NULL DEFAULT 'teacher',   -- teacher | recorded
    verified INTEGER,                          -- NULL = not checked, 1 agree, 0 disagree
    verify_answer TEXT,
    duplicate_of TEXT,                         -- id of a near-duplicate, if any
    status TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'approved', 'edited', 'rejected')),
    original TEXT,                             -- JSON of input/answer/rationale before the first edit
    reason TEXT,
    reviewer TEXT,
    decided_at REAL,
    version INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS synthetic_queue ON synthetic(dataset, status, domain);

-- Audit trail: every review decision, never updated.
CREATE TABLE IF NOT EXISTS reviews (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    synthetic_id TEXT NOT NULL,
    action TEXT NOT NULL,
    reviewer TEXT NOT NULL,
    reason TEXT,
    before TEXT,
    after TEXT,
    at REAL NOT NULL
);

CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    dataset TEXT NOT NULL,
    method TEXT NOT NULL,
    config TEXT NOT NULL,            -- RunConfig as JSON (never holds secrets)
    status TEXT NOT NULL,            -- created | running | awaiting_review | cancelling | cancelled | failed | finished
    folder TEXT NOT NULL,
    pid INTEGER,
    heartbeat_at REAL,
    current_stage INTEGER,
    current_step TEXT,
    error TEXT,
    created_by TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);

CREATE TABLE IF NOT EXISTS stages (
    run_id TEXT NOT NULL,
    stage INTEGER NOT NULL,
    status TEXT NOT NULL,            -- pending | selecting | annotating | training | evaluating | done
    quota TEXT,                      -- JSON {domain: n}
    started_at REAL,
    finished_at REAL,
    PRIMARY KEY (run_id, stage)
);

-- What each stage picked, and what happened to it.
CREATE TABLE IF NOT EXISTS selections (
    run_id TEXT NOT NULL,
    stage INTEGER NOT NULL,
    example_id TEXT NOT NULL,
    domain TEXT NOT NULL,
    kind TEXT NOT NULL,              -- head | tail_real | synthetic | duplicate
    ifd REAL,
    kept INTEGER,                    -- NULL until annotated; 0 = dropped
    drop_reason TEXT,
    rationale TEXT,
    PRIMARY KEY (run_id, stage, example_id, kind)
);

CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL,
    stage INTEGER NOT NULL,
    step INTEGER NOT NULL DEFAULT 0,
    split TEXT NOT NULL,             -- live | test | train
    domain TEXT NOT NULL,            -- a domain name, or _macro / _micro / _head / _tail / _all
    metric TEXT NOT NULL,            -- accuracy | f1 | token_f1 | loss | ...
    value REAL NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS metrics_run ON metrics(run_id, stage);

CREATE TABLE IF NOT EXISTS logs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    level TEXT NOT NULL,
    message TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS logs_run ON logs(run_id, seq);

-- Per-stage detail the pipeline writes (owned by baldistill_core.runs.records): the allocation
-- {domain: {quota, pool, real, fill, role}}, the training result, and the stage's adapter folder.
CREATE TABLE IF NOT EXISTS stage_details (
    run_id TEXT NOT NULL,
    stage INTEGER NOT NULL,
    plan TEXT,
    train TEXT,
    adapter_dir TEXT,
    PRIMARY KEY (run_id, stage)
);

-- Imported teacher outputs and batch calls (owned by teacher.imports / teacher.batch). An import row per
-- file (the ``current`` one per dataset and kind is replayed); ``agrees`` = the rationale ends at the gold
-- answer; a batch row holds the endpoint's batch id before polling, so a restarted worker never resubmits.
CREATE TABLE IF NOT EXISTS teacher_imports (id INTEGER PRIMARY KEY AUTOINCREMENT, dataset TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('rationales', 'synthetic')), file_name TEXT NOT NULL,
    file_hash TEXT NOT NULL, n_rows INTEGER NOT NULL, teacher_model TEXT, current INTEGER NOT NULL DEFAULT 1,
    imported_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS teacher_rationales (dataset TEXT NOT NULL, example_id TEXT NOT NULL,
    rationale TEXT NOT NULL, teacher_model TEXT, predicted TEXT, agrees INTEGER NOT NULL,
    import_id INTEGER NOT NULL, line INTEGER, PRIMARY KEY (dataset, example_id));
CREATE TABLE IF NOT EXISTS synthetic_provenance (synthetic_id TEXT PRIMARY KEY, teacher_model TEXT,
    backend TEXT, batch_id TEXT, import_id INTEGER, source_file TEXT, file_hash TEXT, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS teacher_batches (id TEXT PRIMARY KEY, run_id TEXT, purpose TEXT NOT NULL,
    model TEXT NOT NULL, remote_id TEXT, input_file_id TEXT, output_file_id TEXT, error_file_id TEXT,
    status TEXT NOT NULL, n_lines INTEGER NOT NULL, n_completed INTEGER NOT NULL DEFAULT 0,
    n_failed INTEGER NOT NULL DEFAULT 0, submissions INTEGER NOT NULL DEFAULT 0, error TEXT,
    created_at REAL NOT NULL, updated_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS teacher_batch_lines (batch_id TEXT NOT NULL, custom_id TEXT NOT NULL,
    key TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'pending', error TEXT, PRIMARY KEY (batch_id, custom_id));

-- Each test item's outcome of an evaluation (owned by baldistill_core.runs.eval_items), resampled by
-- the bootstrap intervals; pred_label: the gold label a classification prediction names, if any.
CREATE TABLE IF NOT EXISTS eval_items (
    run_id TEXT NOT NULL, stage INTEGER NOT NULL, split TEXT NOT NULL, example_id TEXT NOT NULL,
    domain TEXT NOT NULL, gold TEXT NOT NULL, pred TEXT, pred_label TEXT, correct INTEGER NOT NULL,
    token_f1 REAL,                   -- qa only
    PRIMARY KEY (run_id, stage, split, example_id)
);

-- Seed sweeps (owned by baldistill_core.runs.sweeps): one run per (method, seed) of a base config;
-- config is the base RunConfig, seeds and methods JSON lists.
CREATE TABLE IF NOT EXISTS sweeps (id TEXT PRIMARY KEY, name TEXT NOT NULL, dataset TEXT NOT NULL,
    config TEXT NOT NULL, seeds TEXT NOT NULL, methods TEXT NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS sweep_runs (sweep_id TEXT NOT NULL, method TEXT NOT NULL, seed INTEGER NOT NULL,
    run_id TEXT NOT NULL, PRIMARY KEY (sweep_id, method, seed));

-- IFD scores, cached by student checkpoint + example + variant.
CREATE TABLE IF NOT EXISTS trackers (  -- the experiment-tracker run a run reports to (reports.tracking)
    run_id TEXT NOT NULL, backend TEXT NOT NULL,   -- backend: trackio | mlflow | tensorboard | wandb
    tracker_run_id TEXT, url TEXT,   -- the tracker's own run id (resumed on Resume); a link or the command to open it
    status TEXT NOT NULL, message TEXT,  -- active | paused | failed | finished; the warning when it failed
    updated_at REAL NOT NULL, PRIMARY KEY (run_id, backend)
);

CREATE TABLE IF NOT EXISTS ifd_cache (
    checkpoint TEXT NOT NULL,
    example_key TEXT NOT NULL,
    variant TEXT NOT NULL,
    score REAL,
    loss_cond REAL NOT NULL,
    loss_uncond REAL NOT NULL,
    rationale TEXT NOT NULL,
    PRIMARY KEY (checkpoint, example_key, variant)
);
"""
