"""Bottleneck diagnostics, the active/inactive verdict, models.inspect, and loading pre-change checkpoints."""
from __future__ import annotations

import dataclasses

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from models import build_model
from models.checkpoint import load_model, read_checkpoint, save_checkpoint
from models.diagnostics import DIAGNOSTIC_COLUMNS, bottleneck_diagnostics, bottleneck_verdict
from models.inspect import main as inspect_main
from models.train import main as train_main

TINY = ["--arch", "resnet18", "--image-size", "32", "--num-classes", "3", "--train-size", "24", "--val-size", "9",
        "--batch-size", "8", "--lr", "0.05", "--workers", "0", "--no-progress", "--warmup-epochs", "1", "--epochs", "1"]
GOOD = {"sigma_p50": 0.5, "sigma_cv": 0.2, "sigma_to_mu_spread": 0.8, "attn_temperature": 4.5}


def random_loader(n: int = 10, batch: int = 4, classes: int = 3):
    generator = torch.Generator().manual_seed(3)
    images = torch.randn(n, 3, 32, 32, generator=generator)
    labels = torch.randint(0, classes, (n,), generator=generator)
    return [(images[i:i + batch], labels[i:i + batch]) for i in range(0, n, batch)]


def test_diagnostics_match_a_direct_computation() -> None:
    torch.manual_seed(0)
    model = build_model("resnet18", 3, "vib", sigma_init=0.5).eval()
    loader = random_loader()
    values = bottleneck_diagnostics(model, loader, device=torch.device("cpu"), max_images=9)
    assert bottleneck_diagnostics(model, loader, device=torch.device("cpu"), max_images=10) != values
    values = bottleneck_diagnostics(model, loader, device=torch.device("cpu"), max_images=10)
    batches = loader
    labels = torch.cat([y for _, y in batches])
    with torch.no_grad():  # batch by batch, as the function sees them (float32 sums depend on batching)
        mu, sigma = (torch.cat(parts) for parts in zip(*(model.posterior(model.features(x)) for x, _ in batches)))
        eval_logits = torch.cat([model(x) for x, _ in batches])  # eval mode: fc(GAP(F)), the CAM contract
        attention = torch.cat([model.attention.attention(model.features(x)) for x, _ in batches])
    flat = sigma.double().flatten().numpy()
    assert values["sigma_p10"] == pytest.approx(np.quantile(flat, 0.1), rel=1e-4)
    assert values["sigma_p50"] == pytest.approx(np.median(flat), rel=1e-4)
    assert values["sigma_p90"] == pytest.approx(np.quantile(flat, 0.9), rel=1e-4)
    s = sigma.double().numpy()
    assert values["sigma_cv"] == pytest.approx(np.median(s.std(0) / s.mean(0)), rel=1e-4)
    assert values["sigma_to_mu_spread"] == pytest.approx(np.median(s.mean(0) / np.maximum(mu.double().numpy().std(0), 1e-12)), rel=1e-4)
    reference = torch.distributions.kl_divergence(torch.distributions.Normal(mu.double(), sigma.double()),
                                                  torch.distributions.Normal(0.0, 1.0)).mean()
    assert values["kl_mu"] + values["kl_sigma"] == pytest.approx(reference.item(), rel=1e-4)
    assert values["kl_mu"] == pytest.approx((0.5 * mu.double().square()).mean().item(), rel=1e-4)
    assert values["val_acc_mu"] == pytest.approx((eval_logits.argmax(1) == labels).double().mean().item())
    entropy = -(attention * attention.log()).sum(-1) / np.log(attention.shape[-1])
    assert values["attn_entropy"] == pytest.approx(entropy.mean().item(), rel=1e-4)
    assert values["attn_temperature"] == pytest.approx(5.0)
    assert 0.0 <= values["val_acc_sampled"] <= 1.0


def test_sampled_accuracy_falls_when_sigma_swamps_mu() -> None:
    torch.manual_seed(0)
    model = build_model("resnet18", 3, "vib", sigma_init=1e3).eval()
    loader = random_loader(n=60, batch=20)
    labels = torch.cat([y for _, y in loader])
    with torch.no_grad():  # an fc that is right on every image, so only the noise can make it wrong
        mu = torch.cat([model.features(x).mean((2, 3)) for x, _ in loader]).double()
        targets = torch.nn.functional.one_hot(labels, 3).double() * 10
        model.fc.weight.copy_(torch.linalg.lstsq(mu, targets).solution.T.float())
        model.fc.bias.zero_()
    values = bottleneck_diagnostics(model, loader, device=torch.device("cpu"))
    assert values["val_acc_mu"] == 1.0 and values["val_acc_sampled"] < 0.7


def test_verdict_thresholds() -> None:
    assert bottleneck_verdict(GOOD, 5.0).active
    for name, bad in (("sigma_p50", 0.0067), ("sigma_cv", 0.0), ("sigma_to_mu_spread", 0.01),
                      ("attn_temperature", 5.0)):
        verdict = bottleneck_verdict({**GOOD, name: bad}, 5.0)
        assert not verdict.active and "FAIL" in verdict.describe() and "INACTIVE" in verdict.describe()


def test_legacy_head_at_initialisation_is_inactive_and_the_new_head_starts_large() -> None:
    loader = random_loader()
    torch.manual_seed(0)
    legacy = bottleneck_diagnostics(build_model("resnet18", 3, "vib", sigma_parametrisation="legacy"), loader,
                                    device=torch.device("cpu"))
    assert legacy["sigma_p50"] == pytest.approx(np.log1p(np.exp(-5.0)), rel=1e-4) and legacy["sigma_cv"] < 1e-6
    assert not bottleneck_verdict(legacy, 5.0).active
    torch.manual_seed(0)
    new = bottleneck_diagnostics(build_model("resnet18", 3, "vib"), loader, device=torch.device("cpu"))
    assert new["sigma_p50"] > 0.5  # starts at the prior's scale (input dependence: test_models_build)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("diag-runs")
    assert train_main([*TINY, "--out", str(root / "baseline")]) == 0
    assert train_main([*TINY, "--head", "vib", "--beta", "0.01", "--out", str(root / "vib")]) == 0
    return root


def test_metrics_csv_has_the_bottleneck_columns_for_vib_only(runs: Path) -> None:
    with open(runs / "vib" / "metrics.csv") as stream:
        row = next(csv.DictReader(stream))
    assert all(row[name] != "" for name in DIAGNOSTIC_COLUMNS)
    assert float(row["sigma_p10"]) <= float(row["sigma_p50"]) <= float(row["sigma_p90"])
    assert row["active"] in ("0", "1")
    with open(runs / "baseline" / "metrics.csv") as stream:
        row = next(csv.DictReader(stream))
    assert all(row[name] == "" for name in DIAGNOSTIC_COLUMNS)


def test_training_ends_with_the_verdict_and_warns_when_inactive(tmp_path: Path, capsys) -> None:
    # The legacy head starts at sigma = 0.0067 and its attention gets no gradient: inactive after an epoch.
    assert train_main([*TINY, "--head", "vib", "--beta", "0.01", "--sigma-parametrisation", "legacy",
                       "--out", str(tmp_path / "legacy")]) == 0
    captured = capsys.readouterr()
    assert "bottleneck INACTIVE" in captured.out and "FAIL median sigma" in captured.out
    assert "warning: the VIB bottleneck ended INACTIVE" in captured.err


def test_inspect_prints_the_table_and_the_verdict(runs: Path, capsys) -> None:
    assert inspect_main([str(runs / "vib")]) == 0
    out = capsys.readouterr().out
    assert "| epoch | val_acc | sigma_p10 |" in out and "bottleneck " in out and "median sigma" in out
    assert inspect_main([str(runs / "baseline")]) == 0
    assert "no bottleneck" in capsys.readouterr().out
    assert inspect_main([str(runs / "missing")]) == 1
    assert "not found" in capsys.readouterr().err


def test_a_checkpoint_from_before_the_new_head_loads_as_legacy_and_is_inspected(runs: Path, tmp_path: Path,
                                                                                 capsys) -> None:
    state = read_checkpoint(runs / "vib" / "last.pt")
    for key in ("sigma_parametrisation", "sigma_init", "sigma_scale_init"):
        state.options.pop(key)
    state = dataclasses.replace(state, metrics=[{k: v for k, v in row.items() if k not in DIAGNOSTIC_COLUMNS}
                                                for row in state.metrics])
    with torch.no_grad():  # what a legacy head's parameters look like after a little training
        state.model["attention.scale"] = torch.full_like(state.model["attention.scale"], 0.01)
        state.model["attention.bias"] = torch.full_like(state.model["attention.bias"], 0.2)
    save_checkpoint(state, tmp_path / "old.pt")
    model, info = load_model(tmp_path / "old.pt")
    assert info.options["sigma_parametrisation"] == "legacy" and model.attention.parametrisation == "legacy"
    maps = torch.rand(2, 512, 1, 1)
    mu = maps.mean((2, 3))
    expected = torch.nn.functional.softplus(0.01 * model.attention.context(maps, mu) + 0.2 - 5.0)
    torch.testing.assert_close(model.attention(maps, mu), expected)
    assert inspect_main([str(tmp_path / "old.pt")]) == 0
    out = capsys.readouterr().out
    assert "predates" in out and "bottleneck INACTIVE" in out
