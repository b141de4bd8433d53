"""What the settings classes of every architecture share: construction from settings or keywords."""

from __future__ import annotations


def resolve(settings_type, settings, hyperparameters: dict, **defaults):
    """``settings`` (an instance of ``settings_type``) or one built from the keyword ``hyperparameters``
    (over ``defaults``); giving both is an error, so a model never holds two versions of a value."""
    if settings is None:
        return settings_type(**{**defaults, **hyperparameters})
    if not isinstance(settings, settings_type):
        raise ValueError(f"settings must be a {settings_type.__name__}, got {type(settings).__name__}")
    if hyperparameters:
        raise ValueError(f"give either settings or hyperparameters, not both (got {sorted(hyperparameters)})")
    return settings
