"""DICOM files into ordinary images: the pixels a radiologist's viewer shows, as a lossless PNG, and how they were
made. No TensorFlow.

The display order is DICOM's (PS3.3 C.7.6.3, C.11): the stored values (BitsStored, signed where
PixelRepresentation is 1), the modality LUT (RescaleSlope and RescaleIntercept, or a modality LUT sequence), the
VOI (the file's window, LINEAR, LINEAR_EXACT or SIGMOID, or its VOI LUT sequence; `restructure.dicom.window`), then
MONOCHROME1 inverted, so that bone is bright in every output. Colour (RGB, YBR) comes out as RGB. pydicom decodes
uncompressed, deflated and RLE data itself and calls the pip-installed plugins (requirements.txt) for JPEG-LS; the
JPEG processes (baseline, 12-bit extended, lossless) go to libjpeg-turbo and JPEG 2000 to OpenJPEG, both through
imagecodecs, which releases the GIL (pylibjpeg-openjpeg does not: restructure's threads would take turns).

Only a few tags are ever read back out, by name: the pixel module, the window, and the subgroup tags
(METADATA_TAGS: PatientSex, PatientAge, ViewPosition, Manufacturer). PatientID is only hashed into a group id.
Nothing else of a file's header (names, birth dates, accession numbers, institutions) reaches a manifest, a page
or a message.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

import cv2
import numpy as np

from medimage.archives.validation import MAX_PIXELS, InvalidImage
from medimage.settings.restructure import DicomSettings

DICOM_SUFFIXES = frozenset({".dcm", ".dicom"})
PREAMBLE = 128  # bytes before the `DICM` magic of a DICOM Part 10 file
METADATA_TAGS = ("PatientSex", "PatientAge", "ViewPosition", "Manufacturer")  # subgroups; Manufacturer: the site
# JPEG baseline, extended, lossless (process 14) and lossless first-order: libjpeg-turbo decodes them all
JPEG_SYNTAXES = {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70"}
JPEG_2000_SYNTAXES = {"1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"}  # lossless and lossy: OpenJPEG
PERCENTILES = (0.5, 99.5)  # restructure.dicom.window percentile, and where a file has no window of its own


def is_dicom(name: str, data: bytes) -> bool:
    """By extension or by the `DICM` magic after the 128-byte preamble."""
    return name.lower().endswith(tuple(DICOM_SUFFIXES)) or data[PREAMBLE : PREAMBLE + 4] == b"DICM"


@dataclass(frozen=True)
class Converted:
    """One DICOM file as a PNG, and how its pixels were made (the manifest's `dicom:` columns)."""

    png: bytes
    width: int
    height: int
    channels: int
    made: tuple[tuple[str, str], ...]  # transfer_syntax, photometric, bits_stored, window, rows, columns
    tags: dict[str, str]  # METADATA_TAGS present in the file
    patient: str  # a hash of PatientID ("" without one): a group id that names no one


def read_header(data: bytes):  # noqa: ANN201 - pydicom's Dataset, imported lazily
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom warns about every oddity of a header; the checks below decide
            dataset = pydicom.dcmread(io.BytesIO(data), force=True)
    except (InvalidDicomError, ValueError, EOFError, OSError, KeyError, TypeError) as error:
        raise InvalidImage("corrupt", f"not a readable DICOM header ({type(error).__name__})") from None
    if not len(dataset):
        raise InvalidImage("corrupt", "no DICOM element could be read")
    return dataset


def _text(dataset, keyword: str) -> str:  # noqa: ANN001
    value = dataset.get(keyword)
    return "" if value is None else str(value).strip()


def convert(data: bytes, settings: DicomSettings) -> Converted:
    """The file's displayed pixels as a PNG (8 or 16 bits: restructure.dicom.bits); InvalidImage with a reason
    (corrupt, not_image, unsupported) and a detail that names no tag value but the pixel module's."""
    dataset = read_header(data)
    if "PixelData" not in dataset:
        kind = _text(dataset, "Modality") or "no modality"
        raise InvalidImage("not_image", f"DICOM without pixel data ({kind[:16]}: a report or a presentation state)")
    rows, columns = int(dataset.get("Rows") or 0), int(dataset.get("Columns") or 0)
    frames = int(dataset.get("NumberOfFrames") or 1)
    meta = getattr(dataset, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    syntax_name = getattr(syntax, "name", str(syntax or "implicit VR little endian (no file meta)"))
    if not rows or not columns:
        raise InvalidImage("corrupt", "DICOM without Rows or Columns")
    if rows * columns > MAX_PIXELS:
        raise InvalidImage("unsupported", f"{columns} x {rows} pixels, over the {MAX_PIXELS:,}-pixel cap")
    if frames > 1 and settings.frames == "skip":
        raise InvalidImage("unsupported", f"{frames} frames (restructure.dicom.frames: first takes the first)")
    pixels = _decoded(dataset, syntax, syntax_name, frames)
    if frames > 1 and pixels.ndim == (4 if int(dataset.get("SamplesPerPixel") or 1) > 1 else 3):
        pixels = pixels[0]
    photometric = _text(dataset, "PhotometricInterpretation").upper()
    if pixels.ndim == 3:
        image, window = _greys(_colour(pixels, int(dataset.get("BitsStored") or 8)), settings.bits), "none (colour)"
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    else:
        image, window = _displayed(dataset, pixels, settings, photometric == "MONOCHROME1")
    png = cv2.imencode(".png", image)[1].tobytes()
    made = (
        ("transfer_syntax", syntax_name),
        ("photometric", photometric),
        ("bits_stored", str(dataset.get("BitsStored") or "")),
        ("window", window),
        ("rows", str(rows)),
        ("columns", str(columns)),
    )
    tags = {tag: value[:32] for tag in METADATA_TAGS if (value := _text(dataset, tag))}
    patient = _text(dataset, "PatientID")
    group = hashlib.sha256(patient.encode()).hexdigest()[:16] if patient else ""
    return Converted(png, columns, rows, 3 if image.ndim == 3 else 1, made, tags, group)


def _decoded(dataset, syntax: object, syntax_name: str, frames: int) -> np.ndarray:  # noqa: ANN001
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if str(syntax) in JPEG_SYNTAXES | JPEG_2000_SYNTAXES:
                return _first_frame(dataset, str(syntax), frames)
            return dataset.pixel_array
    except (NotImplementedError, RuntimeError) as error:
        message = str(error).lower()
        if "no pixel data decoders" in message or "unable to decompress" in message or "not supported" in message:
            raise InvalidImage("unsupported", f"no decoder for {syntax_name} here") from None
        raise InvalidImage("corrupt", f"{syntax_name} pixel data does not decode ({type(error).__name__})") from None
    except (ValueError, AttributeError, KeyError, TypeError, IndexError, EOFError) as error:
        raise InvalidImage("corrupt", f"{syntax_name} pixel data does not decode ({type(error).__name__})") from None


def _first_frame(dataset, syntax: str, frames: int) -> np.ndarray:  # noqa: ANN001
    """The first frame of a JPEG (libjpeg-turbo: 8-, 12- and 16-bit, where pydicom's non-GPL plugins stop at 8) or
    JPEG 2000 file (OpenJPEG), by imagecodecs; read as PixelRepresentation says, whatever the codestream's sign."""
    import imagecodecs
    from pydicom.encaps import generate_frames

    frame = next(generate_frames(dataset.PixelData, number_of_frames=frames))
    decode = imagecodecs.jpeg2k_decode if syntax in JPEG_2000_SYNTAXES else imagecodecs.jpeg8_decode
    pixels = decode(frame)
    signed = int(dataset.get("PixelRepresentation") or 0) == 1
    if pixels.ndim != 2 or (not signed and pixels.dtype.kind == "u"):  # as stored: nothing to reinterpret
        return pixels
    bits = int(dataset.get("BitsStored") or 16)
    values = pixels.astype(np.int64) & (2**bits - 1)  # the stored bits, as the codestream has them
    if signed:
        return np.where(values >= 2 ** (bits - 1), values - 2**bits, values).astype(np.int32)  # two's complement
    return values.astype(np.uint16 if bits > 8 else np.uint8)


def _colour(pixels: np.ndarray, bits: int) -> np.ndarray:
    """RGB in [0, 1] (pydicom has converted YBR to RGB)."""
    return np.clip(pixels.astype(np.float64) / (2 ** min(max(bits, 1), 16) - 1), 0.0, 1.0)


def _greys(shown: np.ndarray, bits: int) -> np.ndarray:
    """[0, 1] as the PNG's grey levels: 8 or 16 bits (restructure.dicom.bits)."""
    return np.rint(shown * (65535 if bits == 16 else 255)).astype(np.uint16 if bits == 16 else np.uint8)


def _value_table(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """The values to run the display steps on, and the index of each pixel into them (None: the pixels themselves).

    Every step maps one stored value to one grey, so where the image has more pixels than its range has values,
    the steps run once a value of the range and the image is looked up in the result: the same greys, cheaper.
    """
    low, high = int(pixels.min()), int(pixels.max())
    if pixels.dtype.kind not in "iu" or high - low + 1 >= pixels.size:
        return pixels, None
    domain = np.arange(low, high + 1).astype(pixels.dtype)
    index = pixels - pixels.dtype.type(low) if pixels.dtype.kind == "u" else pixels.astype(np.int64) - low
    return domain, index


def _displayed(dataset, pixels: np.ndarray, settings: DicomSettings, inverted: bool) -> tuple[np.ndarray, str]:  # noqa: ANN001
    """The greys after the modality LUT, the VOI and MONOCHROME1's inversion; and the window applied."""
    from pydicom.pixels import apply_modality_lut, apply_voi

    domain, index = _value_table(pixels)
    values = np.asarray(apply_modality_lut(domain, dataset), dtype=np.float64)
    shown, applied = None, ""
    if settings.window == "file" and "VOILUTSequence" in dataset:
        lut = dataset.VOILUTSequence[0]
        descriptor = lut.LUTDescriptor
        shown = np.asarray(apply_voi(values, dataset), dtype=np.float64) / (2 ** int(descriptor[2]) - 1)
        applied = "file VOI LUT"
    elif settings.window == "file" and "WindowCenter" in dataset and "WindowWidth" in dataset:
        center, width = (float(_first(dataset.get(keyword))) for keyword in ("WindowCenter", "WindowWidth"))
        function = _text(dataset, "VOILUTFunction").upper() or "LINEAR"
        shown = windowed(values, center, width, function)
        applied = f"file {function.lower()} center {center:g} width {width:g}"
    if shown is None:
        if settings.window == "none":
            present = values if index is None else values[np.flatnonzero(np.bincount(index.ravel()))]
            low, high = float(present.min()), float(present.max())
            applied = f"none (minimum {low:g} to maximum {high:g})"
        else:
            # on every other pixel of every other row: the same window to a grey level, at a quarter of the cost
            sample = values[::2, ::2] if index is None else values[index[::2, ::2]]
            low, high = (float(value) for value in np.percentile(sample, PERCENTILES))
            applied = f"percentile {PERCENTILES[0]:g}-{PERCENTILES[1]:g} ({low:g} to {high:g})"
        shown = (values - low) / (high - low) if high > low else np.zeros_like(values)
    shown = np.clip(shown, 0.0, 1.0)
    if inverted:
        shown, applied = 1.0 - shown, applied + "; MONOCHROME1 inverted"
    greys = _greys(shown, settings.bits)
    return (greys if index is None else greys[index]), applied


def _first(value: object) -> object:
    """A window tag may hold several windows (DICOM's multi-valued DS): the first is the default one."""
    return value[0] if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue" else value


def windowed(values: np.ndarray, center: float, width: float, function: str) -> np.ndarray:
    """DICOM PS3.3 C.11.2.1.2: LINEAR (the default), LINEAR_EXACT and SIGMOID windows, onto [0, 1]."""
    if function == "SIGMOID":
        return 1.0 / (1.0 + np.exp(-4.0 * (values - center) / max(width, 1e-9)))
    if function == "LINEAR_EXACT":
        return (values - (center - width / 2)) / max(width, 1e-9)
    return ((values - (center - 0.5)) / max(width - 1, 1e-9)) + 0.5
