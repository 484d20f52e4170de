"""Procedural renderings of a scene: image (sight), sound, touch and a face.

Every rule is a plain function of an emotion vector (and valence/arousal from
:mod:`emojax.data.senses.affect`) plus seeded noise; docs/data.md lists the rules. The renderings
carry the emotion signal only statistically, so a model has to learn it.
"""

from __future__ import annotations

import numpy as np

from emojax.data.senses import affect
from emojax.data.senses.affect import ANGER, DISGUST, FEAR, JOY, SADNESS, SURPRISE

IMAGE_SIZE = 32
SAMPLE_RATE = 8000
AUDIO_SAMPLES = 4000  # 0.5 s
_YY, _XX = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(np.float32)
_SAMPLE_INDEX = np.arange(AUDIO_SAMPLES)
_TIME = (_SAMPLE_INDEX / SAMPLE_RATE).astype(np.float32)
_MAJOR = np.array([0, 4, 7, 12])
_MINOR = np.array([0, 3, 7, 12])


def _clamp(x: float, lo: float, hi: float) -> float:
    """Scalar clip (np.clip costs microseconds per call on scalars)."""
    return min(max(float(x), lo), hi)


def _categorical(rng: np.random.Generator, cdf: np.ndarray) -> int:
    """Index drawn with probabilities given by the cumulative sums ``cdf`` (last = total)."""
    return min(int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right")), len(cdf) - 1)


def _shape_mask(kind: int, cy: float, cx: float, r: float) -> np.ndarray:
    """[32, 32] bool mask of a circle (0), square (1) or upward triangle (2)."""
    dy, dx = _YY - cy, _XX - cx
    if kind == 0:
        return dy * dy + dx * dx <= r * r
    if kind == 1:
        return (np.abs(dy) <= 0.8 * r) & (np.abs(dx) <= 0.8 * r)
    return (dy >= -r) & (dy <= 0.7 * r) & (np.abs(dx) <= 0.6 * (dy + r))


def render_image(rng: np.random.Generator, q: np.ndarray, valence: float, arousal: float):
    """Sight image [32, 32, 3] uint8.

    Background grey 110 + 70*valence (+N(0, 15)); 3-5 shapes, each coloured by an emotion drawn
    from q (grey if q is all zero) with N(0, 20) colour jitter and brightness x(1 + 0.3*valence);
    shape kind ~ softmax(-2a, 0, 2a) over (circle, square, triangle): excited -> sharp;
    radius 4-9 px at a uniform position; pixel noise N(0, 8).
    """
    base = 110.0 + 70.0 * valence + rng.normal(0.0, 15.0)
    image = np.full((IMAGE_SIZE, IMAGE_SIZE, 3), base, np.float32)
    image += rng.normal(0.0, 6.0, size=3)
    kind_logits = np.array([-2.0 * arousal, 0.0, 2.0 * arousal])
    kind_cdf = np.cumsum(np.exp(kind_logits - kind_logits.max()))
    q_cdf = np.cumsum(q)
    has_emotion = q_cdf[-1] > 0
    for _ in range(int(rng.integers(3, 6))):
        if has_emotion:
            colour = affect.COLOURS[_categorical(rng, q_cdf)]
        else:
            colour = np.full(3, 128.0, np.float32) + rng.normal(0.0, 40.0)
        colour = (colour + rng.normal(0.0, 20.0, size=3)) * (1.0 + 0.3 * valence)
        kind = _categorical(rng, kind_cdf)
        mask = _shape_mask(kind, *rng.uniform(4, IMAGE_SIZE - 4, size=2), rng.uniform(4, 9))
        image[mask] = colour
    image += rng.standard_normal(image.shape, dtype=np.float32) * np.float32(8.0)
    return np.clip(image, 0, 255).astype(np.uint8)


def render_audio(rng: np.random.Generator, q: np.ndarray, valence: float, arousal: float):
    """Sound [4000] float32 in [-1, 1] (0.5 s at 8 kHz).

    a = (arousal + 1)/2 + N(0, 0.1); tempo: n = clip(round(2 + 6a), 1, 8) equal-length notes;
    pitch: root MIDI 57 + 12a + N(0, 1); mode: major if valence + N(0, 0.2) >= 0 else minor, each
    note a random chord tone (0, 3|4, 7, 12 semitones); each note decays exponentially and has a
    0.3 second harmonic; noise: white, std 0.02 + 0.25*(q_anger + q_fear + q_disgust) + |N(0,0.02)|;
    gain U(0.5, 0.9).
    """
    a = (arousal + 1.0) / 2.0 + rng.normal(0.0, 0.1)
    n_notes = int(_clamp(round(2 + 6 * a), 1, 8))
    root = 57.0 + 12.0 * a + rng.normal(0.0, 1.0)
    intervals = _MAJOR if valence + rng.normal(0.0, 0.2) >= 0 else _MINOR
    midi = root + rng.choice(intervals, size=n_notes)
    freqs = (440.0 * 2.0 ** ((midi - 69.0) / 12.0)).astype(np.float32)
    note_len = AUDIO_SAMPLES // n_notes
    note_index = np.minimum(_SAMPLE_INDEX // note_len, n_notes - 1)
    t_in_note = _TIME - note_index * np.float32(note_len / SAMPLE_RATE)
    phase = np.float32(2.0 * np.pi) * freqs[note_index] * _TIME
    tone = (np.sin(phase) + np.float32(0.3) * np.sin(2 * phase)) * np.exp(-8 * t_in_note)
    roughness = q[ANGER] + q[FEAR] + q[DISGUST]
    noise_std = 0.02 + 0.25 * roughness + abs(rng.normal(0.0, 0.02))
    noise = rng.standard_normal(AUDIO_SAMPLES, dtype=np.float32) * np.float32(noise_std)
    wave = np.float32(rng.uniform(0.5, 0.9) / 1.3) * tone + noise
    return np.clip(wave, -1.0, 1.0).astype(np.float32)


def render_touch(rng: np.random.Generator, q: np.ndarray, valence: float):
    """Touch [2] float32: (pressure in [0, 1], temperature in [-1, 1]).

    pressure = q . PRESSURE (0.4 if q is zero) + N(0, 0.1);
    temperature = q . TEMPERATURE (0.5*valence if q is zero) + N(0, 0.15); both clipped.
    """
    has_emotion = q.sum() > 0
    pressure = float(q @ affect.PRESSURE) if has_emotion else 0.4
    temperature = float(q @ affect.TEMPERATURE) if has_emotion else 0.5 * valence
    return np.array(
        [
            _clamp(pressure + rng.normal(0.0, 0.1), 0.0, 1.0),
            _clamp(temperature + rng.normal(0.0, 0.15), -1.0, 1.0),
        ],
        np.float32,
    )


def _stroke(canvas: np.ndarray, ys: np.ndarray, xs: np.ndarray, value: float) -> None:
    """Paints the pixels under the points (ys, xs) in place."""
    yi = np.clip(np.round(ys).astype(int), 0, IMAGE_SIZE - 1)
    xi = np.clip(np.round(xs).astype(int), 0, IMAGE_SIZE - 1)
    canvas[yi, xi] = value


def render_face(rng: np.random.Generator, emotion: np.ndarray, valence: float):
    """Face [32, 32, 1] uint8 showing the scene's overall emotion distribution ``emotion`` [8].

    Face: bright ellipse (grey 170) on a dark background, centre jitter +-1.5 px; features dark:
    mouth curve c = clip(valence + N(0, 0.25), -1, 1) (corners 1.5c px above, centre 1.5c below);
    mouth opening o = clip(e_surprise + 0.6 e_fear + N(0, 0.1), 0, 1) (ellipse height 3o);
    eye opening clip(0.4 + 0.6 (e_surprise + e_fear) - 0.5 (e_joy + e_disgust) + N(0, 0.1),
    0.05, 1);
    brow raise e_surprise + e_fear - 0.7 e_anger + N(0, 0.1) (up to 2 px up);
    brow tilt (e_anger + e_disgust) - (e_sadness + e_fear) + N(0, 0.1) (inner ends 2 px down per
    unit); pixel noise N(0, 10).
    """
    cy, cx = 16.0 + rng.uniform(-1.5, 1.5, size=2)
    canvas = np.full((IMAGE_SIZE, IMAGE_SIZE), 40.0, np.float32)
    face = ((_YY - cy) / 14.0) ** 2 + ((_XX - cx) / 11.5) ** 2 <= 1.0
    canvas[face] = 170.0
    ink = 20.0
    # mouth
    curve = _clamp(valence + rng.normal(0.0, 0.25), -1.0, 1.0)
    u = np.linspace(-1.0, 1.0, 40)
    my = cy + 7.0
    _stroke(canvas, my + 1.5 * curve * (1.0 - 2.0 * u * u), cx + 6.0 * u, ink)
    opening = _clamp(emotion[SURPRISE] + 0.6 * emotion[FEAR] + rng.normal(0.0, 0.1), 0.0, 1.0)
    if opening > 0.1:
        mouth = ((_YY - my) / (3.0 * opening)) ** 2 + ((_XX - cx) / 3.0) ** 2 <= 1.0
        canvas[mouth] = ink
    # eyes
    wide, narrow = emotion[SURPRISE] + emotion[FEAR], emotion[JOY] + emotion[DISGUST]
    eye_open = 0.4 + 0.6 * wide - 0.5 * narrow
    eye_open = _clamp(eye_open + rng.normal(0.0, 0.1), 0.05, 1.0)
    ey = cy - 2.0
    for side in (-1.0, 1.0):
        ex = cx + 4.5 * side
        eye = ((_YY - ey) / (0.5 + 2.0 * eye_open)) ** 2 + ((_XX - ex) / 2.2) ** 2 <= 1.0
        canvas[eye] = ink
    # brows: inner end at u = 0, outer end at u = 1
    raise_ = emotion[SURPRISE] + emotion[FEAR] - 0.7 * emotion[ANGER] + rng.normal(0.0, 0.1)
    tilt = emotion[ANGER] + emotion[DISGUST] - emotion[SADNESS] - emotion[FEAR]
    tilt += rng.normal(0.0, 0.1)
    u = np.linspace(0.0, 1.0, 12)
    for side in (-1.0, 1.0):
        by = ey - 4.0 - 2.0 * _clamp(raise_, -0.5, 1.0) + 2.0 * tilt * (1.0 - u)
        _stroke(canvas, by, cx + side * (1.5 + 5.0 * u), ink)
    canvas += rng.standard_normal(canvas.shape, dtype=np.float32) * np.float32(10.0)
    return np.clip(canvas, 0, 255).astype(np.uint8)[..., None]
