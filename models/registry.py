"""The model kinds known to ``build_model``: each emulator module registers its class under its ``kind``.

``register_model`` is a class decorator (``@register_model`` on an ``Emulator`` subclass with a ``kind``);
``model_class(kind)`` returns the class or None; ``model_kinds()`` the registered kinds, sorted. A new kind is a
new module that decorates its class and is imported by ``models/__init__.py``.
"""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T", bound=type)

_MODELS: dict[str, type] = {}


def register_model(cls: T) -> T:
    """Register ``cls`` under ``cls.kind``; a kind registered twice by two different classes is a bug."""
    kind = getattr(cls, "kind", None)
    if not isinstance(kind, str) or not kind:
        raise TypeError(f"{cls.__name__} needs a class attribute `kind` (a non-empty string) to be registered")
    known = _MODELS.get(kind)
    if known is not None and known.__qualname__ != cls.__qualname__:
        raise TypeError(f"model kind {kind!r} is already registered by {known.__module__}.{known.__qualname__}")
    _MODELS[kind] = cls
    return cls


def model_class(kind: str) -> type | None:
    """The class registered under ``kind``, or None."""
    return _MODELS.get(kind)


def model_kinds() -> tuple[str, ...]:
    """The registered model kinds, sorted."""
    return tuple(sorted(_MODELS))
