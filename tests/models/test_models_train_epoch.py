"""`train_one_epoch` around the loss: the metrics it returns, its defaults, the progress bar, the
non-finite-loss error, channels-last and loss scaling. (The loss itself, CE + beta * KL and the beta
warm-up, is checked in test_models_vib_semantics.py.)

References: metrics are recomputed from the model's own outputs with plain torch (cross-entropy over
all images, argmax accuracy, KL per batch); parameters are compared with a run without the option.
"""
from __future__ import annotations

import copy
import re
import threading
import time

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from models.distributed import Distributed
from models.engine import train_one_epoch
from models.precision import Precision
from models.resnet import CamClassifier
from models.vib import VIBClassifier

C, K = 6, 4
CPU = torch.device("cpu")


def small_vib() -> VIBClassifier:
    """A VIB head on identity 'features': the input is the B x C x h x w feature map itself."""
    torch.manual_seed(0)
    return VIBClassifier("resnet18", nn.Sequential(nn.Identity()), nn.Linear(C, K), samples=2)


def identity_baseline() -> CamClassifier:
    """The baseline head with fc = identity (K = C): the logits are GAP(x), so predictions are chosen by x."""
    fc = nn.Linear(C, C)
    with torch.no_grad():
        fc.weight.copy_(torch.eye(C))
        fc.bias.zero_()
    return CamClassifier("resnet18", nn.Sequential(nn.Identity()), fc)


def feature_maps(batch: int) -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(batch, C, 4, 4) + torch.linspace(-1, 1, C)[None, :, None, None]


def sgd(model: nn.Module, lr: float) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)


def run(model: nn.Module, loader: list, lr: float = 0.0, **options) -> dict[str, float]:
    optimizer, scheduler = sgd(model, lr)
    options = {"epoch": 0, "epochs": 1, "progress": False, **options}
    return train_one_epoch(model, loader, optimizer, scheduler, device=CPU, **options)


def peaked(batch_classes: list[int]) -> torch.Tensor:
    """Feature maps whose GAP peaks at the given channel (= class for the identity baseline)."""
    x = torch.zeros(len(batch_classes), C, 2, 2)
    for i, cls in enumerate(batch_classes):
        x[i, cls] = 3.0
    return x + 0.1 * feature_maps(len(batch_classes))[:, :, :2, :2]


# ------------------------------------------------------------------------------------------ metrics
def test_baseline_metrics_are_weighted_by_batch_size_and_have_no_kl_or_sigma() -> None:
    """Accuracy and CE over all images, recomputed by hand; batches of 3 and 1 (an unweighted
    mean of batch accuracies would give (2/3 + 1) / 2, not 3/4)."""
    model = identity_baseline()
    x1, y1 = peaked([0, 1, 2]), torch.tensor([0, 1, 5])  # two of three right
    x2, y2 = peaked([3]), torch.tensor([3])  # right
    metrics = run(model, [(x1, y1), (x2, y2)])
    logits = torch.cat([x1, x2]).mean((2, 3))
    labels = torch.cat([y1, y2])
    assert (logits.argmax(1) == labels).float().mean().item() == 0.75  # the data says what it should
    assert metrics["acc"] == pytest.approx(0.75)
    assert metrics["ce"] == pytest.approx(F.cross_entropy(logits, labels).item(), rel=1e-6)
    assert metrics["loss"] == pytest.approx(metrics["ce"], rel=1e-6)  # no KL term for the baseline
    assert metrics["kl"] == 0.0 and metrics["sigma"] == 0.0


def test_an_epoch_of_one_image_reports_that_image() -> None:
    model = identity_baseline()
    x, y = peaked([2]), torch.tensor([1])  # wrong
    metrics = run(model, [(x, y)])
    assert metrics["ce"] == pytest.approx(F.cross_entropy(x.mean((2, 3)), y).item(), rel=1e-6)
    assert metrics["acc"] == 0.0


def test_vib_accuracy_is_the_argmax_of_the_mean_probability_over_samples() -> None:
    """With lr 0 the epoch can be replayed: the same seed draws the same eps."""
    model = small_vib()
    x, y = feature_maps(8), torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    torch.manual_seed(7)
    metrics = run(model, [(x, y)])
    torch.manual_seed(7)
    probs = model.train()(x).logits.softmax(-1).mean(0)
    accuracy = (probs.argmax(1) == y).float().mean().item()
    assert 0.0 < accuracy < 1.0 and accuracy != 0.5  # a wrong comparison would give 1 - accuracy
    assert metrics["acc"] == pytest.approx(accuracy)


def test_seconds_is_the_wall_time_of_the_epoch() -> None:
    model = small_vib()
    started = time.perf_counter()
    metrics = run(model, [(feature_maps(2), torch.tensor([0, 1]))])
    elapsed = time.perf_counter() - started
    assert isinstance(metrics["seconds"], float) and 0.0 < metrics["seconds"] <= elapsed


# ----------------------------------------------------------------------------------------- defaults
@pytest.mark.usefixtures("bar_in_this_process")
def test_defaults_train_without_kl_and_without_warmup(capsys: pytest.CaptureFixture) -> None:
    """beta defaults to 0 (plain CE) and beta_warmup_epochs to 0 (full beta from the first step)."""
    model = small_vib()
    x, y = feature_maps(4), torch.tensor([0, 1, 2, 3])
    optimizer, scheduler = sgd(model, 0.0)
    metrics = train_one_epoch(model, [(x, y)], optimizer, scheduler, device=CPU, epoch=0, epochs=1)
    assert metrics["beta"] == 0.0 and metrics["kl"] > 0
    assert metrics["loss"] == pytest.approx(metrics["ce"], rel=1e-6)

    loader = [(x[:2], y[:2]), (x[2:], y[2:])]
    metrics = run(model, loader, beta=0.8)  # warm-up left at its default
    kls = [model.train()(xb).kl.mean().item() for xb, _ in loader]
    assert metrics["beta"] == 0.8
    assert metrics["loss"] - metrics["ce"] == pytest.approx(0.8 * (kls[0] + kls[1]) / 2, rel=1e-4)


# ------------------------------------------------------------------------------------- progress bar
@pytest.fixture
def bar_in_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Visible bars without tqdm's monitor thread (it would outlive the test) and with a lock of this
    process: tqdm's default lock is a semaphore shared with forked processes (the mutation runner's),
    and `refresh` leaves it held when drawing fails."""
    monkeypatch.setattr(tqdm, "monitor_interval", 0)
    monkeypatch.setattr(tqdm, "_lock", threading.RLock(), raising=False)


@pytest.mark.usefixtures("bar_in_this_process")
def test_progress_bar_by_default_names_the_epoch_and_shows_running_loss_and_accuracy(
        capsys: pytest.CaptureFixture) -> None:
    model = small_vib()
    x, y = feature_maps(4), torch.tensor([0, 1, 2, 3])
    optimizer, scheduler = sgd(model, 0.0)
    metrics = train_one_epoch(model, [(x[:2], y[:2]), (x[2:], y[2:])], optimizer, scheduler, device=CPU,
                              epoch=1, epochs=3)
    err = capsys.readouterr().err
    assert "epoch 2/3 train" in err  # 1-based, out of the total
    assert " 0/2 " in err and "batch/s" in err  # counts batches (the rate is in batches per second)
    # the last refresh shows the epoch's running means, which are the returned metrics
    assert f"loss={metrics['loss']:.3f}" in err and f"acc={metrics['acc']:.3f}" in err
    assert "\n" not in err  # transient: the bar clears its line when the epoch ends (leave=False)


@pytest.mark.usefixtures("bar_in_this_process")
def test_no_progress_bar_when_turned_off_or_on_other_ranks(capsys: pytest.CaptureFixture) -> None:
    model = small_vib()
    batch = [(feature_maps(2), torch.tensor([0, 1]))]
    run(model, batch, progress=False)
    assert capsys.readouterr().err == ""
    run(model, batch, progress=True, dist_state=Distributed(rank=1))
    assert capsys.readouterr().err == ""
    run(model, batch, progress=True)
    assert "epoch 1/1 train" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------- errors
def test_a_non_finite_loss_stops_with_the_1_based_epoch_and_step_and_the_fix() -> None:
    """The bad batch (second of the third epoch) must not move the weights either."""
    model = small_vib()
    good, labels = feature_maps(2), torch.tensor([0, 1])
    bad = good.clone()
    bad[0, 0, 0, 0] = float("nan")
    after_one_step = copy.deepcopy(model)
    torch.manual_seed(3)  # the same eps for the good step in both runs
    run(after_one_step, [(good, labels)], lr=0.1, epoch=2, epochs=5)
    torch.manual_seed(3)
    message = re.escape("loss became nan at epoch 3, step 2; lower --lr or --beta, or use --precision fp32")
    with pytest.raises(FloatingPointError, match=f"^{message}$"):
        run(model, [(good, labels), (bad, labels)], lr=0.1, epoch=2, epochs=5)
    expected = dict(after_one_step.named_parameters())
    assert all(torch.equal(p, expected[n]) for n, p in model.named_parameters())


# --------------------------------------------------------------------------- precision and scaling
class LayoutProbe(nn.Module):
    """Identity features that remember the memory layout of what they were given."""

    def __init__(self) -> None:
        super().__init__()
        self.channels_last: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.channels_last.append(x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous())
        return x


def test_channels_last_precision_hands_channels_last_images_to_the_model() -> None:
    """Only the memory layout changes: the parameters after a step are those of the default run."""
    x, y = feature_maps(2), torch.tensor([0, 1])
    results = {}
    for name, precision in (("default", None), ("channels_last", Precision(None, "cpu", True))):
        model = small_vib()
        model.features = nn.Sequential(LayoutProbe())
        torch.manual_seed(4)
        run(model, [(x, y)], lr=0.1, beta=0.5, precision=precision)
        results[name] = (model.features[0].channels_last, dict(model.named_parameters()))
    assert results["default"][0] == [False] and results["channels_last"][0] == [True]
    default, channels_last = results["default"][1], results["channels_last"][1]
    assert all(torch.allclose(p, default[n], atol=1e-6) for n, p in channels_last.items())


def test_a_grad_scaler_gives_the_same_step_as_no_scaler() -> None:
    """The loss is scaled by 2^10 for backward and the gradients unscaled before the step."""
    x, y = feature_maps(4), torch.tensor([0, 1, 2, 3])
    params = {}
    for name, scaler in (("plain", None), ("scaled", torch.amp.GradScaler("cpu", init_scale=2.0 ** 10))):
        model = small_vib()
        torch.manual_seed(5)
        run(model, [(x, y)], lr=0.1, beta=0.5, scaler=scaler)
        params[name] = dict(model.named_parameters())
    assert any(not torch.equal(p, small_vib().state_dict()[n]) for n, p in params["plain"].items())
    assert all(torch.allclose(p, params["plain"][n], atol=1e-6) for n, p in params["scaled"].items())
