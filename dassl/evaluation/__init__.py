from .evaluator import EVALUATOR_REGISTRY, Classification, EvaluatorBase, build_evaluator

__all__ = ["EVALUATOR_REGISTRY", "build_evaluator", "EvaluatorBase", "Classification"]
