"""CLIP's byte-level BPE tokenizer, written from the published behaviour.

Text -> ids in four steps:
1. clean: repair mojibake (ftfy), unescape HTML twice, collapse whitespace, lower-case;
2. split into pre-tokens (words, single digits, runs of punctuation, English contractions);
3. map each pre-token's UTF-8 bytes to printable unicode stand-ins (one per byte value);
4. merge adjacent symbols by the learned merge ranks until no known pair is left.

The last symbol of every pre-token carries the end-of-word marker `</w>`, so "cat" at the end of
a word and "cat" inside "category" are different tokens. The vocabulary (49408 entries) is: the 256
byte symbols, the same 256 with `</w>`, one entry per merge (48894 merges), then
`<|startoftext|>` (49406) and `<|endoftext|>` (49407).
The merges file is data from OpenAI's release (see docs/clip.md).
"""
import gzip
import html
import os
from functools import lru_cache

import ftfy
import regex as re

DEFAULT_VOCAB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bpe_simple_vocab_16e6.txt.gz")
END_OF_WORD = "</w>"
START_OF_TEXT = "<|startoftext|>"
END_OF_TEXT = "<|endoftext|>"
# 49152 - 256 - 2 merges are used by CLIP; the file holds more (and a header line).
N_MERGES = 49152 - 256 - 2

# Special tokens are matched first so they survive as single pre-tokens; contractions next,
# then letters runs, single digits, and runs of anything that is neither space, letter nor digit.
_PRETOKEN = re.compile(
    r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+",
    re.IGNORECASE,
)


@lru_cache()
def bytes_to_unicode():
    """Byte value -> a printable unicode character standing for it.

    Bytes that are already visible, non-space Latin-1 characters stand for themselves; every other
    byte (controls, space, soft hyphen, ...) gets the next unused code point from 256 upwards. This
    keeps the BPE vocabulary readable and free of whitespace.
    """
    visible = set(range(ord("!"), ord("~") + 1))
    visible |= set(range(ord("¡"), ord("¬") + 1))
    visible |= set(range(ord("®"), ord("ÿ") + 1))
    mapping = {b: chr(b) for b in sorted(visible)}
    next_free = 256
    for b in range(256):
        if b not in visible:
            mapping[b] = chr(next_free)
            next_free += 1
    return mapping


def _adjacent_pairs(symbols):
    return {(symbols[i], symbols[i + 1]) for i in range(len(symbols) - 1)}


def clean_text(text):
    text = ftfy.fix_text(text)
    text = html.unescape(html.unescape(text)).strip()
    return re.sub(r"\s+", " ", text).strip().lower()


class SimpleTokenizer:
    """`encode(text) -> list[int]` (no start/end tokens), `decode(ids) -> str`.

    Attributes as in OpenAI's class: `encoder` (token string -> id), `decoder` (id -> token string),
    `byte_encoder`, `byte_decoder`, `bpe_ranks` (pair -> merge rank).
    """

    def __init__(self, bpe_path: str = DEFAULT_VOCAB):
        if not os.path.isfile(bpe_path):
            raise FileNotFoundError(
                f"BPE merges file not found at {bpe_path}. It ships with the repository as "
                "clip/bpe_simple_vocab_16e6.txt.gz (see docs/clip.md for where to get it)."
            )
        with gzip.open(bpe_path, "rt", encoding="utf-8") as f:
            lines = f.read().split("\n")
        # line 0 is a version header; keep only the merges CLIP was trained with
        merges = [tuple(line.split()) for line in lines[1 : N_MERGES + 1]]

        self.byte_encoder = bytes_to_unicode()
        self.byte_decoder = {c: b for b, c in self.byte_encoder.items()}
        byte_symbols = list(self.byte_encoder.values())
        vocab = byte_symbols + [s + END_OF_WORD for s in byte_symbols]
        vocab += ["".join(pair) for pair in merges]
        vocab += [START_OF_TEXT, END_OF_TEXT]
        self.encoder = {token: i for i, token in enumerate(vocab)}
        self.decoder = {i: token for token, i in self.encoder.items()}
        self.bpe_ranks = {pair: rank for rank, pair in enumerate(merges)}
        self.sot_token = self.encoder[START_OF_TEXT]
        self.eot_token = self.encoder[END_OF_TEXT]
        self.cache = {START_OF_TEXT: START_OF_TEXT, END_OF_TEXT: END_OF_TEXT}

    def bpe(self, token: str) -> str:
        """Merge one pre-token (already in byte symbols); returns its BPE pieces joined by spaces."""
        if token in self.cache:
            return self.cache[token]
        symbols = list(token[:-1]) + [token[-1] + END_OF_WORD]
        while len(symbols) > 1:
            ranked = [p for p in _adjacent_pairs(symbols) if p in self.bpe_ranks]
            if not ranked:
                break
            best = min(ranked, key=self.bpe_ranks.__getitem__)
            # merge every occurrence of the best pair, scanning left to right
            merged, i = [], 0
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    merged.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            symbols = merged
        pieces = " ".join(symbols)
        self.cache[token] = pieces
        return pieces

    def encode(self, text: str) -> list:
        ids = []
        for pretoken in _PRETOKEN.findall(clean_text(text)):
            as_symbols = "".join(self.byte_encoder[b] for b in pretoken.encode("utf-8"))
            ids.extend(self.encoder[piece] for piece in self.bpe(as_symbols).split(" "))
        return ids

    def decode(self, tokens) -> str:
        # every vocabulary character (the `</w>` marker and special tokens included) is a byte
        # stand-in, so decoding is: symbols -> bytes -> UTF-8, then word ends -> spaces
        symbols = "".join(self.decoder[int(t)] for t in tokens)
        raw = bytearray(self.byte_decoder[c] for c in symbols)
        return raw.decode("utf-8", errors="replace").replace(END_OF_WORD, " ")
