"""Paired image-translation data built offline from a glojax image dataset.

The dissertation's task (§7.4.2) maps CMP Facade annotation maps to photos. Here the
pairs are made from any :func:`glojax.data.load` dataset (``mnist5k`` ships with the
package; Fashion-MNIST where its IDX files are installed): the *input* is a degraded
copy of the image and the *target* is the clean image. Tasks:

* ``"inpaint"`` — a square of side ``H // 2`` at a random position is set to grey 0.5
  (the generator must invent the missing strokes: the adversarial loss matters);
* ``"edges"`` — the binary Sobel edge map (gradient magnitude > 0.25 of its max), the
  pix2pix edges→photo setting;
* ``"denoise"`` — Gaussian noise of standard deviation 0.5, clipped to [0, 1].

Degradations are drawn once from ``seed`` (a fixed pairing, like a real paired data
set), per split. Splits are the source dataset's.

Real paired data in the pix2pix folder layout (e.g. CMP Facade as pix2pix ships it:
``facades/{train,val,test}/*.jpg``, each image the photo and its label map side by
side) loads with :func:`load_pix2pix_folder`.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

TASKS = ("inpaint", "edges", "denoise")
DIRECTIONS = ("AtoB", "BtoA")
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclasses.dataclass(frozen=True)
class PairedSplit:
  """``inputs``, ``targets``: ``float32[N, H, W, C]`` in [0, 1]; ``labels``: ``int32[N]``."""
  inputs: np.ndarray
  targets: np.ndarray
  labels: np.ndarray

  def __len__(self) -> int:
    return int(self.targets.shape[0])


@dataclasses.dataclass(frozen=True)
class PairedDataset:
  """A paired translation data set: three :class:`PairedSplit` and its source."""
  name: str
  task: str
  train: PairedSplit
  validation: PairedSplit
  test: PairedSplit

  @property
  def image_shape(self) -> tuple[int, ...]:
    return tuple(self.train.targets.shape[1:])

  def split(self, name: str) -> PairedSplit:
    """The split called ``name``.

    Raises:
      ValueError: for a name other than train/validation/test.
    """
    if name not in ("train", "validation", "test"):
      raise ValueError(f"unknown split {name!r}; use 'train', 'validation' or 'test'")
    return getattr(self, name)

  def describe(self) -> str:
    return (f"{self.name}/{self.task}: train {len(self.train)}, validation "
            f"{len(self.validation)}, test {len(self.test)}, images {self.image_shape}")


def degrade(images: np.ndarray, task: str, rng: np.random.Generator) -> np.ndarray:
  """The degraded inputs of ``images`` (``float32[N, H, W, C]`` in [0, 1]) for ``task``.

  Raises:
    ValueError: for an unknown task.
  """
  images = np.asarray(images, np.float32)
  if task == "inpaint":
    n, h, w = images.shape[:3]
    side_h, side_w = h // 2, w // 2
    top = rng.integers(0, h - side_h + 1, n)
    left = rng.integers(0, w - side_w + 1, n)
    rows = np.arange(h)[None, :, None]
    cols = np.arange(w)[None, None, :]
    mask = ((rows >= top[:, None, None]) & (rows < top[:, None, None] + side_h)
            & (cols >= left[:, None, None]) & (cols < left[:, None, None] + side_w))
    return np.where(mask[..., None], np.float32(0.5), images)
  if task == "edges":
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
    win = lambda dy, dx: padded[:, 1 + dy:padded.shape[1] - 1 + dy,
                                1 + dx:padded.shape[2] - 1 + dx]
    gx = (win(-1, 1) + 2 * win(0, 1) + win(1, 1)) - (win(-1, -1) + 2 * win(0, -1)
                                                      + win(1, -1))
    gy = (win(1, -1) + 2 * win(1, 0) + win(1, 1)) - (win(-1, -1) + 2 * win(-1, 0)
                                                      + win(-1, 1))
    mag = np.sqrt(gx ** 2 + gy ** 2)
    peak = mag.max(axis=(1, 2, 3), keepdims=True)
    return (mag > 0.25 * np.maximum(peak, 1e-12)).astype(np.float32)
  if task == "denoise":
    noisy = images + rng.normal(0.0, 0.5, images.shape).astype(np.float32)
    return np.clip(noisy, 0.0, 1.0)
  raise ValueError(f"unknown GAN task {task!r}; known: {TASKS}")


def make_paired(dataset_name: str = "mnist5k", task: str = "inpaint", *, seed: int = 0,
                max_train: int = 0, max_eval: int = 0, **options) -> PairedDataset:
  """Loads ``dataset_name`` and pairs each image with its degraded copy.

  Args:
    dataset_name: a :func:`glojax.data.names` entry (``"mnist5k"``, ``"fashion_mnist"``).
    task: one of :data:`TASKS`.
    seed: split seed of the source data set and seed of the degradations.
    max_train: keep only the first ``max_train`` training pairs (0: all), for small runs.
    max_eval: keep only the first ``max_eval`` validation and test pairs (0: all).
    **options: the source loader's options.

  Returns:
    A :class:`PairedDataset` (``float32`` in [0, 1]).

  Raises:
    ValueError: for an unknown data set, task or option; FileNotFoundError if the
      data set is not installed.
  """
  from glojax import data as data_lib
  if task not in TASKS:
    raise ValueError(f"unknown GAN task {task!r}; known: {TASKS}")
  for name, value in (("max_train", max_train), ("max_eval", max_eval)):
    if not isinstance(value, int) or value < 0:
      raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
  source = data_lib.load(dataset_name, seed=seed, **options)
  splits = {}
  for i, name in enumerate(("train", "validation", "test")):
    s = getattr(source, name)
    images, labels = s.images, s.labels
    keep = max_train if name == "train" else max_eval
    if keep:
      images, labels = images[:keep], labels[:keep]
    rng = np.random.default_rng([seed, i])
    splits[name] = PairedSplit(degrade(images, task, rng), np.asarray(images, np.float32),
                               np.asarray(labels, np.int32))
  return PairedDataset(source.name, task, **splits)


def load_pix2pix_folder(data_dir: str, *, image_size: int = 256, direction: str = "BtoA",
                        max_train: int = 0, max_eval: int = 0) -> PairedDataset:
  """Paired images in pix2pix's folder layout, offline.

  ``data_dir`` holds ``train/``, ``val/`` and ``test/``; each image is two halves side
  by side, ``A`` on the left and ``B`` on the right (pix2pix's CMP Facade: A = photo,
  B = label map, so ``direction="BtoA"`` maps labels to photos, the dissertation's
  task). Images are resized to ``image_size``² (bilinear) and scaled to [0, 1].

  Args:
    data_dir: the folder (e.g. the extracted ``facades.tar.gz`` of pix2pix).
    image_size: side of the square images the networks see.
    direction: ``"BtoA"`` (input B, target A) or ``"AtoB"``.
    max_train, max_eval: keep the first pairs of train / val and test (0: all).

  Returns:
    A :class:`PairedDataset` (``labels`` are all 0: the pairs have no classes).

  Raises:
    FileNotFoundError: if a split folder is missing or holds no images (the message
      says where to get the data).
    ValueError: for a bad direction or size, or an image that is not two halves.
  """
  from PIL import Image
  if direction not in DIRECTIONS:
    raise ValueError(f"direction={direction!r} is not one of {DIRECTIONS}")
  if not isinstance(image_size, int) or image_size < 1:
    raise ValueError(f"image_size={image_size!r} must be a positive integer")
  splits = {}
  for name, folder, keep in (("train", "train", max_train), ("validation", "val", max_eval),
                             ("test", "test", max_eval)):
    path = os.path.join(data_dir, folder)
    files = sorted(f for f in (os.listdir(path) if os.path.isdir(path) else [])
                   if f.lower().endswith(_IMAGE_SUFFIXES))
    if not files:
      raise FileNotFoundError(
          f"no images in {path!r}: the pix2pix layout needs {data_dir}/train, /val and "
          "/test with side-by-side A|B images (CMP Facade: pix2pix's facades.tar.gz, "
          "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/facades.tar.gz)")
    files = files[:keep] if keep else files
    a_list, b_list = [], []
    for f in files:
      with Image.open(os.path.join(path, f)) as img:
        img = img.convert("RGB")
        w, h = img.size
        if w != 2 * h:
          raise ValueError(f"{os.path.join(path, f)} is {w}×{h}, not two {h}×{h} halves "
                           "side by side")
        for half, out in ((img.crop((0, 0, h, h)), a_list), (img.crop((h, 0, w, h)), b_list)):
          out.append(np.asarray(half.resize((image_size, image_size), Image.BILINEAR),
                                np.float32) / 255.0)
    a, b = np.stack(a_list), np.stack(b_list)
    inputs, targets = (b, a) if direction == "BtoA" else (a, b)
    splits[name] = PairedSplit(inputs, targets, np.zeros(len(files), np.int32))
  return PairedDataset(os.path.basename(os.path.normpath(data_dir)), "pix2pix_folder",
                       **splits)
