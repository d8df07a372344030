"""Where does one channel's sigma end after a training schedule? `python -m scripts.sigma_simulation`.

docs/model.md uses this to say at which beta a run becomes active. One channel's softplus argument s
(sigma = softplus(s)) follows momentum SGD on beta_eff * KL_sigma(sigma) + h * sigma^2 / 2, where
KL_sigma = sigma^2/2 - 1/2 - log sigma is the sigma part of the KL and h * sigma^2 / 2 is the second-order
cost of the noise in the cross entropy (h: the CE's curvature along that coordinate of z). The schedule
is models.train's: linear warm-up over 5 % of the steps, then cosine to zero. Nothing else moves s: this
is the legacy head at its start (scale = 0) and the new head's per-channel bias.
"""
from __future__ import annotations

import argparse
import math

from models.train import lr_factor
from models.vib import inverse_softplus


def softplus(x: float) -> float:
    return x + math.log1p(math.exp(-x)) if x > 0 else math.log1p(math.exp(x))


def final_sigma(s0: float, beta_eff: float, h: float, steps: int, lr: float, momentum: float = 0.9) -> float:
    """sigma after `steps` momentum-SGD steps from softplus argument s0."""
    s, velocity, warmup = s0, 0.0, round(0.05 * steps)
    for step in range(steps):
        sigma = softplus(s)
        d_sigma = beta_eff * (sigma - 1.0 / sigma) + h * sigma
        grad = d_sigma / (1.0 + math.exp(-s))  # d softplus / ds = sigmoid(s)
        velocity = momentum * velocity + grad
        s -= lr * lr_factor(step, warmup, steps) * velocity
    return softplus(s)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.sigma_simulation", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--images", type=int, default=18_050, help="training images (SUN397 in the paper)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--channels", type=int, default=2048, help="C: 2048 for ResNet-50")
    parser.add_argument("--curvature", type=float, nargs="+", default=[0.0, 1e-3, 1e-2],
                        help="h values to try for the CE's curvature along one coordinate of z")
    args = parser.parse_args(argv)
    steps = args.epochs * math.ceil(args.images / args.batch_size)
    print(f"{steps} steps, lr {args.lr}, C = {args.channels}; sigma at the end (>= 0.1 counts as active)")
    print("| beta | reduction | legacy start (0.0067), h = 0 | " +
          " | ".join(f"new start (1.0), h = {h:g}" for h in args.curvature) + " |")
    print("|---|---|---|" + "---|" * len(args.curvature))
    for exponent in range(0, -8, -1):
        beta = 10.0 ** exponent
        for reduction, beta_eff in (("sum", beta), ("mean", beta / args.channels)):
            legacy = final_sigma(-5.0, beta_eff, 0.0, steps, args.lr)
            new = [final_sigma(inverse_softplus(1.0), beta_eff, h, steps, args.lr) for h in args.curvature]
            print(f"| 1e{exponent} | {reduction} | {legacy:.3g} | " + " | ".join(f"{v:.3g}" for v in new) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
