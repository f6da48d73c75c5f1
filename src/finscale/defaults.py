"""Defaults that several layers share (the spec, the data pipeline, the model, the CLI), each
stated once. This module imports nothing."""

# Windows and patches: the research system's context of 60 days, cut into 11 overlapping
# patches of 10 days every 5.
CONTEXT_LENGTH = 60
PATCH_LENGTH = 10
STRIDE = 5

# Splits. Chronological: validation from 70 % of the rows, test from 85 %, when no date is
# given. Chunks: 10 blocks, 2 drawn for validation and 2 for test.
VAL_FRACTION = 0.70
TEST_FRACTION = 0.85
N_BLOCKS = 10
VAL_BLOCKS = 2
TEST_BLOCKS = 2
SPLIT_SEED = 0
# Fewest windows a split may hold: model selection on a few windows measures noise.
MIN_WINDOWS = 200

# Labels: a rise of at least 1 % above today's close.
THRESHOLD = 0.01

# Early stopping on the objective's metric.
PATIENCE = 10
MIN_DELTA = 0.001

# How long one storage call is retried before a worker gives up with exit 3: long enough to
# ride out a PostgreSQL restart or failover.
STORAGE_DEADLINE_S = 300.0
