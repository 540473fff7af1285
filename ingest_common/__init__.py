"""Shared by the API and consumer images: the SQS envelope, logging, AWS and metrics helpers."""

__version__ = "0.1.0"
