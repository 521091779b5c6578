#!/usr/bin/env python3
"""Writes oracle_cases.json: extra tokenizer cases (Unicode edge cases, random
code points) with the ids of oracle.py, a transcription of transformers' slow
CLIPTokenizer path (BasicTokenizer cleaning, CLIP regex, BPE) onto the same
primitives the reference used (Python 3.11 unicodedata = Unicode 14.0.0, the
`regex` module, str.lower/str.split). oracle.py checks itself against every
golden vector before writing. Run from this folder:
    python3 gen_oracle_cases.py /path/to/golden/tiny-sdxl > oracle_cases.json"""
import json, random, sys
sys.argv += [] if len(sys.argv) > 1 else ["../../../../shared/golden/tiny-sdxl"]
import oracle

g = sys.argv[1] + "/model/"
t1, t2 = oracle.Tok(g + "tokenizer", "<|endoftext|>"), oracle.Tok(g + "tokenizer_2", "!")
d = json.load(open(sys.argv[1] + "/vectors/tokenizer.json"))
for p in d["prompts"]:
    assert t1.encode(p["prompt"]) == p["tokenizer"]["input_ids"] and t2.encode(p["prompt"]) == p["tokenizer_2"]["input_ids"]
rnd = random.Random(20261129)
prompts = []
for _ in range(250):
    prompts.append("".join(rnd.choice(oracle.POOL) for _ in range(rnd.randint(1, 12))))
for _ in range(150):
    chars = []
    for _ in range(rnd.randint(1, 10)):
        k = rnd.random()
        cp = rnd.randint(0x20, 0x7e) if k < 0.3 else rnd.randint(0x80, 0x3000) if k < 0.6 else rnd.randint(0x3000, 0xffff) if k < 0.85 else rnd.randint(0x10000, 0x10ffff)
        chars.append(chr(0x41 if 0xD800 <= cp <= 0xDFFF else cp))
    prompts.append("".join(chars))
def content(tok, s):  # untruncated content ids (no BOS/EOS/padding)
    return [tok.added.get(t, tok.encoder.get(t, 49407)) for t in tok.tokenize(s)]
cases = [{"prompt": s, "tokenizer": content(t1, s), "tokenizer_2": content(t2, s)} for s in prompts]
json.dump({"note": __doc__.split("\n\n")[0], "cases": cases}, sys.stdout, ensure_ascii=True, indent=0)
