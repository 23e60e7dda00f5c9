#!/usr/bin/env python3
"""Writes Tests/Fixtures/encoders/<name>/: tiny random sentence-embedding models of five encoder
families (roberta, xlm-roberta, distilbert, mpnet, modernbert), each a complete
sentence-transformers folder, plus sentence-transformers' own token ids and float32 embeddings,
for the Swift encoder tests.

    python3 Tools/reference/make_encoder_fixtures.py [--out Tests/Fixtures/encoders] [--only NAME]

Needs torch, transformers (5.x), sentence-transformers (6.x), tokenizers, sentencepiece, safetensors
and numpy (versions are recorded in each reference.json); no network. Everything is built here:

- The model is the family's own transformers class (RobertaModel, XLMRobertaModel, DistilBertModel,
  MPNetModel, ModernBertModel) on a tiny config, float32, eager attention, saved by
  save_pretrained, so config.json and model.safetensors are exactly what transformers writes.
  Weights come from a torch.Generator seed (100 + family index) and are drawn wider than
  transformers' initialisation: std 1/sqrt(fan_in) for matrices, std 1 for token and position
  embedding tables, std 1 for MPNet's relative attention bias table, LayerNorm weights 1 +- 0.1,
  every bias +- 0.1. ModernBERT has 3 layers (full, sliding, full: global_attn_every_n_layers=2)
  and local_attention=8, so all but the shortest test sentences reach past the local window.
- The tokenizer is of the family's real kind, trained on the inline CORPUS (written for this
  script) and wrapped in the family's transformers tokenizer class, saved by save_pretrained
  (transformers 5 writes tokenizer.json and tokenizer_config.json; it no longer writes
  special_tokens_map.json):
    roberta      byte-level BPE (tokenizers BpeTrainer), RobertaTokenizer: ByteLevel pre-tokenizer
                 without prefix space, RobertaProcessing, <s>=0 <pad>=1 </s>=2 <unk>=3, <mask>
                 last (lstrip).
    xlm-roberta  a sentencepiece unigram model (sentencepiece trainer, nmt_nfkc normalisation,
                 unk=0 bos=1 eos=2 as XLM-R's own model) converted the way transformers converts
                 sentencepiece.bpe.model (XLMRobertaTokenizer.from_pretrained on a folder holding
                 only that file: XLMRobertaConverter.convert_from_spm shifts ids by the fairseq
                 offset, appends <mask> (lstrip, as XLM-R's), and the Precompiled normalizer carries
                 the nmt_nfkc charsmap; transformers 5's class adds WhitespaceSplit before Metaspace).
    distilbert   WordPiece (BertNormalizer lowercase, BertPreTokenizer; pieces learned by tokenizers'
                 BpeTrainer with "##" continuation marks, made deterministic: see train_wordpiece),
                 DistilBertTokenizer: [CLS] $A [SEP].
    mpnet        WordPiece as above, MPNetTokenizer: <s>=0 <pad>=1 </s>=2 <unk>=3 first, [UNK] as the
                 WordPiece unknown (as all-mpnet-base-v2), <mask> last (lstrip); transformers 5's
                 MPNetTokenizer writes a RobertaProcessing post-processor (<s> $A </s>).
    modernbert   byte-level BPE with an NFC normalizer, TemplateProcessing [CLS] $A [SEP], the special
                 tokens appended after the BPE vocabulary ([UNK] [CLS] [SEP] [PAD] [MASK], [MASK]
                 lstrip) and config vocab_size rounded up to a multiple of 64 (rows past the
                 tokenizer are unused), as ModernBERT's; wrapped in PreTrainedTokenizerFast.
- The sentence-transformers folder is SentenceTransformer(modules=[Transformer, Pooling, (Normalize)])
  saved by the installed sentence-transformers (its README.md model card is deleted):
    roberta mean + Normalize, xlm-roberta mean + Normalize, distilbert cls (no Normalize),
    mpnet mean + Normalize, modernbert max + Normalize.
  sentence-transformers 6 writes 1_Pooling/config.json as {"embedding_dimension", "pooling_mode",
  "include_prompt"}. Two folders are rewritten by hand to the older boolean style, which hub models
  carry: xlm-roberta gets the sentence-transformers 3.x keys (word_embedding_dimension, the six
  pooling_mode_*_tokens / lasttoken booleans, include_prompt) and distilbert the 2.x keys (the
  first four booleans only). The script reloads each folder and checks that the rewritten config
  selects the same pooling and gives the same embeddings.

Each folder holds
  config.json, model.safetensors           transformers' save_pretrained
  tokenizer.json, tokenizer_config.json    the tokenizer's save_pretrained (as re-saved by
                                           sentence-transformers, with model_max_length)
  modules.json, sentence_bert_config.json, config_sentence_transformers.json,
  1_Pooling/config.json, 2_Normalize/config.json (not distilbert)   sentence-transformers' save
  reference.json          sentences, max_seq_length (roberta 48, xlm-roberta 44, distilbert 36,
                          mpnet 40, modernbert 56), pooling, normalize, the token ids of each
                          sentence as SentenceTransformer.preprocess (formerly tokenize) gives them,
                          checks and versions; mpnet's also lists transformers' relative-position
                          bucket for every key-minus-query offset in [-129, 129]
  embeddings.npy          float32 [sentences, dim]: model.encode(SENTENCES) in one padded batch
  token_embeddings_0.npy  float32 [tokens, hidden]: the Transformer module's last hidden state for
                          sentence 0 (before pooling), for debugging
The script checks that encoding one sentence at a time matches the batch within 1e-6 (relative to
the largest component where that exceeds 1), that only the last sentence is truncated, that
tokenizer.json alone (tokenizers.Tokenizer.from_file, truncation at max_seq_length) gives the same
ids as sentence-transformers, and, for ModernBERT, that the local window changes the output. Two
runs write identical files.
"""
import argparse
import io
import json
import math
import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

# Training text for the tokenizers (written for this script). Several languages and scripts,
# code and numbers, so that each tokenizer learns multi-character pieces for them.
CORPUS = [
    "Folio keeps large embedding tables in memory-mapped files and reads one row per page.",
    "Each row is quantized to eight or four bits, and its scale sits right beside it.",
    "A converter reads safetensors, GGUF and PyTorch checkpoints and writes them back out.",
    "The inspector prints every table, its shape, its data type and its checksum.",
    "Sentence embeddings map a piece of text to a vector, so that similar texts land close together.",
    "Semantic search ranks documents by the meaning of a query rather than by shared keywords.",
    "The encoder reads the whole sentence at once, and every token attends to every other token.",
    "Mean pooling averages the token vectors; the first token can also stand for the sentence.",
    "Rows are looked up by token id, then projected and added to the hidden state of the model.",
    "We measured the time to read a thousand scattered rows from a file larger than memory.",
    "The quick grey wolf runs past the sleeping cat while the old dog watches from the porch.",
    "She bought three apples, two pears and a loaf of bread at the market on Saturday morning.",
    "Please reset my password, I cannot log in since the update last night.",
    "What is the capital of France? Paris is the capital and the largest city of France.",
    "Le café du matin est servi à sept heures, avec du pain, du beurre et de la confiture.",
    "Les élèves étudient à l'université de Montréal et préparent leurs examens d'été.",
    "Une crème brûlée, une tarte aux pommes et un thé noir, s'il vous plaît.",
    "Die Straße vor dem Bahnhof ist im Winter oft glatt, und die Busse fahren langsamer.",
    "Über den Bergen liegt Schnee, und die Kinder bauen einen großen Schneemann.",
    "¿Dónde está la biblioteca? ¡Aquí, al lado de la estación de tren!",
    "El niño come una manzana y la niña lee un libro en el jardín.",
    "Tiếng Việt có nhiều dấu, và người học cần luyện tập mỗi ngày.",
    "Zażółć gęślą jaźń, mówi polski nauczyciel swoim uczniom.",
    "Быстрая коричневая лиса прыгает через ленивую собаку.",
    "Ελληνικά: η γλώσσα έχει μακρά ιστορία και πλούσια γραμματεία.",
    "東京は大きな都市です。電車はとても便利で、毎日たくさんの人が乗ります。",
    "日本語の文章を読むのは楽しいです。漢字とひらがなとカタカナがあります。",
    "我喜欢吃苹果和香蕉。北京是中国的首都，上海是一个大城市。",
    "中文句子很短，但是意思很清楚。今天天气很好。",
    "한국어 문장입니다. 서울은 한국의 수도입니다.",
    "Ｆｕｌｌｗｉｄｔｈ letters ＡＢＣ and digits １２３ become ASCII after NFKC.",
    "The ﬁ and ﬂ ligatures, ① ② ③ circled digits and ™ signs appear in old documents.",
    "Emoji are common in chat: 😀 🎉 👍 👍🏽 ❤️ 🇫🇷 and 🚀 all show up.",
    "def square(x):\n    return x ** 2  # the power of two",
    "for (int i = 0; i < n; i++) { sum += a[i]; }",
    "SELECT name, COUNT(*) FROM users WHERE age > 30 GROUP BY name;",
    "let table = try Folio.open(path: url); let row = table.row(42)",
    "https://example.com/path?query=1&other=two#fragment",
    "Numbers: 3.14159, 2,718, -42, 1e-10, 0x1F, 1_000_000 and 12:34:56.",
    "The price rose 5% to $123.45 (€110) on Monday, 2026-11-29.",
    "I can't believe it's not butter! Don't you think so?",
    "tabs\tand\nnewlines and   several    spaces between words",
    "Combining marks: e\u0301 a\u0308 o\u0302 n\u0303 next to é ä ô ñ.",
    "MiXeD CaSe WoRdS and ALL CAPS SHOUTING and lower case whispering.",
    "supercalifragilistic antidisestablishmentarianism pneumonoultramicroscopic",
    "Fill the <mask> with a word, or the [MASK] with another one.",
]

SENTENCES = [
    "Folio keeps embedding tables in memory-mapped files.",
    "Café crème brûlée à Montréal, naïve façade, Straße.",
    "東京は大きな都市です。我喜欢吃苹果。",
    "Emoji 😀🎉 and thumbs 👍🏽 up ❤️",
    "def square(x):\n    return x ** 2  # power",
    "tabs\tand\nnewlines  and   runs    of spaces",
    "   leading and trailing spaces   ",
    "MiXeD CaSe and ALL CAPS, Ｆｕｌｌｗｉｄｔｈ ＡＢＣ１２３, ﬁ ligature",
    "Combining: e\u0301 a\u0308 n\u0303 and precomposed é ä ñ",
    "Fill the <mask> or [MASK] here.",
    "a",
    "",
    "Row lookups read one page per row, and each row keeps its scale right beside it.",
    "The encoder reads the whole sentence at once. Mean pooling averages the token vectors, the "
    "first token can stand for the sentence, and a long text like this one is cut at the maximum "
    "sequence length, so the last words never reach the model at all.",
]

# Per family: max_seq_length, pooling mode, Normalize module or not, 1_Pooling/config.json style.
FAMILIES = {
    "roberta": dict(max_seq_length=48, pooling="mean", normalize=True, pooling_style="st6"),
    "xlm-roberta": dict(max_seq_length=44, pooling="mean", normalize=True, pooling_style="st3"),
    "distilbert": dict(max_seq_length=36, pooling="cls", normalize=False, pooling_style="st2"),
    "mpnet": dict(max_seq_length=40, pooling="mean", normalize=True, pooling_style="st6"),
    "modernbert": dict(max_seq_length=56, pooling="max", normalize=True, pooling_style="st6"),
}


def training_text():
    # Repeated so that pieces reach the trainers' minimum frequencies.
    return CORPUS * 4


# ---------------------------------------------------------------- tokenizers

def train_bpe(vocab_size, special_tokens, normalizer=None):
    """Byte-level BPE as RoBERTa and ModernBERT have it: returns (vocab dict, merges list)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers
    tok = Tokenizer(models.BPE())
    if normalizer is not None:
        tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=special_tokens,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(training_text(), trainer=trainer)
    model = json.loads(tok.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return dict(model["vocab"]), merges


def train_wordpiece(vocab_size, special_tokens):
    """Lower-cased WordPiece as BERT-style tokenizers have it: returns the vocab dict.

    tokenizers' WordPieceTrainer numbers the "##" continuation pieces in hash-map order, so ties
    between equally frequent merges fall differently from run to run. The same training (a BPE
    trainer whose word-inner characters carry the "##" mark) is done deterministically here: the
    corpus is normalized and pre-tokenized by BertNormalizer and BertPreTokenizer, every character
    after a word's first is replaced by a private-use stand-in (numbered in code point order, so the
    trainer's alphabet is sorted), tokenizers' BpeTrainer learns the merges, and the stand-ins are
    turned back into "##" pieces."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    norm = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True)
    pre = pre_tokenizers.BertPreTokenizer()
    words = [[w for w, _ in pre.pre_tokenize_str(norm.normalize_str(line))] for line in training_text()]
    inner = sorted({c for line in words for w in line for c in w[1:]})
    stand_in = {c: chr(0xF0000 + i) for i, c in enumerate(inner)}
    back = {v: k for k, v in stand_in.items()}
    marked = [" ".join(w[0] + "".join(stand_in[c] for c in w[1:]) for w in line) for line in words]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - len(special_tokens), min_frequency=2, show_progress=False)
    tok.train_from_iterator(marked, trainer=trainer)
    learned = sorted(json.loads(tok.to_str())["model"]["vocab"].items(), key=lambda kv: kv[1])
    vocab = {t: i for i, t in enumerate(special_tokens)}
    for piece, _ in learned:
        text = "".join(back.get(c, c) for c in piece)
        vocab.setdefault("##" + text if piece[0] in back else text, len(vocab))
    return vocab


def tokenizer_roberta(d):
    from tokenizers import AddedToken
    from transformers import RobertaTokenizer
    vocab, merges = train_bpe(1000, ["<s>", "<pad>", "</s>", "<unk>"])
    vocab["<mask>"] = len(vocab)
    tok = RobertaTokenizer(vocab=vocab, merges=merges, add_prefix_space=False,
                           mask_token=AddedToken("<mask>", lstrip=True, rstrip=False, normalized=False, special=True))
    tok.save_pretrained(d)


def tokenizer_xlm_roberta(d):
    import sentencepiece as spm
    from tokenizers import AddedToken
    from transformers import XLMRobertaTokenizer
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(training_text()), model_writer=buf, model_type="unigram", vocab_size=1000,
        hard_vocab_limit=False, normalization_rule_name="nmt_nfkc", character_coverage=1.0,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, num_threads=1, shuffle_input_sentence=False, minloglevel=2)
    with tempfile.TemporaryDirectory() as src:
        with open(os.path.join(src, "sentencepiece.bpe.model"), "wb") as f:
            f.write(buf.getvalue())
        # <mask> eats the space before it, as in XLM-R's own tokenizer.json.
        tok = XLMRobertaTokenizer.from_pretrained(src, mask_token=AddedToken("<mask>", lstrip=True, rstrip=False,
                                                                             normalized=False, special=True))
        tok.save_pretrained(d)


def tokenizer_distilbert(d):
    from transformers import DistilBertTokenizer
    vocab = train_wordpiece(1000, ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    DistilBertTokenizer(vocab=vocab, do_lower_case=True).save_pretrained(d)


def tokenizer_mpnet(d):
    from transformers import MPNetTokenizer
    vocab = train_wordpiece(1000, ["<s>", "<pad>", "</s>", "<unk>", "[UNK]"])
    vocab["<mask>"] = len(vocab)
    MPNetTokenizer(vocab=vocab, do_lower_case=True, unk_token="[UNK]").save_pretrained(d)


def tokenizer_modernbert(d):
    from tokenizers import AddedToken, Tokenizer, models, normalizers, pre_tokenizers, processors, decoders
    from transformers import PreTrainedTokenizerFast
    vocab, merges = train_bpe(1000, ["<|endoftext|>"], normalizer=normalizers.NFC())
    for t in ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]:
        vocab[t] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    specials = [AddedToken(t, special=True, normalized=False, lstrip=(t == "[MASK]"))
                for t in ["<|endoftext|>", "[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]]
    tok.add_special_tokens(specials)
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0", pair="[CLS]:0 $A:0 [SEP]:0 $B:0 [SEP]:0",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]",
                                   pad_token="[PAD]", mask_token=specials[-1], clean_up_tokenization_spaces=True)
    fast.save_pretrained(d)
    return vocab


# ---------------------------------------------------------------- models

def make_model(name, tok_dir):
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(tok_dir)
    n = len(tok)
    if name == "roberta":
        from transformers import RobertaConfig, RobertaModel
        cfg = RobertaConfig(vocab_size=n, hidden_size=48, num_hidden_layers=2, num_attention_heads=4,
                            intermediate_size=96, max_position_embeddings=130, type_vocab_size=1,
                            layer_norm_eps=1e-5, hidden_act="gelu", pad_token_id=1, bos_token_id=0, eos_token_id=2)
        cls = RobertaModel
    elif name == "xlm-roberta":
        from transformers import XLMRobertaConfig, XLMRobertaModel
        cfg = XLMRobertaConfig(vocab_size=n, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                               intermediate_size=64, max_position_embeddings=130, type_vocab_size=1,
                               layer_norm_eps=1e-5, hidden_act="gelu", pad_token_id=1, bos_token_id=0, eos_token_id=2)
        cls = XLMRobertaModel
    elif name == "distilbert":
        from transformers import DistilBertConfig, DistilBertModel
        cfg = DistilBertConfig(vocab_size=n, dim=32, n_layers=2, n_heads=4, hidden_dim=64,
                               max_position_embeddings=128, activation="gelu", sinusoidal_pos_embds=False,
                               pad_token_id=0)
        cls = DistilBertModel
    elif name == "mpnet":
        from transformers import MPNetConfig, MPNetModel
        cfg = MPNetConfig(vocab_size=n, hidden_size=48, num_hidden_layers=2, num_attention_heads=4,
                          intermediate_size=96, max_position_embeddings=130, relative_attention_num_buckets=32,
                          layer_norm_eps=1e-5, hidden_act="gelu", pad_token_id=1, bos_token_id=0, eos_token_id=2)
        cls = MPNetModel
    elif name == "modernbert":
        from transformers import ModernBertConfig, ModernBertModel
        ids = {t: tok.convert_tokens_to_ids(t) for t in ["[CLS]", "[SEP]", "[PAD]"]}
        cfg = ModernBertConfig(vocab_size=64 * math.ceil(n / 64), hidden_size=64, num_hidden_layers=3,
                               num_attention_heads=4, intermediate_size=96, max_position_embeddings=128,
                               hidden_activation="gelu", norm_eps=1e-5, norm_bias=False, attention_bias=False,
                               mlp_bias=False, global_attn_every_n_layers=2, local_attention=8,
                               global_rope_theta=160000.0, local_rope_theta=10000.0,
                               pad_token_id=ids["[PAD]"], cls_token_id=ids["[CLS]"], sep_token_id=ids["[SEP]"],
                               bos_token_id=ids["[CLS]"], eos_token_id=ids["[SEP]"], classifier_pooling="mean")
        cls = ModernBertModel
    cfg._attn_implementation = "eager"
    model = cls(cfg).to(torch.float32).eval()
    return model


def randomize(model, gen):
    """Replaces every parameter by a seeded draw (see the module docstring)."""
    with torch.no_grad():
        for pname, p in sorted(model.named_parameters()):
            if p.ndim >= 2:
                if "relative_attention_bias" in pname or "embeddings" in pname:
                    std = 1.0
                else:
                    std = 1.0 / math.sqrt(p.shape[-1])
                p.copy_(torch.randn(p.shape, generator=gen) * std)
            elif pname.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
            else:  # LayerNorm weights
                p.copy_(1.0 + torch.randn(p.shape, generator=gen) * 0.1)


# ---------------------------------------------------------------- pooling configs

def old_pooling_config(dim, mode, style):
    """1_Pooling/config.json as sentence-transformers 2.x (st2) or 3.x (st3) wrote it."""
    cfg = {"word_embedding_dimension": dim,
           "pooling_mode_cls_token": mode == "cls",
           "pooling_mode_mean_tokens": mode == "mean",
           "pooling_mode_max_tokens": mode == "max",
           "pooling_mode_mean_sqrt_len_tokens": mode == "mean_sqrt_len_tokens"}
    if style == "st3":
        cfg["pooling_mode_weightedmean_tokens"] = mode == "weightedmean"
        cfg["pooling_mode_lasttoken"] = mode == "lasttoken"
        cfg["include_prompt"] = True
    return cfg


def load_st(d):
    from sentence_transformers import SentenceTransformer
    return SentenceTransformer(str(d), device="cpu",
                               model_kwargs={"attn_implementation": "eager", "dtype": torch.float32})


# ---------------------------------------------------------------- one family

def make(name, index, out):
    import safetensors
    import sentence_transformers
    import tokenizers
    import transformers
    from safetensors.torch import load_file
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Normalize, Transformer
    from sentence_transformers.sentence_transformer.modules import Pooling

    spec = FAMILIES[name]
    seed = 100 + index
    d = out / name
    if d.exists():
        shutil.rmtree(d)
    with tempfile.TemporaryDirectory() as hf:
        globals()["tokenizer_" + name.replace("-", "_")](hf)
        torch.manual_seed(seed)
        model = make_model(name, hf)
        randomize(model, torch.Generator().manual_seed(seed))
        model.save_pretrained(hf)
        saved = {k: v.clone() for k, v in load_file(os.path.join(hf, "model.safetensors")).items()}

        transformer = Transformer(hf, max_seq_length=spec["max_seq_length"],
                                  model_kwargs={"attn_implementation": "eager", "dtype": torch.float32})
        dim = transformer.get_embedding_dimension()
        modules = [transformer, Pooling(dim, pooling_mode=spec["pooling"])]
        if spec["normalize"]:
            modules.append(Normalize())
        st = SentenceTransformer(modules=modules, device="cpu")
        st.save(str(d))
    readme = d / "README.md"
    if readme.exists():
        readme.unlink()
    os.chmod(d / "model.safetensors", 0o644)  # written 0600 through a temporary file

    # model.safetensors is the checkpoint transformers wrote.
    again = load_file(str(d / "model.safetensors"))
    assert sorted(again) == sorted(saved), f"{name}: sentence-transformers saved other tensors"
    for k in saved:
        assert torch.equal(again[k], saved[k]), f"{name}: {k} changed on save"

    pooling_path = d / "1_Pooling" / "config.json"
    written_pooling = json.loads(pooling_path.read_text())
    st = load_st(d)
    if spec["pooling_style"] != "st6":
        before = st.encode(SENTENCES, batch_size=len(SENTENCES), convert_to_numpy=True)
        pooling_path.write_text(json.dumps(old_pooling_config(dim, spec["pooling"], spec["pooling_style"]),
                                           indent=2) + "\n")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            st = load_st(d)
        assert st[1].pooling_mode == spec["pooling"], f"{name}: old pooling config read as {st[1].pooling_mode}"
        after = st.encode(SENTENCES, batch_size=len(SENTENCES), convert_to_numpy=True)
        assert np.array_equal(before, after), f"{name}: old pooling config changes the embeddings"

    assert st.max_seq_length == spec["max_seq_length"]
    # Token ids as sentence-transformers feeds them to the model.
    ids = []
    for s in SENTENCES:
        f = st.preprocess([s])
        mask = f["attention_mask"][0].tolist()
        assert all(mask), f"{name}: padding in a batch of one"
        ids.append([int(t) for t in f["input_ids"][0].tolist()])
    # Only the last sentence is cut.
    truncated = [i for i, t in enumerate(ids) if len(t) == spec["max_seq_length"]]
    assert truncated == [len(SENTENCES) - 1], f"{name}: sentences {truncated} reach max_seq_length"
    full = st.tokenizer(SENTENCES[-1], verbose=False)["input_ids"]
    assert len(full) > spec["max_seq_length"], f"{name}: the long sentence fits"
    # tokenizer.json alone gives the same ids.
    from tokenizers import Tokenizer
    raw = Tokenizer.from_file(str(d / "tokenizer.json"))
    raw.no_padding()
    raw.enable_truncation(spec["max_seq_length"])
    for s, t in zip(SENTENCES, ids):
        assert raw.encode(s).ids == t, f"{name}: tokenizer.json gives {raw.encode(s).ids} for {s!r}, st {t}"

    emb = st.encode(SENTENCES, batch_size=len(SENTENCES), convert_to_numpy=True)
    single = np.stack([st.encode([s], batch_size=1, convert_to_numpy=True)[0] for s in SENTENCES])
    batch_vs_single = float(np.abs(emb - single).max())
    # float32 rounding differs between batch shapes: 1e-6 relative to the largest component (the
    # un-normalized DistilBERT vectors reach a few units).
    scale = max(1.0, float(np.abs(emb).max()))
    assert batch_vs_single <= 1e-6 * scale, f"{name}: batch and single encodings differ by {batch_vs_single}"
    with torch.no_grad():
        tok0 = st[0](st.preprocess([SENTENCES[0]]))["token_embeddings"][0].float().numpy()
    np.save(d / "embeddings.npy", emb.astype(np.float32))
    np.save(d / "token_embeddings_0.npy", tok0.astype(np.float32))

    checks = dict(batch_vs_single_max_abs=batch_vs_single, embeddings_max_abs=float(np.abs(emb).max()),
                  tokenizer_json_matches=True)
    if spec["pooling_style"] != "st6":
        checks["old_pooling_config_same_embeddings"] = True
    if name == "modernbert":
        # The local window matters: the same weights with a window wider than any sentence differ.
        from transformers import AutoModel
        wide = AutoModel.from_pretrained(str(d), attn_implementation="eager", dtype=torch.float32,
                                         local_attention=1024).eval()
        f = st.preprocess([SENTENCES[12]])
        with torch.no_grad():
            a = st[0](dict(f))["token_embeddings"][0]
            b = wide(input_ids=f["input_ids"], attention_mask=f["attention_mask"]).last_hidden_state[0]
        checks["local_window_effect_max_abs"] = float((a - b).abs().max())
        assert checks["local_window_effect_max_abs"] > 1e-2, f"{name}: the local window has no effect"

    if name == "mpnet":
        # transformers' bucket of every key-minus-query offset up to the table's reach, for the
        # Swift bucket function (float32 and float64 logs agree on every entry, boundaries included).
        from transformers.models.mpnet.modeling_mpnet import MPNetEncoder
        reach = 129
        buckets = MPNetEncoder.relative_position_bucket(torch.arange(-reach, reach + 1))
        checks["relative_position_buckets"] = dict(key_minus_query_from=-reach, key_minus_query_to=reach,
                                                   buckets=[int(b) for b in buckets])

    ref = dict(
        generator="Tools/reference/make_encoder_fixtures.py", family=name, seed=seed,
        semantics="SentenceTransformer(folder).encode(sentences) on CPU, float32, eager attention; "
                  "token ids from SentenceTransformer.preprocess (truncation to max_seq_length)",
        model_type=json.loads((d / "config.json").read_text())["model_type"],
        max_seq_length=spec["max_seq_length"], pooling=spec["pooling"], normalize=spec["normalize"],
        pooling_config_style={"st6": "as written by sentence-transformers " + sentence_transformers.__version__,
                              "st3": "rewritten by hand: sentence-transformers 3.x boolean keys",
                              "st2": "rewritten by hand: sentence-transformers 2.x boolean keys"}[spec["pooling_style"]],
        pooling_config_written=written_pooling,
        embedding_dim=int(emb.shape[1]), embeddings="embeddings.npy", token_embeddings_0="token_embeddings_0.npy",
        sentences=[dict(index=i, text=s, ids=t, truncated=i in truncated) for i, (s, t) in enumerate(zip(SENTENCES, ids))],
        checks=checks,
        versions={"transformers": transformers.__version__, "sentence-transformers": sentence_transformers.__version__,
                  "tokenizers": tokenizers.__version__, "torch": torch.__version__, "numpy": np.__version__,
                  "safetensors": safetensors.__version__,
                  **({"sentencepiece": __import__("sentencepiece").__version__} if name == "xlm-roberta" else {})},
    )
    text = json.dumps(ref, indent=1, ensure_ascii=False)
    # One line per id list.
    text = re.sub(r"\[\s*(-?\d+(?:,\s*-?\d+)*)\s*\]", lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]", text)
    (d / "reference.json").write_text(text + "\n")
    size = sum(f.stat().st_size for f in d.rglob("*") if f.is_file())
    print(f"{name} (seed {seed}): {size / 1e6:.2f} MB, vocab {len(st.tokenizer)}, dim {emb.shape[1]}, "
          f"tokens {[len(t) for t in ids]}, batch/single {batch_vs_single:.1e}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "Tests/Fixtures/encoders"))
    ap.add_argument("--only")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    import transformers
    transformers.utils.logging.disable_progress_bar()
    for i, name in enumerate(FAMILIES):
        if args.only and name != args.only:
            continue
        make(name, i, out)


if __name__ == "__main__":
    main()
