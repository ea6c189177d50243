"""Datasets: Fashion-MNIST from IDX files and any image folder (root/<split>/<class>/*.jpg).

Every evaluation transform here is exactly the `preprocess` block that the exporter writes into the manifest
(docs/model-package.md): resize the shorter side (antialiased bilinear), center crop, /255, (x - mean) / std.
`preprocess_for(...)` returns that block, so the manifest and the transforms come from one place.
"""

import gzip
import os
import struct

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

FMNIST_DIR = "/usr/share/datasets/fashion-mnist"
FMNIST_LABELS = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
# Mean and std of the 60k Fashion-MNIST training pixels in [0, 1] (computed by `fmnist_stats`).
FMNIST_MEAN, FMNIST_STD = 0.2860, 0.3530
# ImageNet channel statistics (RGB, [0, 1]) used by torchvision's pretrained weights.
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# Caffe's reference ImageNet models (bvlc_alexnet) take BGR pixels in 0-255 minus the per-channel means of
# Caffe's ilsvrc_2012_mean.npy (B 104.01, G 116.67, R 122.68), unscaled. Written here in RGB order and in
# [0, 1] units, the form ToTensor + Normalize and the manifest use: (x - m / 255) / (1 / 255) = 255 x - m.
# The BGR order itself is folded into conv1's weights (training/init_weights.py, bgr_to_rgb).
CAFFE_MEAN = (122.6789 / 255, 116.6688 / 255, 104.0070 / 255)
CAFFE_STD = (1 / 255, 1 / 255, 1 / 255)
# Paper section 4.1 PCA colour augmentation: eigen-decomposition of ImageNet's RGB covariance
# (values as published with fb.resnet.torch / used widely since, pixels in [0, 1]).
PCA_EIGVAL = torch.tensor([0.2175, 0.0188, 0.0045])
PCA_EIGVEC = torch.tensor([[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]])
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str) -> np.ndarray:
    """Read an IDX file (http://yann.lecun.com/exdb/mnist/), gzipped or not, into a numpy array."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path}: not an IDX file (bad magic)")
    dtype, ndim = data[2], data[3]
    if dtype not in _IDX_DTYPES:
        raise ValueError(f"{path}: unknown IDX element type 0x{dtype:02x}")
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=_IDX_DTYPES[dtype], offset=4 + 4 * ndim)
    if arr.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says {shape} but holds {arr.size} elements")
    return arr.reshape(shape).astype(np.dtype(_IDX_DTYPES[dtype]).newbyteorder("="))


def load_fmnist(root: str, split: str) -> tuple:
    """(images uint8 [N, 28, 28], labels int64 [N]) for split 'train' or 'test'."""
    prefix = {"train": "train", "test": "t10k"}[split]
    paths = [os.path.join(root, f"{prefix}-{kind}-idx{n}-ubyte.gz") for kind, n in (("images", 3), ("labels", 1))]
    for p in paths:
        if not os.path.exists(p) and not os.path.exists(p[:-3]):
            raise FileNotFoundError(
                f"Fashion-MNIST file {p} not found; install it with "
                f"`apt-get install dataset-fashion-mnist` or pass --fmnist-dir"
            )
    paths = [p if os.path.exists(p) else p[:-3] for p in paths]
    images, labels = read_idx(paths[0]), read_idx(paths[1]).astype(np.int64)
    if len(images) != len(labels):
        raise ValueError(f"{root}: {len(images)} images but {len(labels)} labels")
    return images, labels


def resize_gray(img: torch.Tensor, size: int) -> torch.Tensor:
    """[..., H, W] float pixels -> [..., size, size]: the manifest's antialiased bilinear resize."""
    lead = img.shape[:-2]
    x = img.reshape(-1, 1, *img.shape[-2:])
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x.reshape(*lead, size, size)


class FashionMNIST(Dataset):
    """Fashion-MNIST as 3-channel float tensors at `size`x`size`, normalised like the manifest says.

    Training augmentation: random crop of the 28x28 image padded by `pad` pixels, and horizontal flip.
    Evaluation: the manifest's preprocess only (resize to size, /255, normalise, gray into 3 channels).
    """

    def __init__(
        self, root: str, split: str, size: int, train: bool, pad: int = 2, subset: int = 0, erase: float = 0.0
    ):
        images, labels = load_fmnist(root, split)
        if subset:
            images, labels = images[:subset], labels[:subset]
        self.images = torch.from_numpy(images.copy())
        self.labels = torch.from_numpy(labels.copy())
        self.size, self.train, self.pad, self.erase = size, train, pad, erase
        self.classes = list(FMNIST_LABELS)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        img = self.images[i].float()
        if self.train:
            if self.pad:
                img = F.pad(img, (self.pad,) * 4)
                top, left = torch.randint(0, 2 * self.pad + 1, (2,)).tolist()
                img = img[top : top + 28, left : left + 28]
            if torch.rand(()) < 0.5:
                img = img.flip(-1)
            if self.erase and torch.rand(()) < self.erase:
                img = random_erase(img)
        x = (resize_gray(img, self.size) / 255.0 - FMNIST_MEAN) / FMNIST_STD
        return x.unsqueeze(0).expand(3, -1, -1).contiguous(), self.labels[i]


def random_erase(img: torch.Tensor) -> torch.Tensor:
    """Random Erasing (Zhong et al. 2017, arXiv:1708.04896): blank a rectangle of 2-40% of the area with aspect
    0.3-3.3, filled with random gray. The paper reports it lowers Fashion-MNIST error for every net it tried."""
    h, w = img.shape[-2:]
    for _ in range(10):
        area = h * w * float(torch.empty(()).uniform_(0.02, 0.4))
        aspect = float(torch.empty(()).uniform_(0.3, 1 / 0.3))
        eh, ew = int(round((area * aspect) ** 0.5)), int(round((area / aspect) ** 0.5))
        if 0 < eh < h and 0 < ew < w:
            top = int(torch.randint(0, h - eh + 1, ()))
            left = int(torch.randint(0, w - ew + 1, ()))
            img = img.clone()
            img[..., top : top + eh, left : left + ew] = torch.randint(0, 256, (eh, ew)).float()
            return img
    return img


def fmnist_preprocess(size: int) -> dict:
    return {
        "color": "gray",
        "background": [0, 0, 0],
        "resize": {"shorter_side": size, "filter": "bilinear"},
        "crop": {"mode": "center", "height": size, "width": size},
        "scale": 255,
        "mean": [FMNIST_MEAN] * 3,
        "std": [FMNIST_STD] * 3,
    }


def folder_resize(size: int) -> int:
    """Shorter side before the crop for image folders: the paper's 256 for a 224 crop, scaled."""
    return int(round(size * 256 / 224))


def folder_preprocess(size: int, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> dict:
    return {
        "color": "rgb",
        "background": [0, 0, 0],
        "resize": {"shorter_side": folder_resize(size), "filter": "bilinear"},
        "crop": {"mode": "center", "height": size, "width": size},
        "scale": 255,
        "mean": list(mean),
        "std": list(std),
    }


def pca_noise(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Paper section 4.1: add sum_i alpha_i * lambda_i * p_i to every RGB pixel, alpha_i ~ N(0, sigma)."""
    alpha = torch.randn(3) * sigma
    rgb = PCA_EIGVEC @ (alpha * PCA_EIGVAL)
    return x + rgb.view(3, 1, 1)


class ImageFolder(Dataset):
    """root/<split>/<class>/<image>; classes sorted by folder name. Decoded (PIL) in DataLoader workers.

    An image that fails to decode yields (None, -1): `collate_skip` drops it and counts it, so one bad
    file neither stops training nor goes unnoticed.
    """

    def __init__(
        self,
        root: str,
        split: str,
        size: int,
        train: bool,
        pca_sigma: float = 0.1,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        classes=None,
        ten_crop: bool = False,
    ):
        import torchvision.transforms as T  # imported here: Fashion-MNIST needs no torchvision

        base = os.path.join(root, split)
        if not os.path.isdir(base):
            raise FileNotFoundError(f"dataset folder {base} not found (expected {root}/{split}/<class>/*.jpg)")
        found = sorted(d for d in os.listdir(base) if os.path.isdir(os.path.join(base, d)))
        if not found:
            raise FileNotFoundError(f"{base} holds no class folders (expected {base}/<class>/*.jpg)")
        self.classes = list(classes) if classes is not None else found
        missing = sorted(set(found) - set(self.classes))
        if missing:
            raise ValueError(f"{base}: classes {missing} are not in the training classes")
        self.samples = []
        for label, name in enumerate(self.classes):
            folder = os.path.join(base, name)
            if not os.path.isdir(folder):
                continue  # a class absent from this split (allowed for validation)
            files = sorted(f for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTENSIONS))
            if not files:
                raise ValueError(f"class folder {folder} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
            self.samples += [(os.path.join(folder, f), label) for f in files]
        normalize = T.Normalize(mean, std)
        if train:
            self.transform = T.Compose(
                [T.Resize(folder_resize(size)), T.RandomCrop(size), T.RandomHorizontalFlip(), T.ToTensor()]
            )
            self.post = (lambda x: normalize(pca_noise(x, pca_sigma))) if pca_sigma > 0 else normalize
        elif ten_crop:  # paper section 4.1: four corners + centre, and their mirrors -> [10, 3, size, size]
            self.transform = T.Compose(
                [
                    T.Resize(folder_resize(size)),
                    T.TenCrop(size),
                    T.Lambda(lambda crops: torch.stack([T.functional.to_tensor(c) for c in crops])),
                ]
            )
            self.post = normalize
        else:
            self.transform = T.Compose([T.Resize(folder_resize(size)), T.CenterCrop(size), T.ToTensor()])
            self.post = normalize
        self.background = (0, 0, 0)

    def __len__(self) -> int:
        return len(self.samples)

    def load_rgb(self, path: str):
        from PIL import Image, ImageOps

        img = Image.open(path)
        img.load()
        # Phone photos are often stored rotated with an EXIF orientation tag; the Worker applies it
        # (src/image/orientation.ts), so training must see the picture the same way up.
        img = ImageOps.exif_transpose(img)
        if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
            img = img.convert("RGBA")
            bg = Image.new("RGBA", img.size, self.background + (255,))
            img = Image.alpha_composite(bg, img)
        return img.convert("RGB")

    def __getitem__(self, i: int):
        path, label = self.samples[i]
        try:
            img = self.load_rgb(path)
        except (OSError, ValueError, SyntaxError):  # PIL's errors for truncated / unknown / corrupt files
            return None, -1
        return self.post(self.transform(img)), label


def collate_skip(batch):
    """Default collate without the unreadable images; returns (x, y, number skipped)."""
    good = [b for b in batch if b[0] is not None]
    skipped = len(batch) - len(good)
    if not good:
        return None, None, skipped
    return torch.stack([b[0] for b in good]), torch.as_tensor([int(b[1]) for b in good]), skipped


def fmnist_stats(root: str = FMNIST_DIR) -> tuple:
    images, _ = load_fmnist(root, "train")
    x = images.astype(np.float64) / 255.0
    return float(x.mean()), float(x.std())


def input_stats(source_input: str, init: str) -> tuple:
    """(mean, std) of RGB pixels in [0, 1]: ImageNet's as torchvision trains, or Caffe's 0-255 mean subtraction
    for a Caffe-trained --init .pth/.onnx (a package's own preprocess is not read here)."""
    if source_input == "caffe" and init and not os.path.isdir(init):
        return CAFFE_MEAN, CAFFE_STD
    return IMAGENET_MEAN, IMAGENET_STD


def make_datasets(cfg: dict) -> tuple:
    """(train, test, labels, the manifest's preprocess block) for train.py's config."""
    size = cfg["input_size"]
    if cfg["dataset"] == "fashion-mnist":
        train = FashionMNIST(
            cfg["fmnist_dir"], "train", size, True, cfg["pad_crop"], cfg["train_subset"], erase=cfg["random_erase"]
        )
        test = FashionMNIST(cfg["fmnist_dir"], "test", size, False, 0, cfg["test_subset"])
        return train, test, train.classes, fmnist_preprocess(size)
    from torch.utils.data import Subset

    mean, std = input_stats(cfg["source_input"], cfg["init"])
    train = ImageFolder(cfg["dataset"], "train", size, True, cfg["pca_sigma"], mean, std)
    test = ImageFolder(cfg["dataset"], "val", size, False, mean=mean, std=std, classes=train.classes)
    classes = train.classes
    if cfg["train_subset"]:
        train = Subset(train, range(min(cfg["train_subset"], len(train))))
    if cfg["test_subset"]:
        test = Subset(test, range(min(cfg["test_subset"], len(test))))
    return train, test, classes, folder_preprocess(size, mean, std)


# The calibration split (train.py --val-fraction): a stratified share of the training images, held out of
# training and shown to the exporter alone, which fits the package's temperature and "unknown" threshold on it
# (training/calibration.py). Its own fixed seed: the same images whatever --seed, so a resumed or repeated run
# holds out the same ones.
VAL_SEED = 20261203


def dataset_labels(ds) -> np.ndarray:
    """Every example's class index, without decoding an image (FashionMNIST, ImageFolder, Subset of them)."""
    if isinstance(ds, torch.utils.data.Subset):
        return dataset_labels(ds.dataset)[np.asarray(ds.indices)]
    if hasattr(ds, "labels"):
        return np.asarray(ds.labels)
    return np.asarray([label for _, label in ds.samples])


def stratified_split(labels, fraction: float, seed: int = VAL_SEED) -> tuple:
    """(kept, held out) sorted index arrays: round(fraction * n_c) of each class's n_c examples held out, at
    random (seeded), at least one of a class with two or more examples when fraction > 0."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    held = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        k = int(round(fraction * len(idx)))
        k = max(k, 1 if fraction > 0 and len(idx) > 1 else 0)
        held.append(rng.permutation(idx)[:k])
    held = np.sort(np.concatenate(held)) if held else np.zeros(0, dtype=np.int64)
    kept = np.setdiff1d(np.arange(len(labels)), held)
    return kept, held


def split_validation(cfg: dict, train) -> tuple:
    """(training set without the held-out images, the held-out images with evaluation transforms or None)."""
    fraction = cfg.get("val_fraction", 0.0)
    if not fraction:
        return train, None
    kept, held = stratified_split(dataset_labels(train), fraction)
    size = cfg["input_size"]
    if cfg["dataset"] == "fashion-mnist":
        plain = FashionMNIST(cfg["fmnist_dir"], "train", size, False, 0, cfg["train_subset"])
    else:
        mean, std = input_stats(cfg["source_input"], cfg["init"])
        plain = ImageFolder(cfg["dataset"], "train", size, False, mean=mean, std=std)
    from torch.utils.data import Subset

    return Subset(train, kept.tolist()), Subset(plain, held.tolist())
