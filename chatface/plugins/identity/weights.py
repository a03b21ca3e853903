"""The FaceNet weights: declared, imported (every key and shape checked) and loaded.

The weights are David Sandberg's facenet model 20180402-114759 (Inception-ResNet-v1
trained on VGGFace2), as Tim Esler ported them to PyTorch (facenet-pytorch,
``20180402-114759-vggface2.pt``). ``py-feat/facenet`` on Hugging Face carries that
state dict (``facenet_20180402_114759_vggface2.pth``, and the same as
``model.safetensors``). The importer keeps the embedding network (the 8631-way
VGGFace2 classifier ``logits.*`` is dropped) and writes ``facenet.safetensors``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatface.engine.checkpoints import WeightsError
from chatface.engine.types import Checkpoint, ImportedWeights, WeightsSource, WeightsSpec
from chatface.engine.weights import require, write_tensors

if TYPE_CHECKING:
    import torch

    from chatface.config import Config
    from chatface.plugins.identity.network import InceptionResNetV1

WEIGHTS_NAME = "facenet_vggface2"
WEIGHTS_FILE = "facenet.safetensors"
VGGFACE2_IDENTITIES = 8631  # rows of the training classifier: tells VGGFace2 weights apart
_COUNTER = "num_batches_tracked"  # batch-norm bookkeeping; never used in eval mode


def expected_shapes() -> dict[str, tuple[int, ...]]:
    """Every tensor of the network and its shape (built on the meta device: no memory)."""
    import torch

    from chatface.plugins.identity.network import InceptionResNetV1

    with torch.device("meta"):
        return {k: tuple(v.shape) for k, v in InceptionResNetV1().state_dict().items()}


class FaceNetImporter:
    """Imports facenet-pytorch's Inception-ResNet-v1 state dicts (.pt/.pth/.safetensors)."""

    def recognises(self, checkpoint: Checkpoint) -> bool:
        keys = checkpoint.tensors.keys()
        return "last_linear.weight" in keys and "repeat_1.0.branch0.conv.weight" in keys

    def convert(
        self, checkpoint: Checkpoint, staging: Path, *, name: str, options: Mapping[str, Any]
    ) -> ImportedWeights:
        import torch

        tensors = checkpoint.tensors
        logits = tensors.get("logits.weight")
        if logits is not None and logits.shape[0] != VGGFACE2_IDENTITIES:
            raise WeightsError(
                f"These FaceNet weights classify {logits.shape[0]} identities, not VGGFace2's "
                f"{VGGFACE2_IDENTITIES}: they were trained on another dataset."
            )
        expected = expected_shapes()
        got = {
            k: tuple(v.shape)
            for k, v in tensors.items()
            if not k.startswith("logits.") and not k.endswith(_COUNTER)
        }
        needed = {k: v for k, v in expected.items() if not k.endswith(_COUNTER)}
        wrong = sorted(k for k in needed.keys() & got.keys() if needed[k] != got[k])
        missing, unexpected = sorted(needed.keys() - got.keys()), sorted(got.keys() - needed)
        if missing or unexpected or wrong:
            raise WeightsError(
                "The weights do not fit Inception-ResNet-v1: "
                f"missing {missing[:3]}, unexpected {unexpected[:3]}, shape {wrong[:3]}."
            )
        state = {
            k: tensors[k].float() if k in needed else torch.zeros((), dtype=torch.long)
            for k in expected
        }
        files = {WEIGHTS_FILE: write_tensors(staging / WEIGHTS_FILE, state, None)}
        notes = [f"{len(needed)} tensors, checked strictly"]
        if logits is not None:
            notes.append("the VGGFace2 classifier (logits.*) is not needed and was dropped")
        return ImportedWeights("identity", files, tuple(notes))


def load_facenet(
    device: str | torch.device = "cpu", settings: Config | None = None
) -> InceptionResNetV1:
    """The installed network, in eval mode, frozen (gradients flow to its input only)."""
    from safetensors.torch import load_file

    from chatface.plugins.identity.network import InceptionResNetV1

    # py-feat/facenet's safetensors file, when fetched by hand.
    path = require(WEIGHTS_NAME, settings, import_file="model.safetensors") / WEIGHTS_FILE
    network = InceptionResNetV1()
    network.load_state_dict(load_file(str(path)), strict=True)
    return network.to(device).eval().requires_grad_(False)


SPEC = WeightsSpec(
    name=WEIGHTS_NAME,
    description="FaceNet Inception-ResNet-v1 trained on VGGFace2: identity after edits, "
    "identity loss in training",
    importer=FaceNetImporter(),
    sources=(WeightsSource("huggingface", "py-feat/facenet", "py-feat's copy"),),
    download_mb=112,
    manual_url="https://github.com/timesler/facenet-pytorch#pretrained-models",
)
