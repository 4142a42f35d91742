"""SimCLR contrastive pretraining of CNN12 (paper §3.1 equation 1, Appendix A.2).

The NT-Xent loss follows ``google-research/simclr`` ``tf2/objective.py``
exactly, including its distributed semantics:

* projections are L2-normalised, so ``z_i · z_j`` is the cosine similarity;
* under a ``tf.distribute`` strategy the projections of *all* replicas are
  gathered (``ReplicaContext.all_gather``) and used as negatives, the positive
  labels of this replica are offset by ``replica_id × per_replica_batch`` and
  each anchor's similarity with itself is masked with a large constant;
* the loss is summed over both views (``loss_a + loss_b``) and averaged over the
  per-replica batch, then the train step divides it by ``num_replicas_in_sync``
  because Keras sums the replicas' gradients: summed gradients equal the
  gradient of the same loss computed on one device over the global batch.

Note on the scale: the value returned by :func:`nt_xent_loss` is
``(1/N) Σ_k [ℓ(a_k, b_k) + ℓ(b_k, a_k)]``, i.e. ``2 ×`` the SimCLR paper's
``L = 1/(2N) Σ ℓ`` (the simclr code's convention; it only rescales the
learning rate).
"""
from __future__ import annotations

import keras
import tensorflow as tf

from tfsonify.models.cnn12 import CNN12, SAMPLE_RATE, ArgumentsConfig
from tfsonify.validation import check_int

__all__ = ["LARGE_NUM", "nt_xent_loss", "nt_xent_from_gathered", "ContrastiveModel", "check_temperature"]

LARGE_NUM = 1e9


def check_temperature(temperature: float) -> float:
    """Return ``temperature`` as a float, or raise ``ValueError`` unless it is a finite number > 0."""
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
        raise ValueError(f"temperature must be a positive number (the paper uses 0.1); received {temperature!r}")
    temperature = float(temperature)
    if not temperature > 0.0 or temperature == float("inf"):
        raise ValueError(f"temperature must be a finite number > 0 (the paper uses 0.1); received {temperature!r}")
    return temperature


def _replica_context():
    """The current replica context, or None when called in a cross-replica context."""
    return tf.distribute.get_replica_context()


def nt_xent_loss(
    projections_a: tf.Tensor,
    projections_b: tf.Tensor,
    temperature: float = 0.1,
    normalize: bool = True,
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """NT-Xent loss (paper equation 1) with negatives gathered across replicas.

    Row ``k`` of ``projections_a`` and row ``k`` of ``projections_b`` are the two
    views of clip ``k`` (a positive pair); every other projection of either view,
    on this replica and on every other replica of the current strategy, is a
    negative. Must run in a replica context (the default one, or inside
    ``strategy.run`` / a Keras ``train_step``).

    Args:
        projections_a: float ``[n, d]`` projections of the first views on this replica.
        projections_b: float ``[n, d]`` projections of the second views, same shape.
        temperature: τ > 0 (0.1 in the paper).
        normalize: L2-normalise the projections first (cosine similarity), as in the paper.

    Returns:
        ``(loss, logits, labels)``: ``loss`` is a float32 scalar, the per-replica
        mean over anchors ``k`` of ``ℓ(a_k, b_k) + ℓ(b_k, a_k)`` (not yet divided
        by the number of replicas); ``logits`` is ``[2n, 2·n·R]`` (``R`` replicas),
        for each local anchor its scaled similarities with all gathered
        projections ``[other view | same view]``, self-similarity masked;
        ``labels`` is int32 ``[2n]``, the column of each anchor's positive.

    Raises:
        ValueError: if the shapes differ, are not rank 2, τ ≤ 0, or the global
            batch (per-replica batch × replicas) is known to be 1: NT-Xent needs
            at least one other clip as a negative.
    """
    temperature = check_temperature(temperature)
    projections_a = tf.convert_to_tensor(projections_a)
    projections_b = tf.convert_to_tensor(projections_b)
    if projections_a.shape.rank != 2 or projections_b.shape.rank != 2:
        raise ValueError(
            f"projections must be rank-2 [batch, dim]; received shapes {projections_a.shape} and {projections_b.shape}"
        )
    if not projections_a.shape.is_compatible_with(projections_b.shape):
        raise ValueError(f"the two views must have the same shape; received {projections_a.shape} and {projections_b.shape}")

    context = _replica_context()
    if context is None:
        raise ValueError("nt_xent_loss must be called in a replica context (inside strategy.run or a train_step)")
    num_replicas = context.num_replicas_in_sync
    local_batch = projections_a.shape[0]
    if local_batch is not None and local_batch * num_replicas < 2:
        raise ValueError(
            f"NT-Xent needs at least 2 clips in the global batch (the other clips are the negatives); received a "
            f"per-replica batch of {local_batch} on {num_replicas} replica(s)"
        )

    hidden_a = tf.cast(projections_a, tf.float32)
    hidden_b = tf.cast(projections_b, tf.float32)
    if normalize:
        hidden_a = tf.math.l2_normalize(hidden_a, axis=-1)
        hidden_b = tf.math.l2_normalize(hidden_b, axis=-1)

    if num_replicas > 1:
        # all_gather's gradient all-reduces the upstream gradient and keeps this replica's slice,
        # so the gradient reaching each replica's projections includes the terms where they were negatives elsewhere.
        hidden_a_large = context.all_gather(hidden_a, axis=0)
        hidden_b_large = context.all_gather(hidden_b, axis=0)
        replica_id = tf.cast(tf.cast(context.replica_id_in_sync_group, tf.uint32), tf.int32)
    else:
        hidden_a_large, hidden_b_large = hidden_a, hidden_b
        replica_id = tf.constant(0, tf.int32)
    return nt_xent_from_gathered(hidden_a, hidden_b, hidden_a_large, hidden_b_large, replica_id, temperature)


def nt_xent_from_gathered(
    hidden_a: tf.Tensor,
    hidden_b: tf.Tensor,
    hidden_a_large: tf.Tensor,
    hidden_b_large: tf.Tensor,
    replica_id: tf.Tensor | int,
    temperature: float,
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """The math of :func:`nt_xent_loss` after the cross-replica gather (no collectives; XLA-friendly).

    Args:
        hidden_a, hidden_b: float32 ``[n, d]`` (normalised) projections of this replica's two views.
        hidden_a_large, hidden_b_large: float32 ``[n·R, d]``: the same for all ``R`` replicas,
            concatenated in replica order (what ``all_gather(axis=0)`` returns).
        replica_id: int32 scalar, this replica's index in ``0..R-1``.
        temperature: τ > 0.

    Returns:
        ``(loss, logits, labels)`` as :func:`nt_xent_loss`.
    """
    batch = tf.shape(hidden_a)[0]
    large_batch = tf.shape(hidden_a_large)[0]
    tf.debugging.assert_greater_equal(
        large_batch, 2, message="NT-Xent needs at least 2 clips in the global batch (the other clips are the negatives)"
    )
    label_index = tf.range(batch) + tf.cast(replica_id, tf.int32) * batch
    masks = tf.one_hot(label_index, large_batch)
    logits_aa = tf.matmul(hidden_a, hidden_a_large, transpose_b=True) / temperature - masks * LARGE_NUM
    logits_bb = tf.matmul(hidden_b, hidden_b_large, transpose_b=True) / temperature - masks * LARGE_NUM
    logits_ab = tf.matmul(hidden_a, hidden_b_large, transpose_b=True) / temperature
    logits_ba = tf.matmul(hidden_b, hidden_a_large, transpose_b=True) / temperature

    logits_a = tf.concat([logits_ab, logits_aa], axis=1)
    logits_b = tf.concat([logits_ba, logits_bb], axis=1)
    loss_a = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=label_index, logits=logits_a)
    loss_b = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=label_index, logits=logits_b)
    loss = tf.reduce_mean(loss_a + loss_b)
    return loss, tf.concat([logits_a, logits_b], axis=0), tf.concat([label_index, label_index], axis=0)


@keras.saving.register_keras_serializable(package="tfsonify")
class ContrastiveModel(ArgumentsConfig, keras.Model):
    """CNN12 encoder + projection head trained with NT-Xent (SimCLR, paper §3.1, A.2).

    ``z = f_proj(f_enc(x))``: ``f_enc`` is a :class:`~tfsonify.CNN12` without a
    head (``self.encoder``, 512-d embedding), ``f_proj`` an MLP with one hidden
    ReLU layer of ``projection_hidden`` units and a linear ``projection_dim``
    output (``self.projection_head``; 512 and 512 in the paper).

    ``fit`` expects batches ``(view_a, view_b)``: two float32 ``[batch, time]``
    waveform tensors at 8 kHz, row ``k`` of each a differently augmented patch of
    clip ``k`` (see :mod:`tfsonify.train.patches`). ``train_step`` computes the
    loss over both views with all replicas' projections as negatives and scales
    it by ``1 / num_replicas_in_sync`` (see the module docstring), so ``fit``,
    callbacks, ``BackupAndRestore`` and ``.keras`` checkpoints work as usual.
    Logged metrics: ``loss`` (NT-Xent, summed over both views) and
    ``contrastive_accuracy`` (fraction of anchors whose positive is the most
    similar of all 2N−1 candidates).

    Args:
        width_multiplier: CNN12 width (1.0 = the paper's CNN12).
        temperature: τ > 0 of equation 1 (0.1 in the paper).
        projection_hidden: hidden units of the projection MLP.
        projection_dim: output size of the projection MLP (``d`` in the paper).
        embedding_dim: encoder embedding size (512).
        dropout: encoder dropout before its embedding layer.
        sample_rate: input rate in Hz, stored for readers (8000).

    Example:
    >>> model = ContrastiveModel(width_multiplier=0.0625)
    >>> model.compile(optimizer="adam")
    >>> views = (np.random.randn(4, 4000).astype("float32"), np.random.randn(4, 4000).astype("float32"))
    >>> model.train_on_batch(views, return_dict=True)["loss"] > 0
    True
    """

    def __init__(
        self,
        width_multiplier: float = 1.0,
        temperature: float = 0.1,
        projection_hidden: int = 512,
        projection_dim: int = 512,
        embedding_dim: int = 512,
        dropout: float = 0.4,
        sample_rate: int = SAMPLE_RATE,
        **kwargs,
    ):
        temperature = check_temperature(temperature)
        for name, value in (("projection_hidden", projection_hidden), ("projection_dim", projection_dim)):
            check_int(name, value, minimum=1)
        super().__init__(**kwargs)
        self.encoder = CNN12(
            width_multiplier=width_multiplier,
            embedding_dim=embedding_dim,
            dropout=dropout,
            sample_rate=sample_rate,
            name="encoder",
        )
        self.projection_head = keras.Sequential(
            [
                keras.layers.Dense(projection_hidden, activation="relu", name="projection_hidden"),
                keras.layers.Dense(projection_dim, name="projection_output"),
            ],
            name="projection_head",
        )
        self.projection_head.build((None, embedding_dim))
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.accuracy_tracker = keras.metrics.Mean(name="contrastive_accuracy")

        # === Config ===
        self.width_multiplier = float(width_multiplier)
        self.temperature = temperature
        self.projection_hidden = projection_hidden
        self.projection_dim = projection_dim
        self.embedding_dim = embedding_dim
        self.dropout = float(dropout)
        self.sample_rate = sample_rate
        self.built = True  # both sub-models are built; checkpoint callbacks need a built model before fit

    CONFIG_ARGUMENTS = ("width_multiplier", "temperature", "projection_hidden", "projection_dim", "embedding_dim", "dropout",
                        "sample_rate")

    def build(self, input_shape=None):
        # Sub-models are built in __init__; nothing else has weights.
        self.built = True

    def call(self, waveform, training=False):
        """Projections ``z`` float32 ``[batch, projection_dim]`` of waveforms ``[batch, time]`` at 8 kHz."""
        return self.projection_head(self.encoder(waveform, training=training), training=training)

    @property
    def metrics(self):
        return [self.loss_tracker, self.accuracy_tracker]

    @staticmethod
    def _views(data):
        if isinstance(data, dict):
            data = (data["view_a"], data["view_b"])
        if isinstance(data, (tuple, list)) and len(data) in (1, 3):
            # train_on_batch packs (x, y, sample_weight); a dataset of 1-tuples gives (views,)
            data = tuple(item for item in data if item is not None)
            if len(data) == 1:
                data = data[0]
        if not isinstance(data, (tuple, list)) or len(data) != 2:
            raise ValueError(
                "ContrastiveModel expects batches (view_a, view_b) of two float32 [batch, time] tensors; "
                f"received {type(data).__name__} of length {len(data) if hasattr(data, '__len__') else '?'}"
            )
        view_a, view_b = (tf.convert_to_tensor(view, tf.float32) for view in data)
        if view_a.shape.rank != 2 or not view_a.shape.is_compatible_with(view_b.shape):
            raise ValueError(
                f"the two views must be float32 [batch, time] tensors of equal shape; received {view_a.shape} and {view_b.shape}"
            )
        return view_a, view_b

    def contrastive_loss(self, view_a, view_b, training: bool):
        """Forward both views in one batch; returns ``(loss, logits, labels)`` of :func:`nt_xent_loss`."""
        projections = self(tf.concat([view_a, view_b], axis=0), training=training)
        projections_a, projections_b = tf.split(projections, 2, axis=0)
        return nt_xent_loss(projections_a, projections_b, self.temperature)

    def _update_metrics(self, loss, logits, labels):
        correct = tf.cast(tf.equal(tf.argmax(logits, axis=1, output_type=tf.int32), labels), tf.float32)
        self.loss_tracker.update_state(loss)
        self.accuracy_tracker.update_state(tf.reduce_mean(correct))
        return {metric.name: metric.result() for metric in self.metrics}

    def compute_gradients(self, view_a, view_b):
        """One step's ``(loss, logits, labels, gradients)``; gradients of ``loss / num_replicas_in_sync``.

        Regularisation losses of the layers (``self.losses``) are added once per replica.
        """
        num_replicas = tf.distribute.get_strategy().num_replicas_in_sync
        with tf.GradientTape() as tape:
            loss, logits, labels = self.contrastive_loss(view_a, view_b, training=True)
            total = loss + (tf.add_n(self.losses) if self.losses else 0.0)
            scaled = total / float(num_replicas)
        gradients = tape.gradient(scaled, self.trainable_variables)
        return loss, logits, labels, gradients

    def train_step(self, data):
        view_a, view_b = self._views(data)
        loss, logits, labels, gradients = self.compute_gradients(view_a, view_b)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_variables))
        return self._update_metrics(loss, logits, labels)

    def test_step(self, data):
        view_a, view_b = self._views(data)
        loss, logits, labels = self.contrastive_loss(view_a, view_b, training=False)
        return self._update_metrics(loss, logits, labels)
