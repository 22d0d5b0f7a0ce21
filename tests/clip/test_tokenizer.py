"""Tokenizer ids checked against the vocabulary file itself, not against our own encoder."""
import gzip

import pytest
import torch

import clip
from clip.simple_tokenizer import DEFAULT_VOCAB, SimpleTokenizer

SOT, EOT = 49406, 49407


@pytest.fixture(scope="module")
def merges():
    with gzip.open(DEFAULT_VOCAB, "rt", encoding="utf-8") as f:
        return f.read().split("\n")[1:]  # line 0 is a header


def merge_id(merges, merge_line):
    """Id of the token made by the merge written as `merge_line` ("left right")."""
    # ids: 256 byte symbols, 256 byte symbols + "</w>", then one id per merge in file order
    return 512 + merges.index(merge_line)


def byte_id(byte: int, end_of_word=False) -> int:
    """Id of a single-byte token, from CLIP's byte ordering rule.

    Visible bytes (0x21-0x7e, 0xa1-0xac, 0xae-0xff) come first in byte order, then every other byte
    in byte order; the "</w>" variants follow the 256 plain ones.
    """
    visible = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    order = visible + [b for b in range(256) if b not in visible]
    return order.index(byte) + (256 if end_of_word else 0)


def test_photo_of_a_cat(merges):
    ids = clip.tokenize("a photo of a cat.")
    assert ids.shape == (1, 77) and ids.dtype == torch.long
    expected = [SOT, byte_id(ord("a"), True), merge_id(merges, "pho to</w>"), merge_id(merges, "o f</w>"),
                byte_id(ord("a"), True), merge_id(merges, "c at</w>"), byte_id(ord("."), True), EOT]
    assert expected == [49406, 320, 1125, 539, 320, 2368, 269, 49407]  # the well-known CLIP ids
    assert ids[0, :8].tolist() == expected
    assert ids[0, 8:].eq(0).all()


def test_unicode_words(merges):
    tok = SimpleTokenizer()
    # "café" is c a f 0xC3 0xA9 in UTF-8; the vocabulary has the whole word ("caf" + "é</w>")
    assert tok.encode("café") == [merge_id(merges, "caf Ã©</w>")]
    # the cat emoji is F0 9F 90 B1, merged into one token
    assert tok.encode("🐱") == [merge_id(merges, "ðŁĲ ±</w>")]
    # U+1D538 (F0 9D 94 B8): only the first two bytes merge; the others stay single bytes
    assert tok.encode("𝔸") == [merge_id(merges, "ð Ŀ"), byte_id(0x94), byte_id(0xB8, True)]
    # upper case is folded; the accent splits "naïve" into three pieces
    assert tok.encode("NAÏVE") == [merge_id(merges, "n a"), merge_id(merges, "Ã ¯"), merge_id(merges, "v e</w>")]


def test_cleaning_and_decode_round_trip():
    tok = SimpleTokenizer()
    assert tok.encode("  A   photo\tof\n&amp;amp; ") == tok.encode("a photo of &")
    text = "a photo of a café 🐱, don't."
    assert tok.decode(tok.encode(text)) == "a photo of a café 🐱, don 't . "  # emoji + comma: one punctuation run
    assert tok.encoder["cat</w>"] == 2368 and tok.decoder[2368] == "cat</w>"
    assert len(tok.encoder) == 49408


def test_too_long_text_is_a_clear_error():
    long_text = " ".join(["cat"] * 100)
    with pytest.raises(RuntimeError, match=r"102 tokens.*context length 77.*truncate=True"):
        clip.tokenize(long_text)


def test_truncate_keeps_end_token_last():
    ids = clip.tokenize(["dog " * 100, "a cat"], truncate=True)
    assert ids.shape == (2, 77)
    assert ids[0, 0] == SOT and ids[0, -1] == EOT and ids[0, 1:-1].eq(ids[0, 1]).all()
    assert ids[1, :4].tolist() == [SOT, 320, 2368, EOT]
    # the end token has the largest id, which is how CLIP finds it
    assert ids.argmax(dim=-1).tolist() == [76, 3]


def test_custom_context_length():
    assert clip.tokenize("a cat", context_length=5).tolist() == [[SOT, 320, 2368, EOT, 0]]


@pytest.mark.parametrize("raw, clean", [
    ("cafÃ© au lait", "café au lait"),  # mojibake (UTF-8 read as Latin-1): ftfy repairs it
    ("a photo of a &lt;cat&gt;", "a photo of a <cat>"),  # HTML entities are unescaped
    ("salt &amp;amp; pepper", "salt & pepper"),  # ... twice, as CLIP's tokenizer does
    # ftfy leaves entities alone in text that holds a "<": only the tokenizer's own unescaping, done twice, cleans these
    ("a <b> &amp;amp; c", "a <b> & c"),
    ("x < y &lt; z", "x < y < z"),
])
def test_text_cleaning_repairs_mojibake_and_unescapes_html(raw, clean, monkeypatch):
    import clip.simple_tokenizer as st

    tokenizer = SimpleTokenizer()
    assert tokenizer.encode(raw) == tokenizer.encode(clean)
    assert torch.equal(clip.tokenize(raw), clip.tokenize(clean))
    # without the repair the ids differ, so the assertions above would catch its loss
    monkeypatch.setattr(st.ftfy, "fix_text", lambda text: text)
    monkeypatch.setattr(st.html, "unescape", lambda text: text)
    assert tokenizer.encode(raw) != tokenizer.encode(clean)
