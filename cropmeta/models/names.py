"""The temporal encoders' names, without importing them (the CLI starts without torch)."""

from typing import Literal

EncoderName = Literal["tempcnn", "lstm", "transformer", "ltae", "presto"]
