"""The version of krakenex, and where it lives."""

__version__ = '3.0.0'
__url__ = 'https://github.com/veox/python3-krakenex'
