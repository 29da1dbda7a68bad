"""GAN loss-function metalearning (dissertation §7.4).

* :mod:`glojax.gan.losses` — GAN loss triples: Table 7.3's formulations, the evolvable
  12-parameter Taylor triple and the evolved CMP Facade triple, loaded by spec
  (:func:`get`, :func:`to_spec`);
* :mod:`glojax.gan.data` — paired image-translation data made offline;
* :mod:`glojax.gan.models` — pix2pix networks (U-Net, PatchGAN, spectral norm);
* :mod:`glojax.gan.metrics` — SSIM (dm-pix) and the perceptual distance;
* :mod:`glojax.gan.trainer`, :mod:`glojax.gan.population` — one GAN as pure functions,
  and K of them as one compiled program;
* :mod:`glojax.gan.ga`, :mod:`glojax.gan.search`, :mod:`glojax.gan.final` — the GA, the
  search on the shared driver (``glojax.search.run("gan", ...)``), the test-split
  comparison.

See ``docs/gan.md``.
"""

from glojax.gan.losses import (
    COMPONENTS,
    FACADE_HPARAMS,
    FACADE_THETA,
    HPARAMS,
    LSGAN_THETA,
    NUM_PARAMS,
    TAYLOR_FNS,
    THETA_BOUNDS,
    WGAN_THETA,
    GanLoss,
    ParamTriple,
    TaylorTriple,
    as_taylor,
    describe,
    get,
    get_parameterized,
    names,
    taylor_component,
    taylor_spec,
    to_spec,
    with_hparams,
)
