"""beta-VAE: latent traversals for several KL weights beta.

Trains probae.BetaVAE once per beta and saves one traversal figure per beta (one row per
latent dimension, that dimension swept from -3 to 3 around a test digit's code). As beta
grows the KL term squeezes the code: fewer dimensions stay active (KL per dimension above
0.1 nat), the reconstructions blur, and the active ones tend to vary one factor each
(slant, width, thickness).

    python examples/beta_vae.py                       # three models, a few minutes on a CPU
    python examples/beta_vae.py --betas 1 8 --epochs 3
"""

try:  # first: _shared imports TensorFlow with its start-up messages kept off the terminal
    from examples import _shared
except ImportError:  # run as a script
    import _shared

import os

import keras
import numpy as np

import probae
from probae import plotting


def main(args):
    data = _shared.load(args, binarize=True)
    if data is None:
        return 2
    (x_train, _), (x_test, _) = data
    os.makedirs(args.out, exist_ok=True)
    results = []
    print(f"{'beta':>6} {'ELBO':>9} {'recon.':>9} {'KL':>7} {'active dims':>12}")
    for beta in args.betas:
        keras.utils.set_random_seed(args.seed)
        model = probae.BetaVAE(
            x_train.shape[1:],
            latent_dim=args.latent_dim,
            beta=beta,
            architecture="mlp",
            hidden_units=(256, 128),
        )
        model.compile(keras.optimizers.Adam(1e-3))
        model.fit(x_train, epochs=args.epochs, batch_size=128, verbose=args.verbose)
        terms = model.elbo(x_test, return_terms=True, seed=0)
        # KL per latent dimension of the Gaussian posterior against N(0, I), averaged.
        kl_dims = np.mean(
            probae.estimators.kl_per_dimension(model.encode(x_test), model.prior_distribution()),
            axis=0,
        )
        active = int(np.sum(kl_dims > 0.1))
        order = list(np.argsort(-kl_dims))  # most informative dimensions first
        plotting.plot_traversals(
            model,
            x_test[0],
            dims=order,
            path=os.path.join(args.out, f"traversals_beta{beta:g}.png"),
        )
        row = {
            "beta": beta,
            "elbo": float(terms["elbo"].mean()),
            "reconstruction": float(terms["reconstruction"].mean()),
            "kl": float(terms["kl"].mean()),
            "active_dims": active,
        }
        results.append(row)
        print(
            f"{beta:6g} {row['elbo']:9.2f} {row['reconstruction']:9.2f} {row['kl']:7.2f} "
            f"{active:12d}",
            flush=True,
        )
    print(f"traversal figures saved in {args.out}/")
    return results


def parse_args(argv=None):
    p = _shared.parser(__doc__, epochs=5, out="out/beta_vae")
    p.add_argument(
        "--betas", type=float, nargs="+", default=[1.0, 4.0, 16.0], help="KL weights to compare"
    )
    p.add_argument("--latent-dim", type=int, default=8, help="size of the code")
    return p.parse_args(argv)


if __name__ == "__main__":
    _shared.run(main, parse_args)
