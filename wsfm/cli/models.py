"""``wsfm sample`` and ``wsfm models list|promote``: the registry from the command line.

``sample`` loads a registered pyfunc model (``models:/wsfm-toy2d@champion``) and writes its
samples by kind: vectors to ``.npy``; images to ``.npy`` (n, C, H, W) and a PNG grid beside
it; text to a text file, one sample per line. ``models list`` shows versions, aliases and the
numbers tagged by ``register``; ``models promote`` moves ``champion`` by hand, recording who
asked and why on the version.
"""

from __future__ import annotations

import argparse
import getpass
import time
from pathlib import Path

import numpy as np

__all__ = ["add_models_command", "cmd_sample", "image_grid", "write_samples"]

KEY_TAGS = ("wsfm.metric", "wsfm.quality", "wsfm.spread", "wsfm.t0", "wsfm.speedup_nfe",
            "wsfm.decision")


def _client(home: Path):
    from mlflow.tracking import MlflowClient

    import mlflow
    from wsfm.tracking import tracking_uri

    uri = tracking_uri(home)
    mlflow.set_tracking_uri(uri)
    return MlflowClient(uri)


def image_grid(images: np.ndarray, cols: int = 8) -> np.ndarray:
    """(n, C, H, W) in [-1, 1] -> one (rows*H, cols*W[, C]) image in [0, 1], blank cells
    white."""
    n, c, h, w = images.shape
    cols = max(1, min(cols, n))
    rows = -(-n // cols)
    canvas = np.ones((rows * h, cols * w, c))
    for i, img in enumerate(np.clip((images + 1) / 2, 0, 1)):
        r, k = divmod(i, cols)
        canvas[r * h:(r + 1) * h, k * w:(k + 1) * w] = img.transpose(1, 2, 0)
    return canvas[..., 0] if c == 1 else canvas


def write_samples(samples, out: Path) -> list[Path]:
    """Write ``samples`` by kind (module docstring); returns the files written."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(samples, (list, tuple)) or (isinstance(samples, np.ndarray)
                                              and samples.dtype.kind in "OUS"):
        out.write_text("".join(f"{s}\n" for s in samples))
        return [out]
    x = np.asarray(samples)
    if x.ndim == 4:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        npy, png = out.with_suffix(".npy"), out.with_suffix(".png")
        np.save(npy, x)
        grid = image_grid(x[:64])
        plt.imsave(png, grid, cmap="gray" if grid.ndim == 2 else None, vmin=0, vmax=1)
        return [npy, png]
    np.save(out, x)
    return [out if out.suffix == ".npy" else out.with_name(out.name + ".npy")]


def cmd_sample(args: argparse.Namespace, home: Path) -> int:
    from mlflow.exceptions import MlflowException

    import mlflow
    from wsfm.errors import InputNotFound

    _client(home)
    try:
        model = mlflow.pyfunc.load_model(args.model)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        raise InputNotFound(f"no model {args.model} in {mlflow.get_tracking_uri()}: "
                            f"{exc.message}") from exc
    request = {"n": args.n, "seed": args.seed, "t0": args.t0, "steps": args.steps,
               "method": args.method}
    samples = model.predict({k: v for k, v in request.items() if v is not None})
    files = write_samples(samples, Path(args.out))
    shape = "strings" if isinstance(samples, list) else f"of shape {np.shape(samples)[1:]}"
    print(f"wrote {len(samples)} samples {shape} to {', '.join(map(str, files))}")
    return 0


def _cmd_list(args: argparse.Namespace, home: Path) -> int:
    client = _client(home)
    names = [args.name] if args.name else sorted(
        m.name for m in client.search_registered_models())
    if not names:
        print(f"no registered models in {client.tracking_uri}")
    for name in names:
        # search_model_versions leaves the aliases out: read each version itself.
        versions = [client.get_model_version(name, v.version) for v in sorted(
            client.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version))]
        if not versions:
            from wsfm.errors import InputNotFound

            raise InputNotFound(f"no registered model {name} in {client.tracking_uri}")
        print(f"{name}")
        print(f"  {'version':>7}  {'aliases':<10} {'metric':<10} {'quality':>10} {'spread':>9} "
              f"{'t0':>6} {'speedup':>7}  decision")
        for v in versions:
            t = {k: v.tags.get(k, "") for k in KEY_TAGS}
            quality = f"{float(t['wsfm.quality']):.4g}" if t["wsfm.quality"] else "-"
            spread = f"{float(t['wsfm.spread']):.2g}" if t["wsfm.spread"] else "-"
            print(f"  {v.version:>7}  {','.join(v.aliases) or '-':<10} "
                  f"{t['wsfm.metric'] or '-':<10} {quality:>10} {spread:>9} "
                  f"{t['wsfm.t0'] or '-':>6} {t['wsfm.speedup_nfe'] or '-':>7}  "
                  f"{t['wsfm.decision'] or '-'}")
    return 0


def _cmd_promote(args: argparse.Namespace, home: Path) -> int:
    from mlflow.exceptions import MlflowException

    from wsfm.errors import InputNotFound
    from wsfm.tracking import CHAMPION

    client = _client(home)
    try:
        version = client.get_model_version(args.name, str(args.version))
    except MlflowException as exc:
        raise InputNotFound(f"no version {args.version} of model {args.name} in "
                            f"{client.tracking_uri}") from exc
    try:
        previous = str(client.get_model_version_by_alias(args.name, CHAMPION).version)
    except MlflowException:
        previous = ""
    by = args.by or getpass.getuser()
    for key, value in {"wsfm.decision": "promoted by hand", "wsfm.promoted_by": by,
                       "wsfm.promote_reason": args.reason,
                       "wsfm.promoted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                       "wsfm.previous_champion": previous}.items():
        client.set_model_version_tag(args.name, version.version, key, value)
    client.set_registered_model_alias(args.name, CHAMPION, version.version)
    print(f"{args.name} v{version.version} is now {CHAMPION} (was "
          f"{'v' + previous if previous else 'none'}), by {by}: {args.reason}")
    return 0


def add_models_command(sub, common: argparse.ArgumentParser, home) -> None:
    """Add ``models list`` and ``models promote`` to the ``wsfm`` subparsers ``sub``;
    ``home(arg)`` resolves ``--home``."""
    models = sub.add_parser("models", help="list registered models or promote a version")
    actions = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    show = actions.add_parser("list", parents=[common],
                              help="versions, aliases and key metrics of registered models")
    show.add_argument("name", nargs="?", help="one model, e.g. wsfm-toy2d (default: all)")
    show.set_defaults(func=lambda a: _cmd_list(a, home(a.home)))
    promote = actions.add_parser("promote", parents=[common],
                                 help="make VERSION the champion by hand")
    promote.add_argument("name", help="e.g. wsfm-toy2d")
    promote.add_argument("version", type=int)
    promote.add_argument("--reason", required=True, help="why (recorded on the version)")
    promote.add_argument("--by", help="who asks (default: the OS user)")
    promote.set_defaults(func=lambda a: _cmd_promote(a, home(a.home)))
