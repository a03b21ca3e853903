"""The face pipeline on real photos: loading, detection, FFHQ alignment and paste-back."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pillow_heif
import pytest
from PIL import Image, ImageOps

from chatface.engine import faces
from chatface.engine.faces import AlignedFace, Face5
from chatface.errors import (
    ChatFaceError,
    CorruptImageError,
    FaceTooSmallError,
    ImageError,
    ImageTooLargeError,
    NoFaceError,
    NotAnImageError,
)

DATA = Path(__file__).resolve().parent.parent / "data" / "faces"
PHOTOS = ["obama.jpg", "grace_hopper.jpg", "ardern_2022.jpg", "astronaut.jpg"]
SIZE = 256
# Where FFHQ's recipe puts the eyes of a typical face (eye-to-mouth under 1.1 x eye-to-eye).
FFHQ_EYES = np.array([[0.375, 0.475], [0.625, 0.475]]) * SIZE


@pytest.fixture(scope="module")
def photos() -> dict[str, Image.Image]:
    return {name: faces.load_image(DATA / name) for name in PHOTOS}


@pytest.fixture(scope="module")
def found(photos: dict[str, Image.Image]) -> dict[str, list[Face5]]:
    return {name: faces.detect_faces(photo) for name, photo in photos.items()}


@pytest.fixture(scope="module")
def obama(photos: dict[str, Image.Image], found: dict[str, list[Face5]]):
    photo, face = photos["obama.jpg"], found["obama.jpg"][0]
    return photo, face, faces.align_face(photo, face.landmarks, SIZE)


def _mae(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).mean())


def _encode(image: Image.Image, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **params)
    return buf.getvalue()


def _acts(message: str) -> bool:
    """A message a person can act on tells them what to send, use, export or check."""
    return any(word in message.lower() for word in ("send", "use", "export", "check", "save"))


# ------------------------------------------------------------------------------ detection


@pytest.mark.parametrize("name", PHOTOS)
def test_each_photo_has_one_face_with_plausible_landmarks(name, found) -> None:
    assert len(found[name]) == 1
    face = found[name][0]
    x, y, w, h = face.box
    lm = face.landmarks
    assert face.score > 0.95 and face.size >= faces.MIN_FACE_PX
    assert lm.shape == (5, 2)
    assert np.all((lm >= [x, y]) & (lm <= [x + w, y + h])), "landmarks outside the box"
    right_eye, left_eye, nose, right_mouth, left_mouth = lm
    assert max(right_eye[1], left_eye[1]) < nose[1] < min(right_mouth[1], left_mouth[1])
    # The person's right eye and mouth corner are on the left of a frontal photo.
    assert right_eye[0] < nose[0] < left_eye[0]
    assert right_mouth[0] < left_mouth[0]
    assert 0.25 * w < np.hypot(*(left_eye - right_eye)) < 0.6 * w


def test_detection_is_deterministic(photos, found) -> None:
    again = faces.detect_faces(photos["grace_hopper.jpg"])
    assert np.array_equal(again[0].landmarks, found["grace_hopper.jpg"][0].landmarks)
    assert again[0].box == found["grace_hopper.jpg"][0].box


def test_no_face_in_noise_or_gradient() -> None:
    noise = np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    gradient = np.tile(np.linspace(0, 255, 400, dtype=np.uint8)[None, :, None], (300, 1, 3))
    for array in (noise, gradient):
        image = Image.fromarray(array)
        assert faces.detect_faces(image) == []
        with pytest.raises(NoFaceError) as err:
            faces.prepare_face(_encode(image, "PNG"), SIZE)
        assert _acts(str(err.value))


def test_small_face_in_a_big_photo_gets_precise_landmarks(photos) -> None:
    small = photos["obama.jpg"].resize((250, 287), Image.Resampling.LANCZOS)
    reference = faces.detect_faces(small)[0].landmarks
    canvas = Image.new("RGB", (2400, 1800), (120, 130, 140))
    canvas.paste(small, (1500, 900))
    (face,) = faces.detect_faces(canvas)
    # At 640 pixels wide the face is 25 pixels across; the close-up pass restores precision.
    assert np.abs(face.landmarks - [1500, 900] - reference).max() < 1.5


# ------------------------------------------------------------------------------ alignment


def test_aligned_crop_is_stable(photos, obama) -> None:
    photo, face, aligned = obama
    again = faces.align_face(photo, face.landmarks, SIZE)
    assert aligned.image.size == (SIZE, SIZE) and aligned.image.mode == "RGB"
    assert again.image.tobytes() == aligned.image.tobytes()
    # The same face moved inside a bigger photo gives (almost) the same crop.
    framed = ImageOps.expand(photo, border=(60, 30, 10, 45), fill=(90, 90, 90))
    (moved_face,) = faces.detect_faces(framed)
    assert np.abs(moved_face.landmarks - [60, 30] - face.landmarks).max() < 1.5
    moved = faces.align_face(framed, moved_face.landmarks, SIZE)
    assert _mae(moved.image, aligned.image) < 6.0


@pytest.mark.parametrize("name", PHOTOS)
def test_eyes_land_at_ffhq_positions(name, photos, found) -> None:
    face = found[name][0]
    aligned = faces.align_face(photos[name], face.landmarks, SIZE)
    mapped = faces.apply_affine(aligned.to_crop, face.landmarks[:2])
    assert np.abs(mapped - FFHQ_EYES).max() < 3.0
    # The pixels agree with the matrix: detecting again in the crop finds the eyes there.
    redetected = faces.detect_faces(aligned.image)[0].landmarks[:2]
    assert np.abs(redetected - FFHQ_EYES).max() < 4.0
    back = faces.apply_affine(aligned.to_photo, mapped)
    assert np.allclose(back, face.landmarks[:2], atol=1e-6)


def test_aligned_face_rebuilds_from_stored_matrix(obama) -> None:
    _, _, aligned = obama
    rebuilt = AlignedFace.from_to_photo(aligned.image, aligned.to_photo.tolist())
    assert np.allclose(rebuilt.to_crop, aligned.to_crop)


def test_face_at_the_border_is_padded_by_reflection(photos, found) -> None:
    photo, face = photos["obama.jpg"], found["obama.jpg"][0]
    cut = int(face.landmarks[0][0] - 20)  # the crop now reaches far past the left edge
    edge = photo.crop((cut, 0, photo.width, photo.height))
    aligned = faces.align_face(edge, face.landmarks - [cut, 0], SIZE)
    left = np.asarray(aligned.image, np.float64)[:, :20]
    assert left.mean() > 40.0, "padding should be reflected photo, not black"
    assert aligned.image.size == (SIZE, SIZE)
    pasted = faces.paste_back(edge, aligned.image, aligned)
    assert pasted.size == edge.size and _mae(pasted, edge) < 2.0


# ----------------------------------------------------------------------------- paste back


@pytest.mark.parametrize("name", ["obama.jpg", "astronaut.jpg"])
def test_round_trip_reproduces_the_photo(name, photos, found) -> None:
    photo, face = photos[name], found[name][0]
    aligned = faces.align_face(photo, face.landmarks, SIZE)
    back = faces.paste_back(photo, aligned.image, aligned)
    assert back.size == photo.size and back.mode == photo.mode
    assert _mae(back, photo) < 1.5
    x, y, w, h = (int(v) for v in face.box)
    box = (x, y, x + w, y + h)
    assert _mae(back.crop(box), photo.crop(box)) < 6.0


def _outside_crop(photo: Image.Image, aligned: AlignedFace) -> np.ndarray:
    corners = faces.apply_affine(aligned.to_photo, [[0, 0], [SIZE, 0], [0, SIZE], [SIZE, SIZE]])
    (x0, y0), (x1, y1) = np.floor(corners.min(0)) - 2, np.ceil(corners.max(0)) + 2
    yy, xx = np.mgrid[: photo.height, : photo.width]
    return (xx < x0) | (xx > x1) | (yy < y0) | (yy > y1)


def test_modified_crop_changes_only_the_face_region(obama) -> None:
    photo, face, aligned = obama
    pasted = faces.paste_back(photo, ImageOps.invert(aligned.image), aligned)
    before, after = np.asarray(photo, np.int16), np.asarray(pasted, np.int16)
    far = _outside_crop(photo, aligned)
    assert far.mean() > 0.3, "the test needs pixels far from the face"
    assert np.array_equal(before[far], after[far])
    nose_x, nose_y = face.landmarks[2].astype(int)
    centre = (slice(nose_y - 20, nose_y + 20), slice(nose_x - 20, nose_x + 20))
    assert np.abs(after[centre] - before[centre]).mean() > 60.0


def test_colour_drift_leaves_no_seam(obama) -> None:
    photo, _, aligned = obama
    drift = np.asarray(aligned.image, np.int16) + [40, 0, -25]
    drifted = Image.fromarray(np.clip(drift, 0, 255).astype(np.uint8))
    pasted = faces.paste_back(photo, drifted, aligned)
    before, after = np.asarray(photo, np.float64), np.asarray(pasted, np.float64)

    def at(u: float, v: float) -> np.ndarray:  # a 7x7 patch of photo pixels at a crop point
        x, y = faces.apply_affine(aligned.to_photo, [[u * SIZE, v * SIZE]])[0].astype(int)
        return np.abs(after[y - 3 : y + 4, x - 3 : x + 4] - before[y - 3 : y + 4, x - 3 : x + 4])

    seam = [at(0.5, 0.08), at(0.08, 0.5), at(0.92, 0.5)]  # halfway through the blend edge
    assert max(p.mean() for p in seam) < 6.0  # unmatched, these would be off by about 16
    assert at(0.5, 0.5)[..., 0].mean() > 25.0  # the middle keeps what the crop changed


@pytest.mark.parametrize("mode", ["RGBA", "L", "LA"])
def test_paste_back_keeps_size_and_mode(mode, obama) -> None:
    photo, _, aligned = obama
    other = photo.convert(mode)
    if "A" in mode:
        other.putalpha(200)
    pasted = faces.paste_back(other, aligned.image, aligned)
    assert pasted.mode == mode and pasted.size == photo.size
    if "A" in mode:
        assert np.all(np.asarray(pasted.getchannel("A")) == 200)


# -------------------------------------------------------------------------------- loading


def test_exif_orientation_is_applied(photos, found) -> None:
    photo = photos["obama.jpg"]
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    sideways = photo.transpose(Image.Transpose.ROTATE_90)
    tagged = faces.load_image(_encode(sideways, "JPEG", quality=95, exif=exif))
    assert faces.load_image(_encode(sideways, "JPEG", quality=95)).size == sideways.size
    assert tagged.size == photo.size
    (face,) = faces.detect_faces(tagged)
    assert np.abs(face.landmarks - found["obama.jpg"][0].landmarks).max() < 3.0


def _sixteen_bit_png() -> bytes:
    grey = np.zeros((64, 64), np.uint16)
    grey[:, 16:32], grey[:, 32:] = 32768, 65535
    return _encode(Image.fromarray(grey), "PNG")


def test_colour_modes_become_rgb(photos) -> None:
    photo = photos["grace_hopper.jpg"]
    rgba = photo.convert("RGBA")
    rgba.putalpha(Image.new("L", photo.size, 255).crop((0, 0, 384, 384)))
    rgba.paste((0, 0, 0, 0), (0, 0, 40, 40))  # transparent corner
    cases = {
        "RGBA": _encode(rgba, "PNG"),
        "LA": _encode(photo.convert("LA"), "PNG"),
        "P": _encode(photo.convert("P"), "PNG"),
        "L": _encode(photo.convert("L"), "JPEG"),
        "CMYK": _encode(photo.convert("CMYK"), "JPEG", quality=95),
        "1": _encode(photo.convert("1"), "PNG"),
    }
    for mode, data in cases.items():
        loaded = faces.load_image(data)
        assert loaded.mode == "RGB" and loaded.size == photo.size, mode
    assert faces.load_image(cases["RGBA"]).getpixel((5, 5)) == (255, 255, 255)
    assert _mae(faces.load_image(cases["CMYK"]), photo) < 8.0
    for mode in ("L", "CMYK"):
        assert len(faces.detect_faces(faces.load_image(cases[mode]))) == 1, mode
    sixteen = faces.load_image(_sixteen_bit_png())
    assert [sixteen.getpixel((x, 0)) for x in (0, 20, 40)] == [(0,) * 3, (128,) * 3, (255,) * 3]


def _png_header(width: int, height: int) -> bytes:
    """A tiny PNG that declares a huge image (a decompression bomb needs no more)."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(tag + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def test_bad_inputs_get_their_errors(tmp_path: Path) -> None:
    jpeg = (DATA / "obama.jpg").read_bytes()
    text = tmp_path / "notes.txt"
    text.write_text("not a photo\n" * 20)
    broken_png = bytearray(_encode(Image.new("RGB", (64, 64), (10, 200, 30)), "PNG"))
    broken_png[60:70] = b"\xff" * 10  # inside the compressed pixels: CRC and data broken
    cases = [
        (np.random.default_rng(1).bytes(5000), NotAnImageError),
        (text, NotAnImageError),
        (str(text), NotAnImageError),
        (b"", NotAnImageError),
        (b"\0\0\0\x18ftypheic" + bytes(200), NotAnImageError),
        (jpeg[: len(jpeg) * 6 // 10], CorruptImageError),
        (bytes(broken_png), CorruptImageError),
        (_png_header(100_000, 100_000), ImageTooLargeError),
        (_png_header(10_000, 8_000), ImageTooLargeError),  # below PIL's own bomb limit
        (tmp_path / "missing.jpg", ImageError),
    ]
    for source, error in cases:
        with pytest.raises(error) as err:
            faces.load_image(source)
        assert type(err.value) is error, (source if len(str(source)) < 80 else error, err.value)
        assert _acts(str(err.value)), str(err.value)
    assert "JPEG" in str(pytest.raises(NotAnImageError, faces.load_image, cases[4][0]).value)


def test_limits_are_checked_before_decoding(tmp_path: Path) -> None:
    jpeg = (DATA / "obama.jpg").read_bytes()
    path = tmp_path / "photo.jpg"
    path.write_bytes(jpeg)
    for source in (jpeg, path):
        with pytest.raises(ImageTooLargeError, match="MB"):
            faces.load_image(source, max_bytes=10_000)
    with pytest.raises(ImageTooLargeError, match="334x384"):
        faces.load_image(jpeg, max_pixels=100_000)
    start = time.perf_counter()
    with pytest.raises(ImageTooLargeError):
        faces.load_image(_png_header(60_000, 60_000), max_pixels=10**12)  # past PIL's limit
    assert time.perf_counter() - start < 1.0
    assert Image.MAX_IMAGE_PIXELS == 89_478_485  # never changed globally


# -------------------------------------------------------------------------------- prepare


def test_prepare_face_returns_everything(photos) -> None:
    prepared = faces.prepare_face(DATA / "ardern_2022.jpg", 128)
    assert prepared.faces_found == 1 and prepared.note is None and prepared.face_index == 0
    assert prepared.crop.size == (128, 128) and prepared.photo.size == (294, 384)
    assert prepared.to_photo.shape == (2, 3)
    eyes = faces.apply_affine(prepared.aligned.to_crop, prepared.face.landmarks[:2])
    assert np.abs(eyes - FFHQ_EYES / 2).max() < 2.0


def test_tiny_face_is_too_small(photos) -> None:
    tiny = photos["obama.jpg"].resize((40, 46), Image.Resampling.LANCZOS)
    with pytest.raises(FaceTooSmallError) as err:
        faces.prepare_face(_encode(tiny, "PNG"), SIZE)
    assert str(faces.MIN_FACE_PX) in str(err.value) and _acts(str(err.value))


def test_several_faces_edit_the_largest_and_say_so(photos) -> None:
    big, small = photos["obama.jpg"], photos["astronaut.jpg"].resize((300, 300))
    pair = Image.new("RGB", (big.width + small.width, big.height), (200, 200, 200))
    pair.paste(big, (0, 0))
    pair.paste(small, (big.width, 60))
    data = _encode(pair, "PNG")

    largest = faces.prepare_face(data, SIZE)
    assert largest.faces_found == 2
    assert largest.face.landmarks[:, 0].max() < big.width
    assert "2 faces" in largest.note and "--face" in largest.note and "largest" in largest.note

    other = faces.prepare_face(data, SIZE, face_index=1)
    assert other.face.landmarks[:, 0].min() > big.width
    assert "face 1" in other.note

    for index in (2, -1):
        with pytest.raises(NoFaceError, match="2 faces") as err:
            faces.prepare_face(data, SIZE, face_index=index)
        assert isinstance(err.value, ChatFaceError) and "0 (the largest) to 1" in str(err.value)


# -------------------------------------------------------------------------------- tensors


def test_tensor_round_trip(obama) -> None:
    import torch

    crop = obama[2].image
    t = faces.to_tensor(crop)
    assert t.shape == (1, 3, SIZE, SIZE) and t.dtype == torch.float32
    assert t.min() >= -1.0 and t.max() <= 1.0
    assert faces.to_image(t).tobytes() == crop.tobytes()
    clamped = np.asarray(faces.to_image(torch.full((3, 4, 4), 5.0)))
    assert clamped.min() == 255
    with pytest.raises(ValueError):
        faces.to_image(torch.zeros(2, 3, 4, 4))


def test_import_loads_no_heavy_library() -> None:
    code = (
        "import sys, chatface.engine.faces;"
        "print(sorted({'torch', 'cv2', 'onnxruntime'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_heic_and_avif_photos_are_read_and_damaged_ones_named() -> None:
    photo = Image.open(DATA / "obama.jpg").convert("RGB")
    avif = _encode(photo, "AVIF")
    assert faces.load_image(avif).size == photo.size  # AVIF photos are read
    buf = io.BytesIO()  # as iPhones save photos; Pillow itself has not learnt HEIC yet
    pillow_heif.from_pillow(photo).save(buf, format="HEIF")
    heic = buf.getvalue()
    assert heic[4:12] == b"ftypheic"
    assert faces.load_image(heic).size == photo.size  # HEIC photos are read
    damaged = str(pytest.raises(NotAnImageError, faces.load_image, heic[:40]).value)
    assert "HEIC" in damaged and "AVIF" not in damaged
    broken = str(pytest.raises(NotAnImageError, faces.load_image, avif[:12] + bytes(200)).value)
    assert "AVIF" in broken and "HEIC" not in broken
