"""Offline training for alexnet-edge: AlexNet family in PyTorch, exported as int8 model packages.

See training/README.md for the commands and docs/model-package.md for the package format.
"""
