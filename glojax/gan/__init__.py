"""GAN loss-function metalearning (dissertation §7.4): loss triples, a pix2pix-style
conditional GAN trained as a vectorized population, and the GA that evolves the triples.

* :mod:`glojax.gan.losses` — the loss family: Table 7.3's formulations and the evolvable
  Taylor triple, loaded by spec (:func:`get`, :func:`to_spec`);

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
)
