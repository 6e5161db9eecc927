"""cropmeta: few-shot crop-type mapping with meta-learning."""

__version__ = "0.1.0"
