"""circuitgen: the library behind the circuit-generalization notebook series."""

from circuitgen.models import (
    KNOWN_MODELS,
    REFERENCE_MODEL,
    EmbeddedModelMissingError,
    HubUnreachableError,
    ModelLoadError,
    UnknownModelError,
    describe,
    load_model,
)

__version__ = "0.1.0"
__all__ = [
    "KNOWN_MODELS", "REFERENCE_MODEL", "EmbeddedModelMissingError", "HubUnreachableError",
    "ModelLoadError", "UnknownModelError", "describe", "load_model",
]
