"""Training: loss goes down, exact resume, run folder, checkpoints (weights-only, clear errors), CLIs."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import models.train as train_module
from models import build_model
from models.checkpoint import CheckpointError, CheckpointState, load_model, read_checkpoint, save_checkpoint
from models.engine import vib_loss
from models.evaluate import main as evaluate_main
from models.precision import resolve_precision
from models.sweep import main as sweep_main
from models.train import lr_factor, main as train_main

TINY = ["--arch", "resnet18", "--image-size", "32", "--num-classes", "3", "--train-size", "24", "--val-size", "9",
        "--batch-size", "8", "--lr", "0.05", "--workers", "0", "--no-progress", "--warmup-epochs", "1"]
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("head", ["baseline", "vib"])
def test_a_few_steps_lower_the_loss(head: str) -> None:
    torch.manual_seed(0)
    options = {"kl_reduction": "mean"} if head == "vib" else {}
    model = build_model("resnet18", 3, head, **options).train()
    images, labels = torch.randn(12, 3, 32, 32), torch.arange(12) % 3
    optimizer = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    losses = []
    for _ in range(8):
        loss, *_ = vib_loss(model(images), labels, beta=1e-3)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path: Path, monkeypatch) -> None:
    arguments = [*TINY, "--head", "vib", "--beta", "1e-3", "--epochs", "2", "--seed", "4"]
    assert train_main([*arguments, "--out", str(tmp_path / "straight")]) == 0

    real_evaluate = train_module.evaluate
    calls = []

    def interrupted_after_first_epoch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(train_module, "evaluate", interrupted_after_first_epoch)
    assert train_main([*arguments, "--out", str(tmp_path / "resumed")]) == 130
    assert read_checkpoint(tmp_path / "resumed" / "last.pt").epoch == 1
    monkeypatch.setattr(train_module, "evaluate", real_evaluate)
    assert train_main(["--out", str(tmp_path / "resumed"), "--resume", "--workers", "0", "--no-progress"]) == 0

    straight = read_checkpoint(tmp_path / "straight" / "last.pt")
    resumed = read_checkpoint(tmp_path / "resumed" / "last.pt")
    assert resumed.epoch == straight.epoch == 2
    assert straight.model.keys() == resumed.model.keys()
    different = [k for k in straight.model if not torch.equal(straight.model[k], resumed.model[k])]
    assert not different, different[:5]
    assert [r["loss"] for r in straight.metrics] == [r["loss"] for r in resumed.metrics]


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory) -> Path:
    """A baseline and a VIB run of one epoch each, shared by the checkpoint and evaluate tests."""
    root = tmp_path_factory.mktemp("runs")
    assert train_main([*TINY, "--epochs", "1", "--out", str(root / "baseline")]) == 0
    assert train_main([*TINY, "--epochs", "1", "--head", "vib", "--beta", "0.01", "--out", str(root / "vib")]) == 0
    return root


def test_run_folder_contents(tiny_runs: Path) -> None:
    folder = tiny_runs / "vib"
    assert {p.name for p in folder.iterdir()} == {"config.json", "metrics.csv", "last.pt", "best.pt"}
    config = json.loads((folder / "config.json").read_text())
    assert config["arch"] == "resnet18" and config["head"] == "vib" and config["beta"] == 0.01
    assert config["class_names"] == ["red_plain_circle", "green_striped_square", "blue_dotted_triangle"]
    with open(folder / "metrics.csv") as stream:
        rows = list(csv.DictReader(stream))
    assert list(rows[0]) == list(train_module.METRIC_COLUMNS) and len(rows) == 1
    assert float(rows[0]["kl"]) > 0 and 0 <= float(rows[0]["val_acc"]) <= 1
    state = torch.load(folder / "last.pt", weights_only=True)  # loads with the safe unpickler
    for key in ("model", "optimizer", "scheduler", "epoch", "args", "arch", "head", "num_classes", "class_names",
                "class_labels", "options", "beta", "data", "rng", "best_acc", "metrics"):
        assert key in state, key


def test_load_model_returns_the_trained_model(tiny_runs: Path) -> None:
    model, info = load_model(tiny_runs / "vib")
    assert not model.training and info.path.name == "best.pt" and len(info.sha256) == 64
    assert (info.arch, info.head, info.num_classes, info.beta) == ("resnet18", "vib", 3, 0.01)
    assert info.class_labels[0] == "red plain circle" and info.data["image_size"] == 32
    assert info.options["kl_reduction"] == "sum"
    stored = read_checkpoint(tiny_runs / "vib" / "best.pt").model
    assert all(torch.equal(stored[k], v) for k, v in model.state_dict().items())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), model.fc(model.features(x).mean((2, 3))))


def test_checkpoint_errors_are_one_clear_line(tiny_runs: Path, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match="has no best.pt or last.pt"):
        load_model(tmp_path)
    with pytest.raises(CheckpointError, match="expected resnet50"):
        load_model(tiny_runs / "baseline", arch="resnet50")
    with pytest.raises(CheckpointError, match="trained for 3 classes, expected 397"):
        load_model(tiny_runs / "baseline", num_classes=397)
    (tmp_path / "noise.pt").write_bytes(os.urandom(256))
    with pytest.raises(CheckpointError, match="not a readable vibcam checkpoint"):
        load_model(tmp_path / "noise.pt")
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="not a vibcam checkpoint"):
        load_model(tmp_path / "plain.pt")
    torch.save({"format": "vibcam.checkpoint/1", "payload": Path("code objects are refused")}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="not a readable vibcam checkpoint"):
        load_model(tmp_path / "evil.pt")
    state = read_checkpoint(tiny_runs / "baseline" / "last.pt")
    torch.save({**state.to_dict(), "arch": "resnet34"}, tmp_path / "relabelled.pt")
    with pytest.raises(CheckpointError, match="do not fit"):
        load_model(tmp_path / "relabelled.pt")


def test_train_cli_refuses_to_overwrite_and_checks_resume_options(tiny_runs: Path, capsys) -> None:
    out = str(tiny_runs / "baseline")
    assert train_main([*TINY, "--epochs", "1", "--out", out]) == 1
    assert "already has last.pt; pass --resume" in capsys.readouterr().err
    assert train_main(["--out", out, "--resume", "--arch", "resnet34", "--no-progress"]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "--arch resnet18" in error
    assert train_main(["--out", out, "--resume", "--no-progress"]) == 0
    assert "already complete" in capsys.readouterr().out


def test_evaluate_writes_table_1(tiny_runs: Path, tmp_path: Path) -> None:
    out = tmp_path / "table"
    assert evaluate_main([str(tiny_runs), "--out", str(out), "--workers", "0", "--no-progress"]) == 0
    with open(out / "table1.csv") as stream:
        rows = list(csv.DictReader(stream))
    assert list(rows[0]) == ["model", "beta", "top1", "relative_to_baseline", "top5", "mean_kl", "run"]
    assert [r["model"] for r in rows] == ["ResNet-18", "VIB-ResNet-18"]
    assert rows[0]["beta"] == "" and float(rows[1]["beta"]) == 0.01
    assert float(rows[0]["relative_to_baseline"]) == pytest.approx(100.0)
    baseline_acc = read_checkpoint(tiny_runs / "baseline" / "last.pt").metrics[-1]["val_acc"]
    assert float(rows[0]["top1"]) == pytest.approx(100 * baseline_acc, abs=1e-3)
    assert float(rows[1]["mean_kl"]) > 0 and rows[0]["mean_kl"] == ""
    assert "| VIB-ResNet-18 | 1e-02 |" in (out / "table1.md").read_text()
    assert (out / "accuracy_vs_beta.png").read_bytes()[:4] == b"\x89PNG"


def test_sweep_skips_complete_runs_and_reports_failures(tmp_path: Path, capsys) -> None:
    options = [*TINY, "--epochs", "1", "--train-size", "6", "--val-size", "3", "--num-classes", "3"]
    broken = tmp_path / "vib-beta0.01-seed0"
    broken.mkdir()
    (broken / "last.pt").write_bytes(b"not a checkpoint")
    code = sweep_main(["--out", str(tmp_path), "--betas", "1e-3,1e-2", "--no-baseline", *options])
    output = capsys.readouterr()
    assert code == 1 and "1 run(s) failed: vib-beta0.01-seed0" in output.err
    assert read_checkpoint(tmp_path / "vib-beta0.001-seed0" / "last.pt").epoch == 1
    assert sweep_main(["--out", str(tmp_path), "--betas", "1e-3", "--no-baseline", *options]) == 0
    assert "skipped" in capsys.readouterr().out


def test_schedule_and_precision_choices(monkeypatch) -> None:
    assert lr_factor(0, 10, 100) == pytest.approx(0.1) and lr_factor(9, 10, 100) == pytest.approx(1.0)
    assert lr_factor(10, 10, 100) == pytest.approx(1.0) and lr_factor(100, 10, 100) == pytest.approx(0.0)
    assert lr_factor(55, 10, 100) == pytest.approx(0.5)
    cpu = torch.device("cpu")
    monkeypatch.setattr("models.precision.cpu_has_native_bf16", lambda: False)
    assert resolve_precision("auto", cpu).name == "fp32"
    monkeypatch.setattr("models.precision.cpu_has_native_bf16", lambda: True)
    native = resolve_precision("auto", cpu)
    assert native.name == "bf16" and native.channels_last
    assert resolve_precision("fp32", cpu).name == "fp32"


@pytest.mark.slow
def test_torchrun_trains_with_two_processes(tmp_path: Path) -> None:
    """DistributedDataParallel on CPU (gloo) through the same command, nothing else to change."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "models.train", *TINY, "--epochs", "1", "--head", "vib", "--out", str(tmp_path / "ddp")]
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    result = subprocess.run(command, cwd=REPO, env=environment, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    state = read_checkpoint(tmp_path / "ddp" / "last.pt")
    assert json.loads((tmp_path / "ddp" / "config.json").read_text())["environment"]["world_size"] == 2
    assert state.epoch == 1 and not any(k.startswith("module.") for k in state.model)


def test_checkpoint_state_is_the_one_list_of_keys(tiny_runs: Path, tmp_path: Path) -> None:
    """A renamed or missing key is refused with the file's name, not a KeyError later; plain dicts are
    not accepted by the writer, so every checkpoint on disk has the typed layout."""
    state = read_checkpoint(tiny_runs / "baseline" / "last.pt")
    assert set(CheckpointState.required_keys()) == {"model", "arch", "head", "num_classes", "class_names",
                                                     "class_labels", "options", "data"}
    raw = state.to_dict()
    raw["class_label"] = raw.pop("class_labels")  # a renamed key
    torch.save(raw, tmp_path / "renamed.pt")
    with pytest.raises(CheckpointError, match=r"renamed\.pt is an incomplete vibcam checkpoint: missing class_labels"):
        load_model(tmp_path / "renamed.pt")
    with pytest.raises(TypeError, match="CheckpointState"):
        save_checkpoint(state.to_dict(), tmp_path / "plain.pt")
    save_checkpoint(state, tmp_path / "again.pt")
    again = read_checkpoint(tmp_path / "again.pt")
    assert again.epoch == state.epoch and again.metrics == state.metrics and again.model.keys() == state.model.keys()
