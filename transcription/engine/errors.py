"""The one exception family the engine raises; the caption and task layers catch `EngineError` once."""


class EngineError(Exception):
    """Something the engine cannot do; the message is written for an administrator."""


class ModelNotFound(EngineError):
    """The model folder does not exist or is not a folder."""


class ModelIncomplete(EngineError):
    """The model folder lacks files the engine needs."""


class ModelCorrupt(EngineError):
    """A model file exists but cannot be read."""


class EngineAtCapacity(EngineError):
    """Every stream slot is taken; the caller should retry later or move the meeting to another engine."""


class InvalidDelay(EngineError):
    """The caption delay is outside 80-2400 ms or not a multiple of 80 ms."""


class InvalidAudio(EngineError):
    """Audio is not 16 kHz mono PCM in a numpy array of int16 or float32."""


class StreamClosed(EngineError):
    """Audio was pushed to a stream that is closed or failed."""


class EngineStopped(EngineError):
    """The engine was shut down or its worker thread died."""
