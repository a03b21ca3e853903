"""The fast render path: its accuracy against fp32 (the guard), and how it is chosen."""

from __future__ import annotations

import contextlib
import json
import math

import pytest
import torch
from typer.testing import CliRunner

from chatface.config import SETTINGS
from chatface.engine.types import Latents
from chatface.errors import ConfigError
from chatface.plugins.diffae import bench, fast
from chatface.plugins.diffae.backend import DiffAEBackend
from chatface.plugins.diffae.fast import FastPath, resolve
from chatface.plugins.diffae.nn import AttentionBlock
from tests.plugins.diffae.test_equivalence import REQUIRED, Fixture

DEFAULTS = {s.name: s.default for s in SETTINGS}
STEPS = DEFAULTS["render.steps"]
EXACT_STEPS = DEFAULTS["render.exact_steps"]
# The documented tolerance (docs/performance.md): renders of the fast path within this
# PSNR of the fp32 path, on the official-code fixture and on the ffhq256 layout.
MIN_PSNR_DB = 40.0


@pytest.fixture(scope="module")
def official() -> Fixture:
    return Fixture(REQUIRED)


def renders(model, latents: Latents, path: FastPath, steps: int = STEPS):
    with torch.no_grad():
        exact = DiffAEBackend(model, device="cpu").render(latents, None, steps)
        faster = DiffAEBackend(model, device="cpu", fast=path).render(latents, None, steps)
    return exact, faster


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_the_fast_path_stays_within_the_tolerance_on_the_official_fixture(
    official, precision
) -> None:
    latents = Latents(official.io["z_sem"], official.io["x_T"])
    exact, faster = renders(official.model, latents, FastPath(precision, EXACT_STEPS))
    accuracy = bench.psnr(faster, exact)
    print(f"{precision}, first {EXACT_STEPS} of {STEPS} steps fp32: {accuracy:.1f} dB")
    assert accuracy >= MIN_PSNR_DB
    # Not vacuous: the reduced-precision steps did change the render.
    assert not torch.equal(faster, exact)


def test_the_exact_steps_are_what_keeps_the_fixture_within_the_tolerance(official) -> None:
    """Without fp32 first steps, bf16 falls far short on this chaotic random network: the
    guard above measures something real."""
    latents = Latents(official.io["z_sem"], official.io["x_T"])
    exact, faster = renders(official.model, latents, FastPath("bf16", 0))
    assert bench.psnr(faster, exact) < 30


def test_the_fast_path_stays_within_the_tolerance_on_the_ffhq256_layout() -> None:
    """The official ffhq256_autoenc network (random weights) at 128 px to keep it quick."""
    model = bench.random_model(size=128)
    generator = torch.Generator().manual_seed(1)
    latents = Latents(
        torch.randn(1, 512, generator=generator), torch.randn(1, 3, 128, 128, generator=generator)
    )
    exact, faster = renders(model, latents, FastPath("bf16", EXACT_STEPS))
    accuracy = bench.psnr(faster, exact)
    print(f"ffhq256 layout at 128 px, bf16: {accuracy:.1f} dB")
    assert accuracy >= MIN_PSNR_DB
    assert not torch.equal(faster, exact)


def test_renders_with_gradients_take_the_exact_path(official) -> None:
    backend = DiffAEBackend(official.model, device="cpu", fast=FastPath("bf16", 0))
    latents = Latents(official.io["z_sem"][:1], official.io["x_T"][:1])
    z = latents.z_sem.clone().requires_grad_(True)
    trained = backend.render(latents, z, 2)
    assert backend.step_networks() is None  # gradients are on here
    with torch.no_grad():
        exact = DiffAEBackend(official.model, device="cpu").render(latents, z.detach(), 2)
        faster = backend.render(latents, z.detach(), 2)
    assert torch.equal(trained.detach(), exact)
    assert not torch.equal(faster, exact)
    trained.sum().backward()
    assert z.grad is not None


def test_fused_attention_matches_the_official_order_of_operations() -> None:
    torch.manual_seed(0)
    block = AttentionBlock(64, num_heads=2).eval()
    torch.nn.init.normal_(block.proj_out.weight)  # zero-initialised: would hide attention
    x = torch.randn(2, 64, 8, 8)
    with torch.no_grad():
        official = block(x)
        block.fused = True
        fused = block(x)
    assert (fused - official).abs().max().item() < 1e-5
    assert not torch.equal(official, x)


def test_auto_picks_bf16_where_the_hardware_has_it(monkeypatch) -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setattr(fast, "cpu_has_bf16", lambda: True)
    assert resolve(cpu) == FastPath("bf16", EXACT_STEPS, compile=False)
    monkeypatch.setattr(fast, "cpu_has_bf16", lambda: False)
    assert resolve(cpu) == FastPath()  # fp32 has no exact steps to keep
    monkeypatch.setattr(torch.cuda, "device", lambda device: contextlib.nullcontext())
    native: list[bool] = []

    def bf16(including_emulation: bool = True) -> bool:
        native.append(not including_emulation)
        return including_emulation  # this GPU only emulates bf16

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", bf16)
    assert resolve(cuda) == FastPath("fp16", EXACT_STEPS, compile=True)
    assert native == [True]  # asked for native bf16, not emulation
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda **k: True)
    assert resolve(cuda) == FastPath("bf16", EXACT_STEPS, compile=True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda **k: False)
    assert resolve(cuda, exact_steps=1) == FastPath("fp16", 1, compile=True)
    assert resolve(cuda, "fp32", compile="off") == FastPath()
    assert resolve(cpu, "bf16", 0, "on") == FastPath("bf16", 0, compile=True)


@pytest.mark.parametrize(
    "args",
    [{"precision": "int8"}, {"compile": "yes"}, {"exact_steps": -1}, {"exact_steps": True}],
)
def test_bad_settings_are_config_errors(args) -> None:
    with pytest.raises(ConfigError, match="render\\."):
        resolve(torch.device("cpu"), **args)


def test_compiled_networks_see_static_batch_sizes() -> None:
    seen = []

    def network(x, t, z):
        seen.append((x.shape[0], t.shape[0], z.shape[0]))
        return x * 2

    x, t, z = torch.randn(3, 3, 4, 4), torch.zeros(3, dtype=torch.long), torch.randn(3, 5)
    for device in ("cpu", "cuda"):
        out = fast._padded(network, x, t, z, torch.device(device))
        assert seen.pop() == (4, 4, 4)  # 3 padded up to 4
        assert torch.equal(out, x * 2)
    fast._padded(network, x[:2], t[:2], z[:2], torch.device("cpu"))
    assert seen.pop() == (2, 2, 2)  # a static size as it is


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_compiled_networks_render_like_eager_ones(monkeypatch, official, precision) -> None:
    """The compile wiring on a CPU: compiled with frozen weights, batches padded, the same
    eps as eager (torch.compile itself is stood in for: compiling takes minutes here)."""
    compiled = []

    def compile_(model, **options):
        compiled.append(options)
        return model

    monkeypatch.setattr(torch, "compile", compile_)
    model = official.model
    if precision != "fp32":
        model = fast.reduced_copy(model, precision)
    x, z = official.io["xt"][:1].repeat(3, 1, 1, 1), official.io["z_sem"][:1].repeat(3, 1)
    t = torch.full((3,), 500)
    with torch.no_grad():
        eager = fast.network(model, precision, compile=False)(x, t, z)
        padded = fast.network(model, precision, compile=True)(x, t, z)
    assert compiled == [{"dynamic": False, "options": {"freezing": True}}]
    assert padded.dtype == torch.float32 and padded.shape == eager.shape
    assert (padded - eager).abs().max().item() < 0.05  # bf16 rounds per batch size


def test_bench_measures_both_paths_on_a_small_network(official) -> None:
    face = official.io["x0"][:1]
    plan = bench.Plan(
        steps=2, encode_steps=2, encode_default=4, batches=(1, 2), repeats=1, curve=(1, 3)
    )
    results = bench.run(official.model, FastPath("bf16", 1), torch.device("cpu"), plan, face)
    assert results["ratio"] == results["fast"]["render_s"] / results["baseline"]["render_s"]
    assert results["fast"]["psnr_db"] > 20
    encode = results["encode"]
    assert encode["seconds"] == encode["semantic_s"] + encode["inversion_s"]
    assert encode["seconds_at_default_steps"] == encode["semantic_s"] + 2 * encode["inversion_s"]
    assert [row["batch"] for row in results["throughput"]] == [1, 2]
    assert all(row["renders_per_s"] > 0 for row in results["throughput"])
    assert results["peak_memory_mib"] == results["throughput"][0]["peak_memory_mib"] > 0
    curve = results["reconstruction"]
    assert [row["encode_steps"] for row in curve] == [1, 3]
    assert all(row["inversion_s"] > 0 and row["psnr_db"] > 0 for row in curve)
    json.dumps(results, allow_nan=False)  # plain JSON


def test_chatface_bench_quick_json_reports_the_ratio(monkeypatch, tmp_path, official) -> None:
    from chatface.cli.main import app

    monkeypatch.setattr(bench, "random_model", lambda: official.model)
    monkeypatch.setenv("CHATFACE_RENDER_STEPS", "2")
    monkeypatch.setenv("CHATFACE_RENDER_ENCODE_STEPS", "4")
    monkeypatch.setenv("CHATFACE_RENDER_PRECISION", "bf16")
    out = tmp_path / "results"
    result = CliRunner().invoke(
        app, ["bench", "--device", "cpu", "--json", "--quick", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    results = json.loads(result.stdout)
    assert math.isfinite(results["ratio"]) and results["ratio"] > 0
    assert results["weights"] == "random ffhq256_autoenc layout"
    assert results["machine"]["device"] == "cpu"
    assert results["fast_path"] == "bf16, channels_last, first 2 steps fp32"
    assert results["encode"]["steps"] == 4  # quick: at most 10 inversion steps
    assert results["encode"]["detect_align_s"] > 0
    assert "reconstruction" not in results  # only with --encode-curve
    assert [row["batch"] for row in results["throughput"]] == [1]  # quick on a CPU
    [saved] = out.glob("*-cpu-quick.json")
    assert json.loads(saved.read_text()) == results
