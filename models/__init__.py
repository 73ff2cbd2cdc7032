"""wxemu models: graph (GraphCast-style multi-mesh) and transformer emulators, a fitted linear baseline, forcings
and baselines.

Pure PyTorch/numpy; imports nothing from ``pipeline``. See docs/models.md. Importing the package registers every
model kind (models.registry); a new kind adds its module to the import below.
"""

from models import graph_emulator, linear, pointwise_emulator, transformer_emulator  # noqa: F401  (each registers its model kind)
from models.base import (
    Emulator,
    ModelConfigError,
    build_model,
    count_parameters,
    is_global_grid,
)
from models.registry import model_kinds, register_model

__all__ = [
    "Emulator",
    "ModelConfigError",
    "build_model",
    "count_parameters",
    "is_global_grid",
    "model_kinds",
    "register_model",
]
