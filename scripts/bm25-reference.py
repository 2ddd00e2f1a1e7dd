"""Reference BM25 sparse vectors from fastembed itself, for test/bm25.test.ts.

Runs the real `SparseTextEmbedding("Qdrant/bm25")` code path (the one mem0 2.x
calls) on a fixed set of texts and prints its document (`embed`) and query
(`query_embed`) vectors as JSON. It needs no network: the Qdrant/bm25 "model"
is only a stop word file, which this script writes (NLTK's English list, the
content of the model's english.txt) unless --model-dir points at a downloaded
snapshot of the Hugging Face repo Qdrant/bm25.

    python3.12 -m venv /tmp/bm25-venv
    /tmp/bm25-venv/bin/pip install fastembed==0.9.1
    /tmp/bm25-venv/bin/python scripts/bm25-reference.py > test/fixtures/bm25-reference.json

Python 3.12 matches mem0's python:3.12-slim image (Unicode 15.0 for `re` and
str.lower()).
"""

import argparse
import json
import sys
import tempfile
import unicodedata
from importlib.metadata import version
from pathlib import Path

from fastembed import SparseTextEmbedding

NLTK_ENGLISH_STOPWORDS = """
i me my myself we our ours ourselves you you're you've you'll you'd your yours yourself
yourselves he him his himself she she's her hers herself it it's its itself they them their
theirs themselves what which who whom this that that'll these those am is are was were be been
being have has had having do does did doing a an the and but if or because as until while of at
by for with about against between into through during before after above below to from up down
in out on off over under again further then once here there when where why how all any both each
few more most other some such no nor not only own same so than too very s t can will just don
don't should should've now d ll m o re ve y ain aren aren't couldn couldn't didn didn't doesn
doesn't hadn hadn't hasn hasn't haven haven't isn isn't ma mightn mightn't mustn mustn't needn
needn't shan shan't shouldn shouldn't wasn wasn't weren weren't won won't wouldn wouldn't
""".split()

TEXTS = [
    "User prefers dark roast coffee",
    "Prefers dark roast coffee; dislikes decaf. Drinks 2 cups/day!",
    "user prefer dark roast coffee morning",
    "DARK Roast COFFEE, dark roast coffee... Dark roast!",
    "coffee coffee coffee tea tea coffee",
    "Allergic to peanuts, peanut butter and peanut oil - carries an EpiPen.",
    "Meeting with Dr. O'Brien on 2024-03-15 at 10:30am re: Q1 budget ($12,500).",
    "I'm sure she's done it; don't worry, we'll see. It's the user's car.",
    "I am not here, and you are not there.",
    "",
    "   ",
    "!!! ... ??? --- *** (( )) [] {} <> @#$%^&*",
    "Phone 555-0100, ZIP 94103, pi=3.14159, 1st 2nd 3rd 10th 1990s",
    "api_key rotated; _ __ ___ user_id=alice_42 __init__",
    "Lives in São Paulo; loves café au lait and crème brûlée. Straße, naïve résumé, Ñandú.",
    "cafe\u0301 decomposed vs caf\u00e9 composed",
    "ΟΔΥΣΣΕΑΣ ΚΑΙ ΟΔΟΣ ταξίδια",
    "İstanbul TRIP planned; DİYARBAKIR ıi",
    "用户喜欢咖啡 Пользователь любит кофе 東京に住んでいる",
    "Loves 🍕 pizza🍕and 🎸guitar 👍🏽",
    "𝐜𝐨𝐟𝐟𝐞𝐞 lover, 𝐱ies 𝐱ying a𝐱ing 𐐨ied",
    "ＵＳＥＲ ｌｉｋｅｓ ｃｏｆｆｅｅ ﬁnance ǅemal Ⅻ ½ ²",
    "tabs\tand\nnewlines\r\nand\u00a0nbsp\u3000ideographic\x1cfile\x85nel\ufeffbom\u200bzwsp",
    "pneumonoultramicroscopicsilicovolcanoconiosis is long",
    "a" * 40 + " " + "b" * 41 + " " + "é" * 40 + " " + "𝐱" * 40 + " " + "𝐱" * 41,
    "generously generate generation communism arsenal universal skies dying news",
    "ad1u66pi",
    "haught leeway leeway",
    "leeway leeway haught",
    "The user's favourite programming languages are Python, TypeScript and Rust. "
    "They work remotely from Lisbon and prefer async communication over meetings. " * 20,
]


def sparse(embedding, sort=False):
    pairs = zip(embedding.indices.tolist(), embedding.values.tolist())
    if sort:  # query_embed returns a Python set's order, which means nothing
        pairs = sorted(pairs)
    indices, values = zip(*pairs) if embedding.indices.size else ((), ())
    return {"indices": list(indices), "values": list(values)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", help="a downloaded snapshot of the HF repo Qdrant/bm25")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        model_dir = Path(args.model_dir or scratch)
        if not args.model_dir:
            (model_dir / "english.txt").write_text("\n".join(NLTK_ENGLISH_STOPWORDS) + "\n")
            (model_dir / "config.json").write_text("{}")
        model = SparseTextEmbedding(
            "Qdrant/bm25", specific_model_path=str(model_dir), local_files_only=True
        )
        stopwords = (model_dir / "english.txt").read_text().splitlines()
        cases = [
            {
                "text": text,
                "document": sparse(next(iter(model.embed([text])))),
                "query": sparse(next(iter(model.query_embed(text))), sort=True),
            }
            for text in TEXTS
        ]

    json.dump(
        {
            "generator": "scripts/bm25-reference.py",
            "fastembed": version("fastembed"),
            "py_rust_stemmers": version("py_rust_stemmers"),
            "mmh3": version("mmh3"),
            "python": sys.version.split()[0],
            "unicode": unicodedata.unidata_version,
            "stopwords": stopwords,
            "cases": cases,
        },
        sys.stdout,
        ensure_ascii=False,
        indent=1,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
