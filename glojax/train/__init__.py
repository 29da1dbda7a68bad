"""Training: one candidate (:class:`Trainer`) and populations (:func:`evaluate_population`)."""

from glojax.train.population import (
    STRATEGIES,
    PopulationResult,
    evaluate_population,
    resolve_strategy,
)
from glojax.train.trainer import ScaledLearningRate, TrainConfig, Trainer, TrainState
