"""Built-in plugin: FaceNet, the face-recognition network that measures identity.

It registers the identity model ``facenet`` (the ``identity.model`` setting's default)
and declares its weights ``facenet_vggface2`` (``chatface weights download
facenet_vggface2``). ``network`` is the network, written for chatface in torch;
``weights`` imports and loads the published weights (docs/weights.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from chatface import hookimpl

if TYPE_CHECKING:
    from chatface.config import Config
    from chatface.engine.types import IdentityModel, WeightsSpec

MODEL_NAME = "facenet"


def make_facenet(config: Config) -> IdentityModel:
    """The installed FaceNet on the ``engine.device``; WeightsMissingError names the fix."""
    from chatface.engine.devices import resolve_device
    from chatface.plugins.identity.weights import load_facenet

    return load_facenet(resolve_device(config["engine.device"]), config)


@hookimpl
def chatface_register_identity_models(register: Callable[..., None]) -> None:
    register(MODEL_NAME, make_facenet)


@hookimpl
def chatface_register_weights(register: Callable[[WeightsSpec], None]) -> None:
    from chatface.plugins.identity.weights import SPEC

    register(SPEC)
