from .evaluator import (
    EVALUATOR_REGISTRY,
    Classification,
    EvaluatorBase,
    PerDatasetClassification,
    build_evaluator,
)

__all__ = ["EVALUATOR_REGISTRY", "build_evaluator", "EvaluatorBase", "Classification", "PerDatasetClassification"]
