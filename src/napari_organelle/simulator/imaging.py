"""The shared imaging model: a rendered specimen -> what a microscope and camera record.

Every renderer's output passes through :func:`acquire`, with parameters drawn per field from ranges
much wider than any one microscope, so that a model trained on the result meets a real instrument as
one more variation (domain randomisation). Ranges are physical where they can be:

* optics: a Gaussian point-spread function of sigma 0.08-0.32 um (confocal, high-NA, to widefield,
  lower NA), elongated up to 1.4x along one axis (astigmatism, drift), per channel (DNA blue: a
  little sharper); out-of-focus haze (widefield, thick cells): a 0.6-3 um blur of the signal mixed in
  at 0-55 %;
* illumination: a smooth multiplicative field (vignetting, uneven lamp) of 0-45 % peak to peak;
* specimen background: autofluorescence over the cell and a diffuse glow around it;
* camera: peak signal 12-4000 photo-electrons (from dim and grainy to clean), background 0.2-60
  e-/px, shot noise (Poisson), EMCCD excess noise for some fields, read noise 0.5-4 e-, an offset,
  hot pixels; saturation in some fields; 8-bit (rescaled by the acquisition software, sometimes with
  a display gamma), 12-bit or 16-bit; JPEG compression for some 8-bit images, greyscale or as one
  colour of an RGB composite with 4:2:0 chroma subsampling (how figure panels and HPA images ship).

numpy, scipy and Pillow only; all randomness from the generator given.
"""

from __future__ import annotations

import io
import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage as ndi


@dataclass
class Imaging:
    """One field's acquisition settings (draw them with :func:`draw_imaging`)."""

    psf_um: tuple[float, float]          # Gaussian sigma, protein and DNA channels
    aniso: float                         # >= 1: elongation of the PSF along one image axis
    aniso_axis: int
    haze: float                          # fraction of out-of-focus light mixed in
    haze_um: float                       # its blur (sigma, um)
    illum_amp: float                     # peak-to-peak of the multiplicative illumination field
    photons: tuple[float, float]         # photo-electrons at the cell's bright level, per channel
    background: tuple[float, float]      # e-/px of background, per channel
    autofluor: float                     # cell autofluorescence, fraction of the bright level
    emccd: bool
    read_noise: float
    offset: float                        # camera offset (ADU) for 12/16-bit
    saturate: float | None               # clip the protein at this fraction of its maximum, or None
    bits: int                            # 8, 12 or 16
    gamma: float                         # display gamma of 8-bit exports (1 = linear)
    jpeg: int | None                     # JPEG quality (8-bit only), or None
    rgb: bool                            # JPEG as one colour of an RGB composite (chroma subsampled)

    def describe(self) -> dict:
        return asdict(self)


def _loguniform(rng, lo, hi):
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def draw_imaging(rng: np.random.Generator) -> Imaging:
    """Random acquisition settings, far wider than one instrument (see the module docstring)."""
    psf = rng.uniform(0.08, 0.32)
    bits = int(rng.choice([8, 12, 16], p=[0.45, 0.25, 0.30]))
    jpeg = int(rng.integers(55, 96)) if bits == 8 and rng.uniform() < 0.45 else None
    return Imaging(
        psf_um=(psf, psf * rng.uniform(0.75, 1.0)),
        aniso=1.0 + (rng.uniform(0, 0.4) if rng.uniform() < 0.4 else 0.0),
        aniso_axis=int(rng.integers(0, 2)),
        haze=rng.uniform(0.05, 0.55) if rng.uniform() < 0.55 else 0.0,
        haze_um=rng.uniform(0.6, 3.0),
        illum_amp=rng.uniform(0, 0.45) if rng.uniform() < 0.6 else 0.0,
        photons=(_loguniform(rng, 12, 4000), _loguniform(rng, 20, 4000)),
        background=(_loguniform(rng, 0.2, 60), _loguniform(rng, 0.2, 60)),
        autofluor=rng.uniform(0, 0.06) if rng.uniform() < 0.5 else 0.0,
        emccd=bool(rng.uniform() < 0.15),
        read_noise=rng.uniform(0.5, 4.0),
        offset=rng.uniform(0, 600) if bits > 8 else 0.0,
        saturate=rng.uniform(0.35, 0.9) if rng.uniform() < 0.2 else None,
        bits=bits,
        gamma=rng.uniform(0.55, 1.0) if bits == 8 and rng.uniform() < 0.25 else 1.0,
        jpeg=jpeg,
        rgb=bool(jpeg is not None and rng.uniform() < 0.5),
    )


def _illumination(rng, shape, amp):
    if amp <= 0:
        return None
    h, w = shape
    yy = np.linspace(-1, 1, h, dtype=np.float32)[:, None]
    xx = np.linspace(-1, 1, w, dtype=np.float32)[None, :]
    c = rng.normal(0, 1, 5).astype(np.float32)
    f = c[0] * yy + c[1] * xx + c[2] * yy * yy + c[3] * xx * xx + c[4] * xx * yy
    f = f - f.min()
    span = float(f.max())
    if span <= 0:
        return None
    return (1.0 - amp * f / span).astype(np.float32)


def _blur(img, sigma_px, aniso, axis):
    s = [max(0.3, sigma_px), max(0.3, sigma_px)]
    s[axis] *= aniso
    return ndi.gaussian_filter(img, s, truncate=3.0)


def _bright_level(img, mask):
    v = img[mask] if mask is not None and mask.any() else img.ravel()
    v = v[:: max(1, v.size // 50000)]
    ref = float(np.percentile(v, 99.5)) if v.size else 0.0
    ref = max(ref, 0.3 * float(v.max()) if v.size else 0.0)
    return ref if ref > 1e-12 else 1.0


def optics(img: np.ndarray, im: Imaging, pixel_size_um: float, channel: int) -> np.ndarray:
    """PSF and out-of-focus haze of one channel (float32, same scale)."""
    img = np.asarray(img, np.float32)
    sig = im.psf_um[channel] / pixel_size_um
    out = _blur(img, sig, im.aniso, im.aniso_axis)
    if im.haze > 0:
        far = ndi.gaussian_filter(img, im.haze_um / pixel_size_um, truncate=3.0)
        out = (1 - im.haze) * out + im.haze * far
    return out.astype(np.float32, copy=False)


def acquire(protein: np.ndarray, dna: np.ndarray, rng: np.random.Generator, pixel_size_um: float,
            cell_mask: np.ndarray | None = None, imaging: Imaging | None = None):
    """Image a specimen: returns (protein, dna) as the camera file holds them (uint8 or uint16) and
    the Imaging settings used. ``cell_mask`` (the cells of the field) sets the bright level and
    where autofluorescence is."""
    im = draw_imaging(rng) if imaging is None else imaging
    shape = protein.shape
    illum = _illumination(rng, shape, im.illum_amp)
    glow = None
    if cell_mask is not None and im.autofluor > 0:
        glow = ndi.gaussian_filter(cell_mask.astype(np.float32), max(1.0, 1.0 / pixel_size_um))
    electrons = []
    for ch, img in enumerate((protein, dna)):
        sig = optics(img, im, pixel_size_um, ch)
        sig = sig / np.float32(_bright_level(sig, cell_mask))
        if glow is not None and ch == 0:
            sig = sig + np.float32(im.autofluor) * glow
        if illum is not None:
            sig = sig * illum
        if im.saturate is not None and ch == 0:  # the brightest structures clipped
            sig = np.minimum(sig, np.float32(im.saturate * float(sig.max())))
        lam = np.maximum(sig, 0) * np.float32(im.photons[ch]) + np.float32(im.background[ch])
        e = rng.poisson(lam).astype(np.float32)
        if im.emccd:  # EM multiplication: gamma-distributed gain (excess noise factor ~ sqrt 2)
            g = 20.0
            e = np.where(e > 0, rng.gamma(np.maximum(e, 1e-3), g), 0.0).astype(np.float32) / np.float32(g)
        e += rng.normal(0, im.read_noise, shape).astype(np.float32)
        electrons.append(e)
    return _digitise(electrons, im, rng, cell_mask), im


def _digitise(electrons, im: Imaging, rng, cell_mask):
    out = []
    for ch, e in enumerate(electrons):
        if im.bits == 8:
            # acquisition / export software stretches to 0-255: a high percentile maps to the top
            v = e[cell_mask] if cell_mask is not None and cell_mask.any() else e.ravel()
            v = v[:: max(1, v.size // 50000)]
            lo = float(np.percentile(e[:: 7, :: 7], rng.uniform(0, 5)))
            hi = max(float(np.percentile(v, rng.uniform(99.0, 99.99))), rng.uniform(0.3, 1.0) * float(v.max()))
            x = np.clip((e - lo) / max(hi - lo, 1e-6), 0, 1)
            if im.gamma != 1.0:
                x = x ** np.float32(im.gamma)
            out.append(np.rint(x * 255).astype(np.uint8))
        else:
            top = 4095 if im.bits == 12 else 65535
            # ADU per electron so that the bright level (over the background) lands at 15-90 % of the range (12-bit) or
            # anywhere from a few hundred counts up (16-bit cameras rarely use their whole range)
            frac = rng.uniform(0.15, 0.9) if im.bits == 12 else _loguniform(rng, 0.004, 0.5)
            gain = frac * top / max(im.photons[ch] + im.background[ch], 1.0)
            adu = e * np.float32(gain) + np.float32(im.offset)
            out.append(np.clip(np.rint(adu), 0, top).astype(np.uint16))
    if im.jpeg is not None:
        out = _jpeg(out, im, rng)
    return out[0], out[1]


def _jpeg(planes, im: Imaging, rng):
    from PIL import Image

    p, d = planes
    if im.rgb:  # protein green, DNA blue, another stain (or nothing) red: one RGB JPEG, 4:2:0
        other = np.zeros_like(p) if rng.uniform() < 0.5 else np.rint(
            ndi.gaussian_filter(p.astype(np.float32), 3) * rng.uniform(0.2, 0.8)).astype(np.uint8)
        rgb = np.stack([other, p, d], -1)
        buf = io.BytesIO()
        Image.fromarray(rgb, "RGB").save(buf, "JPEG", quality=int(im.jpeg), subsampling=2)
        back = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
        return [np.ascontiguousarray(back[..., 1]), np.ascontiguousarray(back[..., 2])]
    res = []
    for a in (p, d):
        buf = io.BytesIO()
        Image.fromarray(a, "L").save(buf, "JPEG", quality=int(im.jpeg))
        res.append(np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("L")).copy())
    return res
