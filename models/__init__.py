"""wxemu models: graph (GraphCast-style multi-mesh) and transformer emulators, forcings and baselines.

Pure PyTorch/numpy; imports nothing from ``pipeline``. See docs/models.md.
"""

from models.base import (
    MODEL_KINDS,
    Emulator,
    ModelConfigError,
    build_model,
    count_parameters,
    is_global_grid,
)

__all__ = ["MODEL_KINDS", "Emulator", "ModelConfigError", "build_model", "count_parameters", "is_global_grid"]
