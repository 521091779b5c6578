"""Transcription of transformers' slow CLIPTokenizer (no ftfy) onto the reference's
primitives (unicodedata, regex, str.lower/split); see gen_oracle_cases.py."""
import regex as re, unicodedata, json, sys, random

def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b); cs.append(256 + n); n += 1
    return dict(zip(bs, [chr(c) for c in cs]))

def _is_whitespace(c):
    if c in " \t\n\r": return True
    return unicodedata.category(c) == "Zs"
def _is_control(c):
    if c in "\t\n\r": return False
    return unicodedata.category(c).startswith("C")
def _is_cjk(cp):
    return ((0x4E00 <= cp <= 0x9FFF) or (0x3400 <= cp <= 0x4DBF) or (0x20000 <= cp <= 0x2A6DF) or (0x2A700 <= cp <= 0x2B73F)
            or (0x2B740 <= cp <= 0x2B81F) or (0x2B820 <= cp <= 0x2CEAF) or (0xF900 <= cp <= 0xFAFF) or (0x2F800 <= cp <= 0x2FA1F))

def basic(text):
    out = []
    for c in text:
        cp = ord(c)
        if cp == 0 or cp == 0xFFFD or _is_control(c): continue
        out.append(" " if _is_whitespace(c) else c)
    text = "".join(out)
    out = []
    for c in text:
        if _is_cjk(ord(c)): out += [" ", c, " "]
        else: out.append(c)
    text = unicodedata.normalize("NFC", "".join(out))
    toks = [t.lower() for t in text.strip().split()]
    return " ".join(toks).strip().split()

class Tok:
    def __init__(self, d, pad):
        self.encoder = json.load(open(d + "/vocab.json"))
        merges = open(d + "/merges.txt", encoding="utf-8").read().strip().split("\n")[1 : 49152 - 256 - 2 + 1]
        merges = [tuple(m.split()) for m in merges]
        self.ranks = dict(zip(merges, range(len(merges))))
        self.cache = {"<|startoftext|>": "<|startoftext|>", "<|endoftext|>": "<|endoftext|>"}
        self.be = bytes_to_unicode()
        self.pat = re.compile(r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""", re.IGNORECASE)
        self.added = {"<|startoftext|>": 49406, "<|endoftext|>": 49407}
        if pad == "!": self.added["!"] = 0
        self.pad = self.added[pad] if pad in self.added else self.encoder[pad]
        self.split_re = re.compile("(" + "|".join(re.escape(s) for s in sorted(self.added, key=len, reverse=True)) + ")")
    def bpe(self, token):
        if token in self.cache: return self.cache[token]
        word = tuple(token[:-1]) + (token[-1] + "</w>",)
        pairs = set(zip(word, word[1:]))
        if not pairs: return token + "</w>"
        while True:
            bigram = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if bigram not in self.ranks: break
            first, second = bigram
            nw, i = [], 0
            while i < len(word):
                try: j = word.index(first, i)
                except ValueError: nw.extend(word[i:]); break
                else: nw.extend(word[i:j]); i = j
                if word[i] == first and i < len(word) - 1 and word[i + 1] == second:
                    nw.append(first + second); i += 2
                else:
                    nw.append(word[i]); i += 1
            word = tuple(nw)
            if len(word) == 1: break
            pairs = set(zip(word, word[1:]))
        w = " ".join(word); self.cache[token] = w; return w
    def tokenize(self, text):
        out = []
        for piece in self.split_re.split(text):
            if not piece: continue
            if piece in self.added: out.append(piece); continue
            t = " ".join(basic(piece))
            for m in re.findall(self.pat, t):
                m = "".join(self.be[b] for b in m.encode("utf-8"))
                out.extend(self.bpe(m).split(" "))
        return out
    def encode(self, text):
        ids = [self.added.get(t, self.encoder.get(t, 49407)) for t in self.tokenize(text)]
        ids = [49406] + ids[:75] + [49407]
        return ids + [self.pad] * (77 - len(ids))

POOL = list("abcxyzABCXYZ0123456789 .,!?'\"-_()[]<>|&;:/\\@#$%^*+=~`") + [" ", "  ", "\t", "\n", "\r\n",
    "'s", "'S", "'ſ", "'T", "'LL", "'re", "<|endoftext|>", "<|startoftext|>", "<|ENDOFTEXT|>", "<|start\u200boftext|>",
    "é", "e\u0301", "A\u030a", "ß", "ẞ", "İ", "ı", "Σ", "ΟΔΟΣ", "σ", "ς", "Ω", "ǅ", "ﬁ", "Ⅻ", "ⅻ", "½", "①", "²", "٣", "५",
    "東", "京", "タ", "한", "글", "가\u11a8", "🐱", "👩\u200d💻", "✨", "\u2028", "\u2029", "\u00a0", "\u2003", "\u3000", "\u200b",
    "\u00ad", "\ufeff", "\x07", "\x1c", "\x85", "\ue000", "\U000f0000", "\u0378", "\U00031350", "\U0001e4d0", "\u0cf3",
    "ʰ", "ˈ", "´", "·", "\u0345", "Ⓐ", "ⓐ", "ＡＢ", "ｆｕｌｌ", "\u0915\u094d\u0937", "ع", "ﷺ", "\u0e01\u0e34", "𝔸", "𝟙",
    "K", "Å", "\u212b", "ǈ", "ᾈ", "ﬀ", "ŉ", "\u0130\u0307", "Σ'", "Σ.", "aΣ", "AΣ.B", "ΑΣ\u0301", "\U0001F1FA\U0001F1F8", "#️⃣",
    "!!!", "!<|endoftext|>", "a!b", "\u200d", "\u034f", "\U000e0001", "\U000e0041"]

if __name__ == "__main__":
    g = "/work/shared/golden/tiny-sdxl/model/"
    t1, t2 = Tok(g + "tokenizer", "<|endoftext|>"), Tok(g + "tokenizer_2", "!")
    # self-check against golden vectors
    d = json.load(open("/work/shared/golden/tiny-sdxl/vectors/tokenizer.json"))
    for p in d["prompts"]:
        assert t1.encode(p["prompt"]) == p["tokenizer"]["input_ids"], p["index"]
        assert t2.encode(p["prompt"]) == p["tokenizer_2"]["input_ids"], p["index"]
    print("oracle matches golden", file=sys.stderr)
    rnd = random.Random(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
    cases = []
    for i in range(int(sys.argv[2]) if len(sys.argv) > 2 else 3000):
        s = "".join(rnd.choice(POOL) for _ in range(rnd.randint(1, 12)))
        cases.append({"prompt": s, "tokenizer": t1.encode(s), "tokenizer_2": t2.encode(s)})
    json.dump(cases, sys.stdout, ensure_ascii=True)
