"""An Estimator-style bridge for code written against `SKCompat(learn.Estimator(...))`.

The source script trained with::

    regressor = SKCompat(learn.Estimator(model_fn=lstm_model, model_dir="Models/model_2"))
    regressor.fit(train_X, train_y, batch_size=BATCH_SIZE, steps=TRAINING_STEPS)
    predicted = [[pred] for pred in regressor.predict(test_X)]

`LegacyRegressor` keeps that shape of code working on TF2: `fit` trains `steps` MORE optimizer
steps (the Estimator's `steps`, not `max_steps`), checkpoints into `model_dir`, and a new
regressor on the same `model_dir` continues from the last checkpoint, as the Estimator did (and
as the source's published 0.12 log shows: a second run trained 3000 + 3000 steps).

It is a thin layer over `tf_sine.build_model` and `tf_sine.train`: same factory, same engine.

>>> regressor = LegacyRegressor("Models/model_2", units=30)          # doctest: +SKIP
>>> regressor.fit(train_x, train_y, batch_size=32, steps=3000)      # doctest: +SKIP
>>> regressor.global_step                                           # doctest: +SKIP
3000
"""

from __future__ import annotations

import os
from typing import Any

import keras
import numpy as np

from tf_sine.config import MODEL_FIELDS, Config, ConfigError, check_positive_int
from tf_sine.data import layout_of
from tf_sine.errors import RunError
from tf_sine.evaluation import predict
from tf_sine.files import load_keras
from tf_sine.models import build_model_from_config
from tf_sine.runs import RunDirectory
from tf_sine.training import train


class LegacyRegressor:
    """`SKCompat(learn.Estimator(model_dir=...))` for the source's model, on Keras 3.

    Args:
        model_dir: where checkpoints live; an existing one is resumed from its last checkpoint.
        seed: seeds the initial weights and the data order.
        **factory_options: any argument of `tf_sine.build_model` except `timesteps` and
            `layout`, which are read from the first `fit`'s windows (as the Estimator built
            its graph from the first batch).

    Raises:
        ValueError: an unknown or bad factory option, or options that differ from those of
            the model already in `model_dir`.
    """

    def __init__(self, model_dir: str | os.PathLike, seed: int = 0, **factory_options: Any):
        inferred = ("timesteps", "layout", "features")  # read from the windows, as the Estimator did
        unknown = sorted(name for name in factory_options if name not in MODEL_FIELDS or name in inferred)
        if unknown:
            allowed = ", ".join(name for name in MODEL_FIELDS if name not in inferred)
            raise ConfigError(
                unknown[0], f"not a factory option of LegacyRegressor; expected one of {allowed}"
            )
        self.run = RunDirectory.create(model_dir)
        self.run.release()  # taken again by each fit, as the Estimator's each train call
        self.options = dict(factory_options)
        self.seed = seed
        self.config: Config | None = None
        self.model: keras.Model | None = None
        Config(seed=seed, **self.options)  # refuse bad options now, not at the first fit
        if self.run.checkpoints.saved():
            self._restore()

    @property
    def global_step(self) -> int:
        """Optimizer steps taken so far, across every `fit` and every regressor on `model_dir`."""
        return 0 if self.model is None else int(self.model.optimizer.iterations.numpy())

    def fit(self, x: np.ndarray, y: np.ndarray, batch_size: int = 32, steps: int = 3000) -> LegacyRegressor:
        """Trains `steps` more optimizer steps on windows `x` and labels `y`; returns self.

        Args:
            x: windows `(N, 1, T)` (the source's layout) or `(N, T, 1)`.
            y: labels `(N, 1)` or `(N,)`.
            batch_size: windows per step.
            steps: how many steps to add to `global_step`.
        """
        steps = check_positive_int("steps", steps)
        x = np.asarray(x, dtype=np.float32)
        y = np.asarray(y, dtype=np.float32).reshape(-1, 1)
        if x.ndim != 3:
            raise ConfigError("x", f"expected windows of shape (N, 1, T) or (N, T, 1), got {x.shape}")
        timesteps, layout = layout_of((None, *x.shape[1:]))
        self.run.files.claim()
        try:
            if self.model is None:
                self.config = Config(seed=self.seed, timesteps=timesteps, layout=layout,
                                     batch_size=batch_size, **self.options)  # fmt: skip
                keras.utils.set_random_seed(self.seed)
                self.model = build_model_from_config(self.config)
                self.run.save_config(self.config)
            train(
                self.model, x, y, steps=self.global_step + steps, batch_size=batch_size, seed=self.seed,
                checkpoint_every=self.config.checkpoint_every, on_checkpoint=self._checkpoint, progress=False,
            )  # fmt: skip
        finally:
            self.run.release()
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predictions for windows `x`, shape `(N,)`: squeezed, as the source's model_fn returned them."""
        if self.model is None:
            raise RunError("model_dir", f"holds no trained model yet ({self.run.path}); call fit first")
        return predict(self.model, np.asarray(x, dtype=np.float32)).reshape(-1)

    def _checkpoint(self, model: keras.Model, step: int) -> None:
        self.run.checkpoints.save(model, step)

    def _restore(self) -> None:
        _, path = self.run.checkpoints.saved()[-1]
        self.model = load_keras(path)
        self.config = self.run.load_config()
        saved = {name: getattr(self.config, name) for name in self.options}
        if saved != self.options or self.config.seed != self.seed:
            raise RunError(
                "model_dir",
                f"holds a model built with {saved} and seed {self.config.seed}; "
                f"got {self.options} and seed {self.seed}",
            )
