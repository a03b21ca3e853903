"""FaceNet, the identity plugin: the network (random weights here), its importer checked
against a state dict with the published key names and shapes, loading, the download from
a fake Hub, and the message when the weights are missing."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
import torch

from chatface.engine import weights
from chatface.engine.editor import Engine
from chatface.engine.weights import WeightsError
from chatface.errors import WeightsMissingError
from chatface.plugins.identity import MODEL_NAME
from chatface.plugins.identity.network import EMBED_DIM, InceptionResNetV1
from chatface.plugins.identity.weights import (
    VGGFACE2_IDENTITIES,
    WEIGHTS_NAME,
    expected_shapes,
    load_facenet,
)
from tests.fakes.hub import FakeHub, serve


def random_facenet(seed: int = 0) -> InceptionResNetV1:
    """Random weights scaled by fan-in, so activations stay near 1 through the deep stack
    (PyTorch's default initialisation shrinks them to subnormal floats, which are slow)."""
    network = InceptionResNetV1().eval().requires_grad_(False)
    generator = torch.Generator().manual_seed(seed)
    for name, tensor in network.state_dict().items():
        if not tensor.is_floating_point() or "running" in name:
            continue
        noise = torch.randn(tensor.shape, generator=generator)
        if tensor.dim() > 1:
            tensor.copy_(noise * (2 / tensor[0].numel()) ** 0.5)
        else:
            tensor.copy_((1.0 if name.endswith("weight") else 0.0) + 0.1 * noise)
    return network


def published(network: InceptionResNetV1, identities: int = VGGFACE2_IDENTITIES) -> dict:
    """The state dict as facenet-pytorch publishes it: with the VGGFace2 classifier."""
    state = {k: v.clone() for k, v in network.state_dict().items()}
    state["logits.weight"] = torch.zeros(identities, EMBED_DIM)
    state["logits.bias"] = torch.zeros(identities)
    return state


@pytest.fixture(scope="module")
def network() -> InceptionResNetV1:
    return random_facenet()


def test_embeddings_are_unit_vectors_of_any_size_with_gradients(network) -> None:
    torch.manual_seed(1)
    faces = (torch.rand(2, 3, 64, 64) * 2 - 1).requires_grad_(True)
    embedded = network.embed(faces)
    assert embedded.shape == (2, EMBED_DIM)
    assert torch.allclose(embedded.norm(dim=1), torch.ones(2), atol=1e-5)
    embedded[:, 0].sum().backward()
    assert faces.grad is not None and faces.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in network.parameters())  # frozen: a loss, not a learner
    bigger = network.embed(torch.nn.functional.interpolate(faces.detach(), size=256))
    assert bigger.shape == (2, EMBED_DIM)
    cosine = (bigger * embedded.detach()).sum(dim=1)
    assert (cosine > 0.9).all()  # the same faces at another size are still alike


def test_published_key_names_and_shapes_import_and_load_back(network, tmp_path) -> None:
    assert set(expected_shapes()) == set(network.state_dict())
    torch.save(published(network), tmp_path / "20180402-114759-vggface2.pt")
    info = Engine().import_weights(tmp_path / "20180402-114759-vggface2.pt", name=WEIGHTS_NAME)
    assert info.kind == "identity"
    assert any("logits" in note for note in info.notes)
    loaded = load_facenet()
    faces = torch.rand(3, 3, 96, 96) * 2 - 1
    assert torch.allclose(loaded.embed(faces), network.embed(faces), atol=1e-5)
    model = Engine().identity_model(MODEL_NAME)
    assert torch.allclose(model.embed(faces), network.embed(faces), atol=1e-5)
    assert weights.verify(WEIGHTS_NAME).ok


def test_a_checkpoint_without_the_classifier_or_counters_imports_too(network, tmp_path) -> None:
    state = {k: v for k, v in network.state_dict().items() if "num_batches" not in k}
    torch.save(state, tmp_path / "facenet.pth")
    Engine().import_weights(tmp_path / "facenet.pth", name=WEIGHTS_NAME)
    assert load_facenet().last_bn.running_var.shape == (EMBED_DIM,)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s.pop("repeat_2.3.conv2d.weight"), "missing.*repeat_2.3.conv2d.weight"),
        (lambda s: s.update({"block8.conv2d.bias": torch.zeros(7)}), "shape.*block8.conv2d.bias"),
        (lambda s: s.update({"extra.weight": torch.zeros(1)}), "unexpected.*extra.weight"),
    ],
)
def test_weights_of_another_network_are_refused(network, tmp_path, change, message) -> None:
    state = published(network)
    change(state)
    torch.save(state, tmp_path / "facenet.pt")
    with pytest.raises(WeightsError, match=message):
        Engine().import_weights(tmp_path / "facenet.pt", name=WEIGHTS_NAME)
    assert not weights.list_weights()


def test_weights_trained_on_another_dataset_are_refused(network, tmp_path) -> None:
    torch.save(published(network, identities=10575), tmp_path / "casia.pt")  # CASIA-WebFace
    with pytest.raises(WeightsError, match="10575 identities"):
        Engine().import_weights(tmp_path / "casia.pt", name=WEIGHTS_NAME)


def test_missing_weights_name_the_download_command() -> None:
    with pytest.raises(
        WeightsMissingError, match=f"chatface weights download {WEIGHTS_NAME}"
    ) as err:
        Engine().identity_model(MODEL_NAME)
    # The by-hand import names the Hub's safetensors file, not a DiffAE Lightning checkpoint.
    assert f"chatface weights import model.safetensors --name {WEIGHTS_NAME}`" in str(err.value)
    assert "last.ckpt" not in str(err.value) and "--trust-pickle" not in str(err.value)


@pytest.fixture
def hub(monkeypatch, network) -> Iterator[FakeHub]:
    pickled = io.BytesIO()
    torch.save(published(network), pickled)
    repo = {
        "facenet_20180402_114759_vggface2.pth": pickled.getvalue(),
        "config.json": b"{}",
    }
    with serve(FakeHub(repos={"py-feat/facenet": repo})) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        yield hub


def test_download_from_the_hub(hub, network) -> None:
    info = Engine().download_weights(WEIGHTS_NAME)
    assert info.source["file"] == "facenet_20180402_114759_vggface2.pth"
    faces = torch.rand(1, 3, 64, 64) * 2 - 1
    assert torch.allclose(load_facenet().embed(faces), network.embed(faces), atol=1e-5)
