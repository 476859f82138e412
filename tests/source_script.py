"""The source script's data code, copied verbatim from the code block at the end of the source
document (TensorFlow 0.12 era), so that parity tests compare against the source function itself.

Only `generate_data` and the constants are runnable here; the rest of the script needs
TensorFlow 0.12's contrib modules. `generate_data` reads the module global TIMESTEPS, exactly as
in the source; `source_generate_data` sets it for other window sizes.
"""

import numpy as np

# --- verbatim from the source ---
HIDDEN_SIZE = 30
NUM_LAYERS = 2

TIMESTEPS = 10
TRAINING_STEPS = 3000
BATCH_SIZE = 32

TRAINING_EXAMPLES = 10000
TESTING_EXAMPLES = 1000
SAMPLE_GAP = 0.01

#### 2. 定义生成正弦数据的函数。


def generate_data(seq):
    X = []
    y = []

    for i in range(len(seq) - TIMESTEPS - 1):
        X.append([seq[i: i + TIMESTEPS]])
        y.append([seq[i + TIMESTEPS]])
    return np.array(X, dtype=np.float32), np.array(y, dtype=np.float32)


def source_series():
    """The source's two series, by its own lines (the `test_start`/`test_end` block)."""
    test_start = TRAINING_EXAMPLES * SAMPLE_GAP
    test_end = (TRAINING_EXAMPLES + TESTING_EXAMPLES) * SAMPLE_GAP
    train = np.sin(np.linspace(0, test_start, TRAINING_EXAMPLES, dtype=np.float32))
    test = np.sin(np.linspace(test_start, test_end, TESTING_EXAMPLES, dtype=np.float32))
    return train, test
# --- end of the verbatim part ---


def source_generate_data(seq, timesteps):
    """Calls the source's `generate_data` with its global TIMESTEPS set to `timesteps`."""
    global TIMESTEPS
    saved, TIMESTEPS = TIMESTEPS, timesteps
    try:
        return generate_data(seq)
    finally:
        TIMESTEPS = saved
