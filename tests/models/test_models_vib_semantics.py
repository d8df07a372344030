"""The VIB's science through its public semantics only, so the tests outlive changes to how sigma is
parametrised: `posterior(features) -> (mu, sigma)`, `gaussian_kl`, training output
`VIBOutput(logits, kl, sigma)` with logits = fc(z), z = mu + sigma * eps, and the engine's
loss = CE + beta * KL with beta ramped over `--beta-warmup-epochs`.

References: torch.distributions for the KL and for the noise (the empirical std of z - mu is sigma).
"""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Normal, kl_divergence

from models.engine import beta_at, train_one_epoch, vib_loss
from models.vib import VIBClassifier, VIBOutput, gaussian_kl

C, K = 6, 4


def small_vib(samples: int = 1, **options) -> VIBClassifier:
    """A VIB head on identity 'features': the input is the B x C x h x w feature map itself."""
    torch.manual_seed(0)
    features = nn.Sequential(nn.Identity())
    model = VIBClassifier("resnet18", features, nn.Linear(C, K), samples=samples, **options)
    with torch.no_grad():  # move every head parameter off its initial value: sigma varies by channel
        for parameter in model.attention.parameters():
            parameter.add_(0.5 * torch.randn_like(parameter))
    return model


def feature_maps(batch: int = 3) -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(batch, C, 4, 4) + torch.linspace(-1, 1, C)[None, :, None, None]


def identity_fc(model: VIBClassifier) -> VIBClassifier:
    """fc = identity (K = C) so the training logits are z itself."""
    model.fc = nn.Linear(C, C)
    with torch.no_grad():
        model.fc.weight.copy_(torch.eye(C))
        model.fc.bias.zero_()
    return model


# ---------------------------------------------------------------------------------------------- KL
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_gaussian_kl_matches_torch_distributions(reduction: str) -> None:
    torch.manual_seed(2)
    mu, sigma = torch.randn(5, 7) * 2, torch.rand(5, 7) * 3 + 0.05
    reference = kl_divergence(Normal(mu, sigma), Normal(torch.zeros(7), torch.ones(7)))
    expected = reference.sum(1) if reduction == "sum" else reference.mean(1)
    assert torch.allclose(gaussian_kl(mu, sigma, reduction), expected, atol=1e-5)
    assert torch.allclose(gaussian_kl(torch.zeros(2, 3), torch.ones(2, 3), reduction), torch.zeros(2))
    with pytest.raises(ValueError, match="unknown kl_reduction 'max'; choose one of sum, mean"):
        gaussian_kl(mu, sigma, "max")


def test_gaussian_kl_sums_over_dimensions_by_default() -> None:
    torch.manual_seed(2)
    mu, sigma = torch.randn(3, 5), torch.rand(3, 5) + 0.1
    reference = kl_divergence(Normal(mu, sigma), Normal(torch.zeros(5), torch.ones(5))).sum(1)
    assert torch.allclose(gaussian_kl(mu, sigma), reference, atol=1e-5)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_training_kl_is_the_kl_of_the_posterior(reduction: str) -> None:
    model = small_vib(kl_reduction=reduction).train()
    x = feature_maps()
    mu, sigma = model.posterior(x)
    assert torch.allclose(mu, x.mean((2, 3)))  # mu = GAP(F)
    out = model(x)
    assert isinstance(out, VIBOutput)
    reference = kl_divergence(Normal(mu, sigma), Normal(0.0, 1.0))
    expected = reference.sum(1) if reduction == "sum" else reference.mean(1)
    assert torch.allclose(out.kl, expected, atol=1e-5) and torch.allclose(out.sigma, sigma)
    assert torch.allclose(model.predict(x).kl, expected, atol=1e-5)


# -------------------------------------------------------------------------------- reparametrisation
def test_noise_is_mu_plus_sigma_times_standard_normal() -> None:
    """Empirical mean and std of z - mu over 20000 draws are 0 and sigma (not sigma^2, not 1)."""
    model = identity_fc(small_vib(samples=20000)).train()
    x = feature_maps(2)
    mu, sigma = model.posterior(x)
    assert sigma.min() > 0 and (sigma.max() / sigma.min()) > 1.05  # sigma differs between channels
    torch.manual_seed(3)
    z = model(x).logits.detach()  # S x B x C
    assert z.shape == (20000, 2, C)
    noise = z - mu.detach()
    assert torch.allclose(noise.mean(0), torch.zeros_like(mu), atol=4 * sigma.max().item() / 20000 ** 0.5)
    assert torch.allclose(noise.std(0), sigma.detach(), rtol=0.03)
    standardised = noise / sigma.detach()  # eps ~ N(0, 1), independent across samples and channels
    reference = Normal(0.0, 1.0)
    for q in (0.1, 0.5, 0.9):
        expected = reference.icdf(torch.tensor(q)).item()
        assert standardised.flatten().quantile(q).item() == pytest.approx(expected,
                                                                          abs=0.02)
    correlation = torch.corrcoef(standardised[:, 0, :].T)
    assert (correlation - torch.eye(C)).abs().max() < 0.05


def test_eval_logits_are_fc_of_mu_and_mean_softmax_averages_samples() -> None:
    model = small_vib(eval_mode="mean_softmax", eval_samples=4000).eval()
    x = feature_maps()
    mu, sigma = model.posterior(x)
    assert torch.allclose(model(x), model.fc(mu))
    torch.manual_seed(4)
    eps = torch.randn(4000, *mu.shape)
    expected = model.fc(mu + sigma * eps).softmax(-1).mean(0)
    torch.manual_seed(4)  # predict draws the same eps: the average must match to float precision
    assert torch.allclose(model.predict(x).probs, expected, atol=1e-5)
    torch.manual_seed(5)  # other eps: a Monte Carlo average of 4000 draws at sigma ~ 1 agrees to ~1e-2
    assert torch.allclose(model.predict(x).probs, expected, atol=2e-2)
    assert not torch.allclose(model.predict(x).probs, model.fc(mu).softmax(-1), atol=1e-3)  # sigma matters
    mu_mode = small_vib(eval_mode="mu").eval()
    assert torch.allclose(mu_mode.predict(x).probs, mu_mode.fc(mu_mode.posterior(x)[0]).softmax(-1))


# --------------------------------------------------------------------------------------------- loss
def test_vib_loss_is_cross_entropy_plus_beta_times_kl() -> None:
    torch.manual_seed(5)
    logits, kl = torch.randn(3, 4, K), torch.rand(4) * 2
    labels = torch.tensor([0, 3, 1, 1])
    ce = sum(F.cross_entropy(logits[s], labels) for s in range(3)) / 3  # mean over samples and batch
    for beta in (0.0, 0.1, 2.0):
        loss, got_ce, got_kl, probs = vib_loss(VIBOutput(logits, kl, torch.ones(4, C)), labels, beta)
        assert got_ce.item() == pytest.approx(ce.item(), rel=1e-6)
        assert got_kl.item() == pytest.approx(kl.mean().item(), rel=1e-6)
        assert loss.item() == pytest.approx(ce.item() + beta * kl.mean().item(), rel=1e-6)
        assert torch.allclose(probs, logits.softmax(-1).mean(0))
    baseline_logits = logits[0]
    loss, ce0, kl0, probs0 = vib_loss(baseline_logits, labels, 5.0)
    assert loss.item() == pytest.approx(F.cross_entropy(baseline_logits, labels).item(), rel=1e-6)
    assert ce0.item() == loss.item() and kl0.item() == 0.0 and torch.allclose(probs0, baseline_logits.softmax(-1))


def test_beta_warmup_ramps_linearly_per_step_and_then_holds() -> None:
    assert beta_at(0.4, 0.0, epoch=0, step=0, steps=10) == 0.4
    assert beta_at(0.4, -1.0, epoch=0, step=0, steps=10) == 0.4
    assert beta_at(0.4, 2.0, epoch=0, step=0, steps=10) == pytest.approx(0.4 * 0.1 / 2)
    assert beta_at(0.4, 2.0, epoch=0, step=9, steps=10) == pytest.approx(0.2)
    assert beta_at(0.4, 2.0, epoch=1, step=4, steps=10) == pytest.approx(0.4 * 1.5 / 2)
    assert beta_at(0.4, 2.0, epoch=1, step=9, steps=10) == pytest.approx(0.4)
    assert beta_at(0.4, 2.0, epoch=5, step=3, steps=10) == pytest.approx(0.4)
    assert beta_at(0.4, 0.5, epoch=0, step=1, steps=4) == pytest.approx(0.4)
    # warm-up of one epoch or less still ramps (0.25 of an epoch done after the first of 4 steps)
    assert beta_at(0.4, 1.0, epoch=0, step=0, steps=4) == pytest.approx(0.4 * 0.25)
    assert beta_at(0.4, 0.5, epoch=0, step=0, steps=4) == pytest.approx(0.4 * 0.5)
    assert beta_at(0.4, 1.0, epoch=0, step=3, steps=4) == pytest.approx(0.4)


def test_train_step_descends_the_gradient_of_ce_plus_beta_kl() -> None:
    """One SGD step of train_one_epoch equals one step on CE + beta * KL computed by hand."""
    beta, lr = 0.7, 0.1
    model = small_vib(samples=2)
    by_hand = copy.deepcopy(model).train()
    x, labels = feature_maps(4), torch.tensor([0, 1, 2, 3])

    torch.manual_seed(6)
    out = by_hand(x)
    ce = F.cross_entropy(out.logits.flatten(0, 1), labels.repeat(2))
    (ce + beta * out.kl.mean()).backward()
    with torch.no_grad():
        expected = {n: p - lr * p.grad for n, p in by_hand.named_parameters() if p.grad is not None}

    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    torch.manual_seed(6)
    metrics = train_one_epoch(model, [(x, labels)], optimizer, scheduler, device=torch.device("cpu"), epoch=0,
                              epochs=1, beta=beta, progress=False)
    params = dict(model.named_parameters())
    assert expected.keys() and all(torch.allclose(params[n], v, atol=1e-6) for n, v in expected.items())
    assert metrics["loss"] == pytest.approx(ce.item() + beta * out.kl.mean().item(), rel=1e-5)
    assert metrics["kl"] == pytest.approx(out.kl.mean().item(), rel=1e-5) and metrics["kl"] > 0
    assert metrics["sigma"] == pytest.approx(out.sigma.mean().item(), rel=1e-5)
    assert metrics["beta"] == beta and metrics["lr"] == lr


def test_train_one_epoch_uses_the_warmed_up_beta_each_step() -> None:
    model = small_vib()
    x, labels = feature_maps(4), torch.tensor([0, 1, 2, 3])
    loader = [(x[:2], labels[:2]), (x[2:], labels[2:])]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    metrics = train_one_epoch(model, loader, optimizer, scheduler, device=torch.device("cpu"), epoch=0,
                              epochs=4, beta=0.8, beta_warmup_epochs=4, progress=False)
    assert metrics["beta"] == pytest.approx(0.8 * 1 / 4)  # after the last step of epoch 1 of 4
    # lr 0: weights never move, so each step's loss is CE + (its own beta) * KL
    kls = [model.train()(xb).kl.mean().item() for xb, _ in loader]
    expected = 0.8 * (0.5 / 4 * kls[0] + 1 / 4 * kls[1]) / 2
    assert metrics["loss"] - metrics["ce"] == pytest.approx(expected, rel=1e-4)
