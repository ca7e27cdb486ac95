"""eSpeak NG through ctypes, from the library and voice data inside the `espeakng-loader` wheel.

eSpeak keeps its state in the library's globals: a random generator seeded from the clock, and signal state
(phase, filters) that carries from one utterance to the next. The same text said twice in one process, or in two
processes with different histories, came out different (12,623 of the default 16,000 source clips changed from
one `audio_prepare` to the next). So each `Synthesizer` loads a private copy of the library (fresh globals) and
seeds its generator: what it says then depends only on its seed and on what it said before, not on the process.
"""
from __future__ import annotations

import _ctypes
import ctypes
import shutil
import tempfile
from pathlib import Path

import numpy as np

_SYNCHRONOUS = 2  # AUDIO_OUTPUT_SYNCHRONOUS: ~30x faster than retrieval mode
_RATE, _PITCH, _WORDGAP = 1, 3, 7  # espeak_PARAMETER
_CHARS_UTF8 = 1
_EE_OK = 0
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
MIN_RATE, MAX_RATE = 80, 450  # eSpeak clamps the rate below 80 words/min


class SynthesisError(RuntimeError):
    """eSpeak could not be loaded or refused a voice."""


def data_dir() -> Path:
    import espeakng_loader

    return Path(espeakng_loader.get_data_path())


def variants() -> list[str]:
    """Voice variants shipped with the wheel (names are case-sensitive; names with spaces are skipped)."""
    return sorted(p.name for p in (data_dir() / "voices" / "!v").iterdir() if p.is_file() and " " not in p.name)


def has_dictionary(language: str) -> bool:
    return (data_dir() / f"{language.split('-')[0]}_dict").exists()


class Synthesizer:
    """One eSpeak NG instance in synchronous mode; `say` returns int16 samples at `sample_rate`."""

    def __init__(self, seed: int = 0) -> None:
        import espeakng_loader

        with tempfile.TemporaryDirectory(prefix="espeak-") as tmp:
            # dlopen of the same path returns the already loaded library, globals and all: load a copy (the file
            # can go once it is mapped).
            private = Path(tmp) / Path(espeakng_loader.get_library_path()).name
            try:
                shutil.copyfile(espeakng_loader.get_library_path(), private)
                self._lib = ctypes.CDLL(str(private))
            except OSError as err:
                raise SynthesisError(f"cannot load eSpeak NG from espeakng-loader: {err}") from None
        lib = self._lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                     ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        # The path is the folder that holds espeak-ng-data.
        self.sample_rate = lib.espeak_Initialize(_SYNCHRONOUS, 0, str(data_dir().parent).encode(), 0)
        if self.sample_rate <= 0:
            raise SynthesisError(f"espeak_Initialize failed ({self.sample_rate}) with data in {data_dir()}")
        self._chunks: list[np.ndarray] = []
        self._callback = _CALLBACK(self._collect)  # kept referenced: eSpeak calls it during espeak_Synth
        lib.espeak_SetSynthCallback(self._callback)
        self._voice: str | None = None
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_ng_SetRandSeed(seed)
        ctypes.CDLL(None).srand(ctypes.c_uint(seed))  # eSpeak also calls the C library's rand()

    def close(self) -> None:
        """Free eSpeak's memory and unload this copy of the library."""
        if self._lib is not None:
            self._lib.espeak_Terminate()
            _ctypes.dlclose(self._lib._handle)
            self._lib = None

    def __enter__(self) -> Synthesizer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _collect(self, wav, count, _events) -> int:
        if count > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        return 0

    def say(self, text: str, voice: str, rate: int = 175, pitch: int = 50, word_gap: int = 0) -> np.ndarray:
        """Speak `text` with `voice` ('lang' or 'lang+variant'); an unknown language raises."""
        if voice != self._voice:
            if self._lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
                raise SynthesisError(f"eSpeak has no voice {voice!r}")
            self._voice = voice
        self._lib.espeak_SetParameter(_RATE, int(np.clip(rate, MIN_RATE, MAX_RATE)), 0)
        self._lib.espeak_SetParameter(_PITCH, int(np.clip(pitch, 0, 99)), 0)
        self._lib.espeak_SetParameter(_WORDGAP, int(max(word_gap, 0)), 0)
        self._chunks = []
        data = text.encode()
        self._lib.espeak_Synth(data, len(data) + 1, 0, 0, 0, _CHARS_UTF8, None, None)
        self._lib.espeak_Synchronize()
        return np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
