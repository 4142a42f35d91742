"""Data: real audio from Debian packages, dataset readers and augmentations."""
