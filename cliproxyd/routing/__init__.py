"""Model routing: the built-in catalogue, the model registry (which credential serves which model)
and the credential pool (selection and cooldown).  Everything here is pure: no I/O, no clock, no
Tornado.

Public names: `catalog.ModelInfo`, `catalog.Thinking`, `models.Credential`, `models.ModelRegistry`,
`models.build_registry`, `pool.Pool`, `pool.should_retry`.
"""

from cliproxyd.routing.catalog import ModelInfo, Thinking
from cliproxyd.routing.models import (
           Credential,
           ListedModel,
           ModelRegistry,
           build_registry,
)
from cliproxyd.routing.pool import Pool, should_retry

__all__ = [
           "Credential",
           "ListedModel",
           "ModelInfo",
           "ModelRegistry",
           "Pool",
           "Thinking",
           "build_registry",
           "should_retry",
]
