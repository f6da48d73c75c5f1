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

# Sane maxima: beyond them a value is a typo, not a plan, and is refused before anything is
# allocated, started or written.
MAX_BUDGET = 10**13  # parameters
# Below this budget a model leaves a GPU mostly idle: `render` says so of a study that asks one.
SMALL_FOR_A_GPU = 1_000_000  # parameters
MAX_D_MODEL = 65_536
MAX_LAYERS = 4_096
MAX_HEADS = 1_024
MAX_FF_RATIO = 64
MAX_FEATURES = 10_000  # features per day
MAX_CONTEXT_LENGTH = 10_000  # days per window (forty years)
MAX_HORIZON = 250  # days ahead: a trading year
MAX_TRIALS = 100_000  # a study's n_trials
MAX_WORKERS = 1_000  # worker processes or pods of a study
MAX_RETRIES = 100  # reruns of a stale trial
MAX_PROCESSES = 64  # worker processes of one pod
MAX_WAIT_S = 86_400.0  # any wait: a day
MAX_SEED = 2**32 - 1  # NumPy's seeds
