#!/usr/bin/env python3
"""Byte-level BPE tokenizers and reference ids for Folio's BPETokenizer, from the Hugging
Face `tokenizers` library (the one transformers' fast tokenizers run).

    python3 Tools/reference/make_bpe_fixtures.py

Trains small byte-level BPE tokenizers (vocabulary 1500) on the inline corpus below and
writes, under Tests/Fixtures/bpe:
- gpt2/tokenizer.json: ByteLevel pre-tokenizer with the GPT-2 regex; `<|endoftext|>` in the
  model vocabulary and as a special added token, `<mask>` (special, lstrip) and a
  non-special, single-word added token with a space and accents in it;
- gpt2-digits/tokenizer.json: the same model behind Sequence[Digits(individual_digits),
  ByteLevel(add_prefix_space)], for the prefix-space and digit-splitting paths;
- llama3/tokenizer.json: Sequence[Split(Llama 3 pattern, Isolated), ByteLevel(use_regex
  false)], ignore_merges, a few vocabulary entries no merge reaches (as in Llama 3), special
  tokens after the vocabulary, TemplateProcessing with a `<|begin_of_text|>` BOS;
- qwen2/tokenizer.json: NFC normalizer, the Qwen2 pattern, ChatML special tokens and the
  non-special `<tool_call>` tokens, merges in the legacy "a b" text form;
- cases.json: pre_tokenizer_variants: the gpt2 model behind other pre-tokenizers (Split
  behaviours, literal patterns, invert, Digits, a Split after ByteLevel), with the ids of
  variant_strings (the hand-written strings under 200 characters);
- cases.json: the test strings (hand-written ones, then random ones over the characters where
  the regex classes meet and over all of Unicode), and per flavor the ids of `encode(s,
  add_special_tokens=False/True)`, the decode of the latter (skip_special_tokens False and
  True), and random id lists with their decode (invalid UTF-8 included). Values equal to the
  one they would repeat are null (see main).

Expectations are computed from the files as written (Tokenizer.from_file), so they are what
anyone loading these tokenizer.json files gets.
"""
import json
import os
import random

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

OUT = "Tests/Fixtures/bpe"

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
LLAMA3_PATTERN = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
QWEN2_PATTERN = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""

CORPUS = [
    "The quick brown fox jumps over the lazy dog. The dog didn't care; it's been lazy all day.",
    "I'm sure they're right, we've seen it before and you'll see it again. She'd know, he'd say.",
    "It's THE END. WE'RE DONE. YOU'LL SEE. I'D RATHER NOT. Don't, won't, can't, shouldn't.",
    "Folio stores large language model weights in memory-mapped files and converts checkpoints.",
    "Tokenizers split text into tokens; byte-level BPE merges the most frequent pairs of bytes.",
    "In 2024, the model had 8030261248 parameters, 32 layers, and a vocabulary of 128256 tokens.",
    "Call 555-0199 or +1 (800) 123-4567 before 10:30 on 2023-11-05. Pay $1,234.56 or €99.",
    "Numbers: 0 1 2 3 4 5 6 7 8 9 10 11 12 100 1000 10000 3.14159 2.71828 1e-5 6.02e23 42",
    "def tokenize(text: str) -> list[int]:\n    ids = []\n    for word in text.split():\n        ids.append(vocab[word])\n    return ids\n",
    "for (int i = 0; i < n; ++i) {\n\tsum += a[i] * b[i];\n}\nreturn sum;\n",
    "if x == None:\n    raise ValueError(\"x must not be None\")\nelse:\n    print(f\"x = {x!r}\")\n",
    "{\"name\": \"folio\", \"version\": \"1.0.0\", \"dependencies\": [\"swift-nio\", \"zip\"]}",
    "<html><body><p class=\"intro\">Hello, <b>world</b>!</p></body></html>",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name;",
    "Café crème brûlée, naïve façade, Ångström, Straße, jalapeño, Zürich, São Paulo, Øresund.",
    "Les élèves étudient à l'université de Montréal; c'est très intéressant, n'est-ce pas ?",
    "¿Dónde está la biblioteca? ¡Aquí está! El niño comió piña y jamón.",
    "Ελληνικά: Η γρήγορη καφέ αλεπού πηδάει πάνω από τον τεμπέλη σκύλο.",
    "Русский текст: Быстрая коричневая лиса прыгает через ленивую собаку.",
    "日本語の文章です。東京は大きな都市です。私は寿司が好きです。",
    "中文句子：我喜欢吃苹果和香蕉。今天天气很好，我们去公园吧！",
    "한국어 문장입니다. 안녕하세요, 만나서 반갑습니다.",
    "العربية: مرحبا بالعالم، كيف حالك اليوم؟",
    "עברית: שלום עולם, מה שלומך?",
    "हिन्दी: नमस्ते दुनिया, आप कैसे हैं?",
    "ไทย: สวัสดีชาวโลก",
    "Emoji: 😀 😂 👍 🎉 🚀 ❤️ 👨‍👩‍👧‍👦 🏳️‍🌈 👋🏽 🇫🇷 🇯🇵",
    "Math: ∑ ∫ √ ∞ ≠ ≤ ≥ ± × ÷ π θ λ μ σ x² + y² = z²",
    "Whitespace:   three spaces,\ttab,\t\ttwo tabs, trailing spaces   \nnew line\n\n\ndouble blank\r\nCRLF",
    "    indented four\n        indented eight\n\tindented tab\n",
    "email me at someone@example.com or visit https://example.org/path?query=1&x=2#frag",
    "Markdown: # Title\n\n- item one\n- item two\n\n**bold** _italic_ `code` [link](http://x.y)",
    "snake_case_name camelCaseName PascalCaseName kebab-case-name SCREAMING_CASE",
    "a an the of to in is it that for on with as was by at be this are from or have",
    "Hello world! Hello there. Hello, hello, HELLO. hello_world helloWorld",
]


def corpus_lines():
    rng = random.Random(1234)
    lines = []
    for _ in range(20):
        lines.extend(CORPUS)
    words = " ".join(CORPUS).split()
    for _ in range(400):
        lines.append(" ".join(rng.choice(words) for _ in range(rng.randint(3, 15))))
    for _ in range(100):
        lines.append(" ".join(str(rng.randint(0, 10 ** rng.randint(1, 9))) for _ in range(5)))
    return lines


TEST_STRINGS = [
    "",
    " ",
    "   ",
    "\n",
    "\n\n\n",
    "\t",
    "\r\n",
    " \n ",
    "\r\r\n\n",
    " \r\n \r\n",
    "a",
    "Hello world",
    " Hello world",
    "Hello world ",
    "Hello  world",
    "Hello   world   ",
    "The quick brown fox jumps over the lazy dog.",
    "I'm sure they're right, we've seen it and you'll see. She'd know; it's done.",
    "DON'T SHOUT, IT'S LOUD. WE'LL SEE. THEY'RE HERE. I'VE GOT IT. I'M OK. HE'D GO.",
    "'s 't 're 've 'm 'll 'd 'S 'T 'RE 'Ve 'M 'Ll 'D",
    "'",
    "''",
    "'sa 'ta 'red 'velvet 'mm 'lll 'dd",
    "O'Neil's cat’s toy — it’s curly",
    "'ſ and 'ſtop",
    "'ſtop",
    "1234567890",
    "12345678901234567890123",
    "3.14159 2.71828 -42 +7 1e10 0x1F 1,000,000",
    "٣٤٥ Ⅻ ½ ²³ ①②③ ５６７",
    "abc123def 4567xyz",
    "def f(x):\n    return x**2\n",
    "for (int i = 0; i < n; ++i) { sum += a[i]; }",
    "\tif x:\n\t\tpass\n",
    "    indented\n        more\n",
    "{\"key\": [1, 2, 3], \"nested\": {\"a\": null}}",
    "<div class=\"x\">text</div>",
    "café",
    "cafe\u0301",
    "Ångström",
    "A\u030angstro\u0308m",
    "\u0301",
    "e\u0301\u0301\u0301",
    "\u1100\u1161\u11a8",
    "가각",
    "ﬁ ﬀ ﬃ",
    "Straße STRASSE",
    "你好，世界！",
    "日本語のテキストです。",
    "안녕하세요",
    "مرحبا بالعالم",
    "שלום עולם",
    "नमस्ते दुनिया",
    "สวัสดีชาวโลก",
    "Hello мир 世界 مرحبا 🌍",
    "👍",
    "👨‍👩‍👧‍👦",
    "🏳️‍🌈",
    "👋🏽 👋🏿",
    "🇫🇷🇯🇵🇺🇸",
    "1️⃣ #️⃣",
    "😀😀😀😀😀",
    "𝐀𝐁𝐂 𝒳𝒴𝒵",
    "𠀀𠀁𠀂",
    "\u00a0nbsp\u00a0",
    "ideographic\u3000space",
    "line\u2028separator\u2029para",
    "\u000b\u000c vertical tab and form feed",
    "next\u0085line",
    "zero\u200bwidth\u200cjoiner\u200dx",
    "\u180e mongolian",
    "\x00\x01\x02\x7f control",
    "\ufeffBOM",
    "\ufffd replacement",
    "$100.00 €50 £30 ¥20 ₹10",
    "∑∫√∞≠≤≥ x²+y²=z²",
    "https://example.com/path?query=1&x=2#frag",
    "someone@example.com",
    "snake_case_name camelCaseName kebab-case SCREAMING_CASE",
    "pneumonoultramicroscopicsilicovolcanoconiosis",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "ab" * 1500,
    "the " * 50,
    "!!!???...,,,;;;:::",
    "--> <-- => <= != == === !==",
    "Hello\n\nWorld\n\n\n\nEnd",
    "trailing newline\n",
    "   leading spaces",
    "tab\tseparated\tvalues\t",
    "a\n b\n  c\n   d",
    "x \n\ty",
    "<|begin_of_text|>Hello<|eot_id|>",
    "<|begin_of_text|><|begin_of_text|>",
    "<|end_of_text|> and <|eot_id|> in the middle",
    "<|endoftext|>",
    "a<|endoftext|>b",
    "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n",
    "<|eot_id",
    "<|<|eot_id|>|>",
    "<tool_call>{\"name\": \"f\"}</tool_call>",
    " <mask> x",
    "a<mask>b",
    "spaces    <mask>   after",
    "ünï cødé",
    "xünï cødé",
    "say ünï cødé now",
    "ünï cødéx",
    "a <sep>  b",
    " <sep> ",
    "x<sep><sep> y",
    "<sep>  <mask>",
    "un café, deux cafe\u0301s",
    "Folio unreachable tokenization",
    " supercalifragilistic",
    "Ελληνικά Русский",
]

# Random strings over the characters where the regexes' classes and alternatives meet
# (whitespace kinds, apostrophes and contraction letters, digits of every kind, marks,
# joiners), and random strings of any scalars (for \p{L}, \p{N}, \s over all of Unicode).
TRICKY = (list(" \t\n\r\x0b\x0c\x85\xa0\u1680\u2000\u2028\u2029\u202f\u3000\u180e\u200b\x1c")
          + list("'’sStTrReEvVmMlLdDſxZé") + list("019٣५Ⅻ½²") + list(".,!?-_()<>|")
          + ["\u0301", "\u0903", "\u200d", "中", "😀", "ǅ", "ʰ", "\U0001d400", "<|endoftext|>", "<|eot_id|>",
             "<mask>", " ünï cødé ", "<tool_call>"])


def random_strings():
    rng = random.Random(7)
    out = ["".join(rng.choice(TRICKY) for _ in range(rng.randint(1, 24))) for _ in range(200)]
    planes = [(0x20, 0x3000), (0x3000, 0xD800), (0xE000, 0x10000), (0x10000, 0x20000), (0x20000, 0x32000), (0xE0000, 0xE0080)]
    for _ in range(80):
        chars = []
        for _ in range(rng.randint(1, 16)):
            lo, hi = rng.choice(planes)
            chars.append(chr(rng.randrange(lo, hi)))
        out.append("".join(chars))
    return out


# Llama 3's vocabulary holds tokens that no merge produces; with ignore_merges a pre-token
# equal to one of them is emitted whole. These stand in for them.
# "'Å¿" is "'ſ": Oniguruma's (?i) folds ſ (U+017F) to s, so "'ſtop" is "'ſ" + "top" and the
# whole-token rule shows whether a tokenizer split it that way.
UNREACHABLE = ["ĠFolio", "Ġunreachable", "Ġsupercalifragilistic", "tokenization", "ĠÎķÎ»Î»Î·Î½Î¹ÎºÎ¬", "'Å¿"]


def train(pre_tokenizer, normalizer=None, ignore_merges=False, special=()):
    tok = Tokenizer(models.BPE(ignore_merges=ignore_merges))
    if normalizer is not None:
        tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1500,
        min_frequency=2,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=list(special),
        show_progress=False,
    )
    tok.train_from_iterator(corpus_lines(), trainer)
    return tok


def write(tok_json, flavor):
    d = os.path.join(OUT, flavor)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "tokenizer.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(tok_json, f, ensure_ascii=False, indent=1)
    size = os.path.getsize(path)
    assert size < 200_000, f"{path} is {size} bytes"
    return path


def gpt2():
    tok = train(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True), special=["<|endoftext|>"])
    tok.add_special_tokens(["<|endoftext|>", AddedToken("<mask>", lstrip=True, special=True, normalized=False),
                            AddedToken("<sep>", lstrip=True, rstrip=True, special=True, normalized=False)])
    tok.add_tokens([AddedToken("ünï cødé", single_word=True, normalized=True, special=False)])
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return json.loads(tok.to_str())


def gpt2_digits(gpt2_json):
    j = json.loads(json.dumps(gpt2_json))
    j["pre_tokenizer"] = {
        "type": "Sequence",
        "pretokenizers": [
            {"type": "Digits", "individual_digits": True},
            {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        ],
    }
    return j


def llama3():
    split = pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False)
    tok = train(pre_tokenizers.Sequence([split, pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]),
                ignore_merges=True)
    j = json.loads(tok.to_str())
    assert j["model"]["ignore_merges"] is True
    vocab = j["model"]["vocab"]
    for t in UNREACHABLE:
        if t not in vocab:
            vocab[t] = len(vocab)
    tok = Tokenizer.from_str(json.dumps(j))
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>", "<|eot_id|>"]
    tok.add_special_tokens(specials)
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(add_prefix_space=True, trim_offsets=False, use_regex=True),
        processors.TemplateProcessing(
            single="<|begin_of_text|> $A",
            pair="<|begin_of_text|> $A <|begin_of_text|>:1 $B:1",
            special_tokens=[("<|begin_of_text|>", bos)],
        ),
    ])
    return json.loads(tok.to_str())


def qwen2():
    split = pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False)
    tok = train(pre_tokenizers.Sequence([split, pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]),
                normalizer=normalizers.NFC())
    tok.add_special_tokens(["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    tok.add_tokens([AddedToken("<tool_call>", normalized=False, special=False),
                    AddedToken("</tool_call>", normalized=False, special=False),
                    AddedToken("café", normalized=True, special=False)])  # matched after NFC
    tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    j = json.loads(tok.to_str())
    # The legacy merges form ("a b" strings, a leading "#version" line is skipped).
    j["model"]["merges"] = ["#version: 0.2"] + [f"{a} {b}" for a, b in j["model"]["merges"]]
    return j


def variants():
    bl = lambda prefix, regex: {"type": "ByteLevel", "add_prefix_space": prefix, "trim_offsets": True, "use_regex": regex}
    split = lambda pattern, behavior, invert=False: {"type": "Split", "pattern": pattern, "behavior": behavior, "invert": invert}
    seq = lambda *p: {"type": "Sequence", "pretokenizers": list(p)}
    return [
        seq(split({"String": " "}, "Removed"), bl(False, False)),
        seq(split({"String": "e"}, "MergedWithPrevious"), bl(False, False)),
        seq(split({"String": "e"}, "MergedWithNext"), bl(False, False)),
        seq(split({"String": "th"}, "Contiguous"), bl(True, True)),
        seq(split({"String": ""}, "Isolated"), bl(False, True)),
        seq(split({"String": ""}, "MergedWithNext"), bl(False, False)),
        seq(split({"String": ""}, "Removed", invert=True), bl(False, False)),
        seq(split({"String": " "}, "Removed", invert=True), bl(False, False)),
        seq(split({"Regex": LLAMA3_PATTERN}, "Removed", invert=True), bl(False, False)),
        seq(split({"Regex": QWEN2_PATTERN}, "MergedWithNext", invert=True), bl(False, False)),
        seq(split({"Regex": GPT2_PATTERN}, "Contiguous"), bl(False, False)),
        seq(split({"Regex": QWEN2_PATTERN}, "Isolated"), bl(True, True)),
        seq({"type": "Digits", "individual_digits": False}, bl(False, True)),
        seq(bl(False, False), split({"Regex": GPT2_PATTERN}, "Isolated")),
        bl(True, False),
    ]


def main():
    g = gpt2()
    flavors = {"gpt2": g, "gpt2-digits": gpt2_digits(g), "llama3": llama3(), "qwen2": qwen2()}
    rng = random.Random(99)
    strings = TEST_STRINGS + random_strings()
    cases = {"strings": strings, "hand_written": len(TEST_STRINGS), "flavors": {}}
    for name, j in flavors.items():
        tok = Tokenizer.from_file(write(j, name))
        # To keep the file small, a value equal to the one it would repeat is null: ids with
        # special tokens equal to those without, a decode equal to the input string, a decode
        # skipping special tokens equal to the full one.
        entry = {"vocab_size": tok.get_vocab_size(with_added_tokens=True),
                 "ids": [], "ids_with_special": [], "decode": [], "decode_skip_special": [], "random_ids": []}
        for s in strings:
            plain = tok.encode(s, add_special_tokens=False).ids
            with_special = tok.encode(s, add_special_tokens=True).ids
            decoded = tok.decode(with_special, skip_special_tokens=False)
            skipped = tok.decode(with_special, skip_special_tokens=True)
            entry["ids"].append(plain)
            entry["ids_with_special"].append(None if with_special == plain else with_special)
            entry["decode"].append(None if decoded == s else decoded)
            entry["decode_skip_special"].append(None if skipped == decoded else skipped)
        n = tok.get_vocab_size(with_added_tokens=True)
        for _ in range(40):
            ids = [rng.randrange(n + 3) for _ in range(rng.randint(1, 12))]  # a few past the end
            entry["random_ids"].append({"ids": ids,
                                        "text": tok.decode(ids, skip_special_tokens=False),
                                        "text_skip_special": tok.decode(ids, skip_special_tokens=True)})
        cases["flavors"][name] = entry
    short = [s for s in TEST_STRINGS if len(s) < 200]
    cases["variant_strings"] = short
    cases["pre_tokenizer_variants"] = []
    for pre in variants():
        j = json.loads(json.dumps(g))
        j["pre_tokenizer"] = pre
        tok = Tokenizer.from_str(json.dumps(j))
        cases["pre_tokenizer_variants"].append({"pre_tokenizer": pre,
                                                "ids": [tok.encode(s, add_special_tokens=False).ids for s in short]})
    with open(os.path.join(OUT, "cases.json"), "w", encoding="utf-8") as f:
        json.dump(cases, f, ensure_ascii=False, separators=(",", ":"))
    print(f"{len(TEST_STRINGS)} hand-written and {len(strings) - len(TEST_STRINGS)} random strings, flavors: {', '.join(flavors)}")


if __name__ == "__main__":
    main()
