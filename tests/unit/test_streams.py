"""Continuous evaluation audio: what is said where, wake words alone at known times, none in the negatives."""
import numpy as np
import pytest

from transferlab.data.audio.streams import CHUNK_S, StreamRecipe, render_chunk, render_stream, word_centres

RATE = 16000


def _recipe(**kw) -> StreamRecipe:
    return StreamRecipe(words=("left", "right", "stop", "go", "seven"), near_misses=("marvel", "carving"),
                        wake_word="marvin", voices=("en", "en+m3"), **kw)


def test_a_recipe_whose_negative_words_hold_the_wake_word_is_refused():
    with pytest.raises(ValueError, match="wake word 'marvin' is among"):
        StreamRecipe(words=("left", "marvin"), near_misses=("marvel",), wake_word="marvin", voices=("en",))


def test_a_positive_stream_says_the_wake_word_alone_at_known_times():
    audio, segments = render_stream(_recipe(wake_every_s=15.0), 2 * CHUNK_S, seed=3, sample_rate=RATE)
    assert audio.dtype == np.int16 and len(audio) == int(2 * CHUNK_S * RATE)
    words = word_centres(segments)
    assert 6 <= len(words) <= 9 and set(segments["chunk"]) == {0, 1}
    assert not segments.loc[segments["kind"] != "wake_word", "text"].str.contains("marvin").any()
    assert (segments["kind"] == "near_miss").any() and (segments["end_s"] > segments["start_s"]).all()
    # Each wake word has at least 1.5 s of no speech on both sides: a detection matches one word.
    ordered = segments.sort_values("start_s").reset_index(drop=True)
    for i in ordered.index[ordered["kind"] == "wake_word"]:
        if i > 0:
            assert ordered.loc[i, "start_s"] - ordered.loc[i - 1, "end_s"] >= 1.5 - 1e-6
        if i + 1 < len(ordered):
            assert ordered.loc[i + 1, "start_s"] - ordered.loc[i, "end_s"] >= 1.5 - 1e-6
    # Speech is where the table says: louder inside a wake word than in the pause before it.
    w = ordered[ordered["kind"] == "wake_word"].iloc[0]
    inside = audio[int(w.start_s * RATE):int(w.end_s * RATE)].astype(float)
    before = audio[int((w.start_s - 1.2) * RATE):int((w.start_s - 0.2) * RATE)].astype(float)
    assert np.sqrt(np.mean(inside ** 2)) > 1.5 * np.sqrt(np.mean(before ** 2))


def test_a_negative_stream_has_no_wake_word_and_a_chunk_is_its_seed():
    audio, segments = render_stream(_recipe(), CHUNK_S, seed=4, sample_rate=RATE)
    assert len(word_centres(segments)) == 0 and segments["end_s"].max() <= CHUNK_S
    again_audio, again = render_chunk(_recipe(), int(np.random.default_rng([4, 61]).integers(0, 2**31 - 1, 1)[0]), RATE)
    assert again.drop(columns=[]).equals(segments.drop(columns=["chunk"]))
