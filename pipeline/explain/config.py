"""The explain stage's config: what to explain (a region-mean forecast) and how to attribute it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data_catalog.config_files import check_fields, read_mapping
from data_catalog.errors import ConfigError

METHODS = ("integrated_gradients", "smoothgrad", "gradient")
BASELINES = ("climatology", "mean")


@dataclass(frozen=True)
class ExplainConfig:
    """Attribute the area-weighted mean over ``region`` of ``variable`` [at ``level``] forecast at ``lead``.

    checkpoint: RUN_DIR or its model.safetensors. store: the canonical analysis store holding the initial state.
    init: the initial time. lead: e.g. "24h". The path to it: the greedy one of trained steps from ``init``
    (default), or the lagged one that ``wxemu forecast --lagged-paths`` may choose for a history-1 model (one
    trained step from the analysis ``lag`` hours before ``init``): give ``lag`` (e.g. "1h"), or ``forecast``, a
    forecast store whose recorded paths (attribute ``wxemu_lead_paths``) are followed (pipeline.explain.paths).
    region: a named region or a box "lat0,lat1,lon0,lon1" (data_catalog.regions). method: integrated_gradients
    (``n_steps`` points), smoothgrad (``n_samples`` noisy gradients, ``noise`` std in normalised units) or
    gradient. baseline: the state the attribution is measured from: "climatology" (the store's climatology at
    each history time) or "mean" (the training mean). deletion_blocks / random_orderings: the faithfulness
    curves' resolution and the number of random orderings they are compared with.
    """

    checkpoint: str
    store: str
    init: str
    lead: str = "24h"
    variable: str = "2m_temperature"
    level: int | None = None
    region: str = "uk"
    method: str = "integrated_gradients"
    baseline: str = "climatology"
    n_steps: int = 32
    n_samples: int = 16
    noise: float = 0.1
    deletion_blocks: int = 10
    random_orderings: int = 8
    out: str | None = None
    seed: int = 0
    lag: str | None = None
    forecast: str | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"explain: method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.baseline not in BASELINES:
            raise ConfigError(f"explain: baseline must be one of {', '.join(BASELINES)}, got {self.baseline!r}")
        for name in ("n_steps", "n_samples", "deletion_blocks", "random_orderings"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"explain: {name} must be >= 1, got {getattr(self, name)}")
        if not self.noise > 0:
            raise ConfigError(f"explain: noise must be a positive number, got {self.noise}")
        if self.lag is not None and self.forecast is not None:
            raise ConfigError("explain: give the path by lag or by forecast store, not both")
        if not str(self.init).strip():
            raise ConfigError("explain: init is empty (give a time such as 2019-03-25T00)")

    @property
    def channel(self) -> str:
        """The channel name of the explained quantity (``variable`` or ``variable/level``)."""
        return self.variable if self.level is None else f"{self.variable}/{self.level}"

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ExplainConfig:
        check_fields(cls, values, "explain config")
        try:
            return cls(**values)
        except TypeError as exc:
            raise ConfigError(f"explain: {exc}") from None

    @classmethod
    def from_yaml(cls, path: str | Path) -> ExplainConfig:
        return cls.from_dict(read_mapping(path, "explain config"))
