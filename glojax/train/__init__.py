"""Training: one candidate (:class:`Trainer`) and populations (:func:`evaluate_population`)."""

from glojax.train.population import (
    STRATEGIES,
    PopulationResult,
    evaluate_population,
    evaluate_states,
    init_population,
    resolve_strategy,
    train_population_from,
)
from glojax.train.trainer import ScaledLearningRate, TrainConfig, Trainer, TrainState
