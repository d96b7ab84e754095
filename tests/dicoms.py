"""DICOM files for the tests, written with pydicom (and imagecodecs for the JPEG processes pydicom cannot encode):
any transfer syntax the Kaggle sets use, MONOCHROME1 or 2, 8 to 16 bits, with or without rescale and window, and
identifying tags planted where a test asks."""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    JPEG2000,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)

LOSSLESS = {
    "explicit": ExplicitVRLittleEndian,
    "implicit": ImplicitVRLittleEndian,
    "deflate": DeflatedExplicitVRLittleEndian,
    "rle": RLELossless,
    "jpeg_lossless": JPEGLosslessSV1,
    "jpeg_ls": JPEGLSLossless,
    "jpeg2000_lossless": JPEG2000Lossless,
}
LOSSY = {"jpeg_baseline": JPEGBaseline8Bit, "jpeg_extended": JPEGExtended12Bit, "jpeg2000": JPEG2000}
IDENTIFYING = {  # planted to prove that no output carries them
    "PatientName": "Doe^Jane^Secretname",
    "PatientBirthDate": "19450317",
    "AccessionNumber": "ACC7731902",
    "InstitutionName": "St Hidden Hospital",
    "ReferringPhysicianName": "Who^Referred",
    "OtherPatientIDs": "OTHERID4471",
}


@dataclass(frozen=True)
class Spec:
    syntax: str = "explicit"
    bits: int = 8  # BitsStored
    monochrome1: bool = False  # stores the inverted values: a viewer inverts them back
    rescale: tuple[float, float] | None = None  # slope, intercept: stored = (value - intercept) / slope
    window: tuple[float, float] | None = None  # center, width written in the file
    function: str | None = None  # VOILUTFunction
    signed: bool = False
    tags: dict[str, str] = field(default_factory=dict)


def stored_values(grey: np.ndarray, spec: Spec) -> np.ndarray:
    """The grey image (uint8, what a viewer should show) as the values the file stores for it."""
    top = 2**spec.bits - 1
    values = np.rint(grey.astype(np.float64) / 255 * top)
    if spec.monochrome1:
        values = top - values
    if spec.signed:
        values = values - 2 ** (spec.bits - 1)
    dtype = np.int16 if spec.signed else (np.uint8 if spec.bits <= 8 else np.uint16)
    return values.astype(dtype)


def dicom_bytes(grey: np.ndarray, spec: Spec) -> bytes:
    """A Part 10 file of `grey` (2-D uint8) stored as `spec` says."""
    pixels = stored_values(grey, spec)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.1.1")  # digital X-ray
    meta.MediaStorageSOPInstanceUID = generate_uid()
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    ds.PatientID = spec.tags.get("PatientID", "anon")
    for keyword, value in spec.tags.items():
        setattr(ds, keyword, value)
    ds.Rows, ds.Columns = grey.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME1" if spec.monochrome1 else "MONOCHROME2"
    ds.BitsAllocated = 8 if spec.bits <= 8 else 16
    ds.BitsStored, ds.HighBit = spec.bits, spec.bits - 1
    ds.PixelRepresentation = int(spec.signed)
    if spec.rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = (f"{value:g}" for value in spec.rescale)
    if spec.window is not None:
        ds.WindowCenter, ds.WindowWidth = (f"{value:g}" for value in spec.window)
    if spec.function is not None:
        ds.VOILUTFunction = spec.function
    syntax = {**LOSSLESS, **LOSSY}[spec.syntax]
    if spec.syntax in ("explicit", "implicit", "deflate"):
        ds.PixelData = pixels.tobytes()
        meta.TransferSyntaxUID = syntax
    elif spec.syntax in ("rle", "jpeg_ls", "jpeg2000_lossless", "jpeg2000"):
        ds.PixelData = pixels.tobytes()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        options = {"j2k_cr": [20]} if spec.syntax == "jpeg2000" else {}
        ds.compress(syntax, pixels, **options)
    else:
        ds.PixelData = encapsulate([_jpeg(pixels, spec)])
        ds["PixelData"].VR = "OB"
        meta.TransferSyntaxUID = syntax
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True, implicit_vr=spec.syntax == "implicit", little_endian=True)
    return buffer.getvalue()


def _jpeg(pixels: np.ndarray, spec: Spec) -> bytes:
    import imagecodecs

    if spec.signed:  # JPEG holds unsigned samples: the two's complement in BitsStored bits
        pixels = (pixels.astype(np.int64) & (2**spec.bits - 1)).astype(np.uint16)
    if spec.syntax == "jpeg_lossless":
        return imagecodecs.ljpeg_encode(pixels, bitspersample=spec.bits)
    return imagecodecs.jpeg8_encode(pixels, level=95, bitspersample=spec.bits)
