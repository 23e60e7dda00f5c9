#!/usr/bin/env python3
"""SentencePiece-style tokenizer.json files and reference ids for Folio's tokenizers, written the
way transformers converts real checkpoints and checked with the Hugging Face `tokenizers` library.

    python3 Tools/reference/make_sentencepiece_fixtures.py

Trains small models with the `sentencepiece` package on the inline corpus below (no network),
converts them with transformers' own code (convert_slow_tokenizer's converters, or the
transformers 5 loaders that read a tokenizer.model), saves them with save_pretrained, and keeps
tokenizer.json and tokenizer_config.json of each under Tests/Fixtures/sentencepiece:
- llama2/: SentencePiece BPE (1000 pieces, byte_fallback, identity normalization, split digits,
  whitespace-only pieces) through LlamaConverter with legacy=True: normalizer
  Sequence[Prepend("▁"), Replace(" ", "▁")], no pre-tokenizer, decoder
  Sequence[Replace("▁", " "), ByteFallback, Fuse, Strip(" ", 1, 0)], a `<s>` TemplateProcessing
  (LlamaTokenizerFast, add_bos_token). This is the layout of the Llama 2 / TinyLlama / Mistral
  tokenizer.json files on the hub. Added tokens: `[INST]`, `[/INST]` (control pieces: special, in
  the vocabulary), `<tool>` (a user-defined piece: not special, in the vocabulary), and after the
  vocabulary `<think>` (not special, normalized) and `<|reserved_0|>` (special);
- llama2-metaspace/: the same model loaded from its tokenizer.model by transformers 5's
  LlamaTokenizer (the current, non-legacy layout): no normalizer, Metaspace(prepend_scheme first,
  split false), the same decoder, template and added tokens, and (as transformers 5 writes it)
  a null unk_token in the BPE model;
- gemma/: SentencePiece BPE with Gemma's settings (pad 0, eos 1, bos 2, unk 3, no dummy prefix,
  byte_fallback) through GemmaConverter: normalizer Replace(" ", "▁"), pre-tokenizer
  Split(" ", MergedWithPrevious), decoder Sequence[Replace, ByteFallback, Fuse], a `<bos>`
  template; `<mask>`, `<start_of_turn>`, `<end_of_turn>` special, `<tool>` not, and after the
  vocabulary `<think>` (not special) and `<image_soft_token>` (special);
- unigram/: SentencePiece Unigram with the nmt_nfkc rule (XLM-R's layout: unk 0, bos 1, eos 2 in
  the .model, shifted to `<s> <pad> </s> <unk>` + pieces + `<mask>`) through XLMRobertaConverter:
  normalizer Sequence[Precompiled(nmt_nfkc charsmap), Strip(right), Replace(/ {2,}/, "▁")],
  Metaspace(always, split true), decoder Metaspace, `<s> $A </s>`; `<ent>` (user-defined, not
  special) and after the vocabulary `<lang_xx>` (special) and `<url>` (not special);
- unigram-v5/: the same .model loaded by transformers 5's XLMRobertaTokenizer: normalizer
  Precompiled alone, pre-tokenizer Sequence[WhitespaceSplit, Metaspace(always, split true)];
- unigram-bytefallback/: a SentencePiece Unigram with byte_fallback and a small hand-written
  normalization rule table (so its Precompiled charsmap is small enough to check by hand, and
  holds keys that are prefixes of other keys), loaded by transformers 5's generic
  TokenizersBackend (SpmConverter.build_tokenizer_from_spm_proto): Unigram with byte_fallback,
  normalizer Sequence[Precompiled, Replace(/\\A +| +\\z/, ""), Replace(/ {2,}/, " "),
  Replace(" ", "▁"), Replace(/\\A▁/, "▁▁")], Metaspace(always, split false), decoder
  Sequence[Replace, ByteFallback, Fuse, Strip], a `$A </s>` template (add_eos_token, as T5-like
  models have); `<ctrl>` is a control piece (special);
- cases.json: the test strings (hand-written, then random ones over characters where the rules
  meet), and per flavor the ids of `encode(s, add_special_tokens=False/True)`, the decode of the
  latter (skip_special_tokens False and True) and random id lists with their decode (invalid
  byte sequences and ids past the end included); "charsmap_rules" lists the hand-written rules of
  unigram-bytefallback. Values equal to the one they would repeat are null (see main), as in the
  bpe fixtures.

Expectations are computed from the files as written (Tokenizer.from_file), so they are what
anyone loading these tokenizer.json files gets. Needs sentencepiece, protobuf, tokenizers and
transformers 5 (torch is not used).
"""
import io
import json
import os
import random
import shutil
import tempfile
import warnings

import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2
from tokenizers import AddedToken, Tokenizer
from transformers import GemmaTokenizerFast, LlamaTokenizerFast, XLMRobertaTokenizerFast
from transformers.convert_slow_tokenizer import (GemmaConverter, GemmaSentencePieceExtractor, LlamaConverter,
                                                 SentencePieceExtractor, XLMRobertaConverter)
from transformers.tokenization_utils_base import generate_merges
from transformers.tokenization_utils_tokenizers import TokenizersBackend

OUT = "Tests/Fixtures/sentencepiece"

CORPUS = [
    "Folio maps embedding tables from disk and reads one row per token without loading the file.",
    "A tokenizer turns text into pieces; SentencePiece treats the input as a raw stream of characters.",
    "The spaces become a visible marker, so the model can learn where words begin and end.",
    "Byte fallback spells a rare character as the bytes of its UTF-8 encoding instead of unknown.",
    "Unigram models keep the pieces that best explain the corpus and pick the most likely split.",
    "She sells sea shells by the sea shore, and the shells she sells are surely sea shells.",
    "How much wood would a woodchuck chuck if a woodchuck could chuck wood? Nobody knows.",
    "In 2023 the checkpoint had 6738415616 parameters, 32 layers and a vocabulary of 32000 pieces.",
    "Meet me at 10:45 on 2024-02-29, room 3B; bring 12 copies and $7.50 for the coffee.",
    "def encode(self, text):\n    pieces = self.sp.encode(text)\n    return [self.offset + p for p in pieces]\n",
    "while (i < n) {\n\tif (buf[i] == '\\n') lines++;\n\ti++;\n}\n",
    "SELECT name, count(*) FROM tokens GROUP BY name HAVING count(*) > 1;",
    "[INST] Write a haiku about autumn. [/INST] Red leaves drift and fall, the river carries them home.",
    "<start_of_turn>user\nWhat is the capital of France?<end_of_turn>\n<start_of_turn>model\nParis.<end_of_turn>",
    "<tool> lookup(city) </tool> returns the weather for the city you name.",
    "Crème brûlée, café au lait, naïve façade, jalapeño, Ångström, Straße, Zürich and São Paulo.",
    "Les élèves étudient à l'université ; ils préfèrent les exercices pratiques et le thé.",
    "Der schnelle braune Fuchs springt über den faulen Hund, während die Sonne scheint.",
    "Η γρήγορη καφέ αλεπού πηδάει πάνω από το τεμπέλικο σκυλί.",
    "Быстрая коричневая лиса прыгает через ленивую собаку, а кошка спит.",
    "東京は日本の首都です。私は毎朝コーヒーを飲みます。今日はいい天気ですね。",
    "我们今天去公园散步，天气很好，大家都很开心。你好，世界！",
    "안녕하세요. 오늘 날씨가 정말 좋네요. 만나서 반갑습니다.",
    "مرحبا بالعالم، كيف حالك اليوم؟",
    "नमस्ते दुनिया, आप कैसे हैं?",
    "Emoji: 😀 😂 👍 🎉 ❤️ 👋🏽 🇫🇷",
    "Whitespace:  two spaces,   three spaces,\ttab,\t\ttwo tabs.\n\nBlank line above.",
    "    indented by four\n        indented by eight\n",
    "Math: x² + y² = z², ½ + ¼ = ¾, π ≈ 3.14159, ∑ and ∫ and √2.",
    "Full-width ＡＢＣ１２３ and the ligatures ﬁ ﬂ ﬀ show up in old PDFs.",
    "email someone@example.com or visit https://example.org/docs?page=2#top today",
    "the of and to in is it that for on with as was by at be this are from or have an",
    "Hello world! Hello there. Hello, hello, HELLO. hello_world helloWorld",
]

TEST_STRINGS = [
    "",
    " ",
    "  ",
    "   ",
    "\n",
    "\n\n\n",
    "\t",
    "\r\n",
    " \n ",
    "a",
    "Hello world",
    " Hello world",
    "  Hello world",
    "Hello world ",
    "Hello world   ",
    "Hello  world",
    "Hello   world",
    "The quick brown fox jumps over the lazy dog.",
    "tokenizer tokenization tokenized",
    "1234567890 3.14 2024-02-29 10:45",
    "▁",
    "▁Hello",
    "▁▁Hello ▁ world▁",
    "Hello▁world",
    "def f(x):\n    return x ** 2\n",
    "\tif (a) {\n\t\tb();\n\t}\n",
    "line one\n\n\nline four",
    "trailing newline\n",
    "a\tb\t\tc",
    "café",
    "cafe\u0301",
    "Ångström",
    "A\u030angstro\u0308m",
    "\u212b",
    "\u0301",
    "e\u0301\u0301",
    "e\u0301\u0301\u0301",
    "\u1100\u1161\u11a8",
    "각",
    "Straße",
    "日本語のテキストです。",
    "你好，世界！",
    "안녕하세요",
    "𠀀𠀁",
    "Ελληνικά Русский",
    "مرحبا",
    "नमस्ते",
    "👍",
    "👋🏽 👋🏿",
    "👨\u200d👩\u200d👧\u200d👦",
    "🏳️\u200d🌈",
    "🇫🇷🇯🇵",
    "1️⃣",
    "😀😀😀",
    "\x00",
    "a\x00b",
    "\x07 bell",
    "\x1b[31mred\x1b[0m",
    "\x7f\x01\x02",
    "\u00a0nbsp\u00a0",
    "ideographic\u3000space",
    "zero\u200bwidth",
    "soft\u00adhyphen",
    "\ufeffBOM",
    "\ufffd",
    "ＡＢＣ１２３",
    "ｶﾀｶﾅ ｶﾞ",
    "ﬁ ﬂ ﬀ ﬃ",
    "ﬁ\u0301",
    "™ ① ㍻ … ¼",
    "x² H₂O",
    "ǅ ǈ",
    "Ⅻ",
    "<0x41>",
    "<unk>",
    "<s>",
    "</s>",
    "<pad>",
    "<s>Hello</s>",
    " <s> Hello </s> ",
    "[INST] Hello [/INST]",
    "[INST]Hello[/INST]",
    "<s>[INST] Hi [/INST] Sure.</s>",
    "[INST",
    "<tool>",
    "a<tool>b",
    "a <tool> b",
    "<think>",
    "a<think>b",
    "a <think> b",
    "<|reserved_0|>x",
    "<bos>Hello<eos>",
    "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n",
    "<start_of_turn><end_of_turn>",
    "<mask>",
    "a <mask> b",
    "<image_soft_token><image_soft_token>",
    "<ent>",
    "New <ent> York",
    "<lang_xx> text <url>",
    "<ctrl>",
    "x<ctrl>y",
    "email someone@example.com",
    "https://example.org/docs?page=2#top",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "the " * 40,
    "!!! ??? ... ,,, ;;;",
    "Crème brûlée, café au lait, naïve façade",
    "Folio zzzqqq xylophone",
]

# Characters where normalization, whitespace handling, byte fallback and added tokens meet.
TRICKY = (list(" \t\n\r\x00\x07\x1b\xa0\u3000\u200b\u200d▁") + list("aeEzé.,1")
          + ["e\u0301", "\u0301", "ﬁ", "Ａ", "ｶ", "ﾞ", "™", "①", "日", "각", "\u1100", "😀", "🏽", "𠀀",
             "<s>", "</s>", "[INST]", "<tool>", "<think>", "<start_of_turn>", "<mask>", "<ent>", "<ctrl>",
             " hello ", "world"])


def random_strings():
    rng = random.Random(11)
    out = ["".join(rng.choice(TRICKY) for _ in range(rng.randint(1, 16))) for _ in range(60)]
    planes = [(0x20, 0x3000), (0x3000, 0xD800), (0xE000, 0x10000), (0x10000, 0x20000), (0x20000, 0x32000)]
    for _ in range(20):
        out.append("".join(chr(rng.randrange(*rng.choice(planes))) for _ in range(rng.randint(1, 10))))
    return out


def corpus_lines():
    rng = random.Random(2024)
    lines = []
    for _ in range(12):
        lines.extend(CORPUS)
    words = " ".join(CORPUS).split()
    for _ in range(1500):
        lines.append(" ".join(rng.choice(words) for _ in range(rng.randint(3, 14))))
    for _ in range(150):
        lines.append(" ".join(str(rng.randint(0, 10 ** rng.randint(1, 7))) for _ in range(4)))
    return lines


# Hand-written normalization rules for unigram-bytefallback (source -> target, code points).
# "ﬁ" and "ﬁ\u0301" share a prefix: SentencePiece uses the longest match, tokenizers the first
# result of the trie's common-prefix search (the shortest) for a whole grapheme.
CHARSMAP_RULES = [
    ("ﬁ", "fi"),
    ("ﬁ\u0301", "FI"),
    ("Ａ", "A"),
    ("１", "1"),
    ("e\u0301", "é"),
    ("™", "TM"),
    ("\u00a0", " "),
    ("\u3000", " "),
    ("\t", " "),
    ("\u200b", ""),
    ("ｶﾞ", "ガ"),
    ("ｶ", "カ"),
    ("①", "(1)"),
]


def train(workdir, name, **options):
    """Trains a SentencePiece model on the corpus and returns the path of its .model file."""
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(corpus_lines()), model_writer=model,
                                   num_threads=1, minloglevel=2, **options)
    path = os.path.join(workdir, name, "tokenizer.model")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(model.getvalue())
    return path


def llama_model(workdir):
    return train(workdir, "llama", model_type="bpe", vocab_size=1000, byte_fallback=True,
                 normalization_rule_name="identity", add_dummy_prefix=True, remove_extra_whitespaces=False,
                 split_digits=True, allow_whitespace_only_pieces=True, character_coverage=0.9995,
                 unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
                 control_symbols=["[INST]", "[/INST]"], user_defined_symbols=["<tool>"])


def gemma_model(workdir):
    return train(workdir, "gemma", model_type="bpe", vocab_size=1000, byte_fallback=True,
                 normalization_rule_name="identity", add_dummy_prefix=False, remove_extra_whitespaces=False,
                 split_digits=True, allow_whitespace_only_pieces=True, character_coverage=0.9995,
                 pad_id=0, eos_id=1, bos_id=2, unk_id=3, pad_piece="<pad>", eos_piece="<eos>", bos_piece="<bos>",
                 user_defined_symbols=["<mask>", "<start_of_turn>", "<end_of_turn>", "<tool>"])


def xlmr_model(workdir):
    return train(workdir, "xlmr", model_type="unigram", vocab_size=800, normalization_rule_name="nmt_nfkc",
                 character_coverage=0.9995, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
                 user_defined_symbols=["<ent>"])


def unigram_bytefallback_model(workdir):
    tsv = os.path.join(workdir, "rules.tsv")
    with open(tsv, "w", encoding="utf-8") as f:
        for source, target in CHARSMAP_RULES:
            hexes = lambda s: " ".join(f"{ord(c):X}" for c in s)
            f.write(f"{hexes(source)}\t{hexes(target)}\n")
    return train(workdir, "unigram-bf", model_type="unigram", vocab_size=700, byte_fallback=True,
                 normalization_rule_tsv=tsv, character_coverage=0.9995, unk_id=0, bos_id=1, eos_id=2,
                 pad_id=-1, control_symbols=["<ctrl>"])


class MergesExtractor(SentencePieceExtractor):
    """The extractor interface SpmConverter.tokenizer calls for BPE models, `extract(vocab_scores)
    -> (vocab, merges)`, which transformers 5's SentencePieceExtractor lost (its `extract` now
    takes a model class, so LlamaConverter fails with AttributeError); the merges come from
    transformers' own generate_merges, ranked by piece score."""

    def extract(self, vocab_scores=None):
        vocab = {piece.piece: i for i, piece in enumerate(self.proto.pieces)}
        return vocab, generate_merges(vocab, vocab_scores)


class GemmaMergesExtractor(GemmaSentencePieceExtractor):
    """GemmaSentencePieceExtractor reads `self.sp`, which transformers 5 no longer sets."""

    def __init__(self, model):
        super().__init__(model)
        self.sp = spm.SentencePieceProcessor(model_file=model)


class Llama2Converter(LlamaConverter):
    SpmExtractor = MergesExtractor


class GemmaFixedConverter(GemmaConverter):
    SpmExtractor = GemmaMergesExtractor


class SlowStandIn:
    """The attributes of a slow (sentencepiece) tokenizer that the converters read.

    transformers 5 has no slow Llama, Gemma or XLM-R tokenizer left, but its converters still take
    one; this answers from the .model the way those classes did.
    """

    def __init__(self, vocab_file, offset=0, **attributes):
        proto = sentencepiece_model_pb2.ModelProto()
        with open(vocab_file, "rb") as f:
            proto.ParseFromString(f.read())
        self.vocab_file = vocab_file
        self.pieces = [p.piece for p in proto.pieces]
        self.offset = offset  # fairseq's shift of XLM-R's ids
        self.__dict__.update(attributes)

    def convert_ids_to_tokens(self, i):
        return self.pieces[i]

    def convert_tokens_to_ids(self, token):
        return {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}[token] if self.offset else self.pieces.index(token)


def save(tokenizer, workdir, flavor):
    """save_pretrained into a scratch folder, then keeps tokenizer.json and tokenizer_config.json."""
    scratch = os.path.join(workdir, "saved", flavor)
    tokenizer.save_pretrained(scratch)
    target = os.path.join(OUT, flavor)
    os.makedirs(target, exist_ok=True)
    shutil.copyfile(os.path.join(scratch, "tokenizer.json"), os.path.join(target, "tokenizer.json"))
    with open(os.path.join(scratch, "tokenizer_config.json"), encoding="utf-8") as f:
        config = json.load(f)
    # Paths of the scratch folder and flags of a local load say nothing about the tokenizer.
    config = {k: v for k, v in config.items()
              if k not in ("is_local", "local_files_only", "vocab_file") and workdir not in str(v)}
    with open(os.path.join(target, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, ensure_ascii=False, indent=2, sort_keys=True)
        f.write("\n")
    return os.path.join(target, "tokenizer.json")


def add_extra_tokens(tokenizer, plain, special):
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=True) for t in plain])
    tokenizer.add_special_tokens({"additional_special_tokens": special}, replace_extra_special_tokens=False)


def llama2(model, workdir):
    stand_in = SlowStandIn(model, legacy=True, add_prefix_space=True)
    backend = Llama2Converter(stand_in).converted()
    tok = LlamaTokenizerFast(tokenizer_object=backend, legacy=True, add_bos_token=True,
                             add_eos_token=False, unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    add_extra_tokens(tok, ["<think>"], ["<|reserved_0|>"])
    return save(tok, workdir, "llama2")


def llama2_metaspace(model, workdir):
    folder = os.path.dirname(model)
    tok = LlamaTokenizerFast.from_pretrained(folder, add_bos_token=True, add_eos_token=False)
    add_extra_tokens(tok, ["<think>"], ["<|reserved_0|>"])
    return save(tok, workdir, "llama2-metaspace")


def gemma(model, workdir):
    stand_in = SlowStandIn(model, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>", add_prefix_space=False)
    backend = GemmaFixedConverter(stand_in).converted()
    tok = GemmaTokenizerFast(tokenizer_object=backend, add_bos_token=True, add_eos_token=False)
    add_extra_tokens(tok, ["<think>"], ["<image_soft_token>"])
    return save(tok, workdir, "gemma")


def unigram(model, workdir):
    stand_in = SlowStandIn(model, offset=1, add_prefix_space=True)
    backend = XLMRobertaConverter(stand_in).converted()
    tok = XLMRobertaTokenizerFast(tokenizer_object=backend)
    add_extra_tokens(tok, ["<url>"], ["<lang_xx>"])
    return save(tok, workdir, "unigram")


def unigram_v5(model, workdir):
    folder = os.path.join(workdir, "xlmr-v5")
    os.makedirs(folder, exist_ok=True)
    shutil.copyfile(model, os.path.join(folder, "sentencepiece.bpe.model"))
    tok = XLMRobertaTokenizerFast.from_pretrained(folder)
    add_extra_tokens(tok, ["<url>"], ["<lang_xx>"])
    return save(tok, workdir, "unigram-v5")


def unigram_bytefallback(model, workdir):
    tok = TokenizersBackend.from_pretrained(os.path.dirname(model), add_bos_token=False, add_eos_token=True)
    return save(tok, workdir, "unigram-bytefallback")


def main():
    warnings.filterwarnings("ignore")
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    with tempfile.TemporaryDirectory() as workdir:
        llama, gem = llama_model(workdir), gemma_model(workdir)
        xlmr, ubf = xlmr_model(workdir), unigram_bytefallback_model(workdir)
        paths = {
            "llama2": llama2(llama, workdir),
            "llama2-metaspace": llama2_metaspace(llama, workdir),
            "gemma": gemma(gem, workdir),
            "unigram": unigram(xlmr, workdir),
            "unigram-v5": unigram_v5(xlmr, workdir),
            "unigram-bytefallback": unigram_bytefallback(ubf, workdir),
        }
    rng = random.Random(5)
    strings = TEST_STRINGS + random_strings()
    cases = {"strings": strings, "hand_written": len(TEST_STRINGS),
             "charsmap_rules": [{"from": s, "to": t} for s, t in CHARSMAP_RULES], "flavors": {}}
    for name, path in paths.items():
        tok = Tokenizer.from_file(path)
        # A value equal to the one it would repeat is null: ids with special tokens equal to those
        # without, a decode equal to the input string, a decode skipping special tokens equal to
        # the full one.
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
        byte_ids = sorted(i for t, i in tok.get_vocab().items() if len(t) == 6 and t.startswith("<0x"))
        for k in range(40):
            if k % 2 and byte_ids:  # byte tokens among ordinary ones: runs of valid and invalid UTF-8
                ids = [rng.choice(byte_ids) if rng.random() < 0.6 else rng.randrange(n) for _ in range(rng.randint(1, 10))]
            else:
                ids = [rng.randrange(n + 3) for _ in range(rng.randint(1, 12))]  # a few past the end
            entry["random_ids"].append({"ids": ids,
                                        "text": tok.decode(ids, skip_special_tokens=False),
                                        "text_skip_special": tok.decode(ids, skip_special_tokens=True)})
        cases["flavors"][name] = entry
    with open(os.path.join(OUT, "cases.json"), "w", encoding="utf-8") as f:
        json.dump(cases, f, ensure_ascii=False, separators=(",", ":"))
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(OUT) for f in fs)
    assert total < 1_500_000, f"{OUT} holds {total} bytes"
    print(f"{len(TEST_STRINGS)} hand-written and {len(strings) - len(TEST_STRINGS)} random strings, "
          f"flavors: {', '.join(paths)}; {total} bytes")


if __name__ == "__main__":
    main()
