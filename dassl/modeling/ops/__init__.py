from .utils import create_onehot, ema_model_update, linear_rampup, sharpen_prob, sigmoid_rampup

__all__ = ["sharpen_prob", "create_onehot", "sigmoid_rampup", "linear_rampup", "ema_model_update"]
