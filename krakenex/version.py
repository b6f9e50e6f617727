"""The version of krakenex."""

__version__ = '3.0.0'
