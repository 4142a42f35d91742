"""Training: losses, clip metrics, the paper's optimiser and schedule, strategies, resumable fit, the distributed loop."""
from tfsonify.train.losses import classification_loss, per_example_loss
from tfsonify.train.metrics import accuracy, average_precision, clip_metrics, d_prime, roc_auc
from tfsonify.train.schedule import adamw, scale_learning_rate, warmup_cosine
from tfsonify.train.strategy import describe, global_batch_size, strategy

__all__ = ["classification_loss", "per_example_loss", "accuracy", "average_precision", "clip_metrics", "d_prime",
           "roc_auc", "adamw", "scale_learning_rate", "warmup_cosine", "describe", "global_batch_size", "strategy"]
