"""EmoSense results table: the trained model vs honest baselines on the same test split.

    python -m benchmarks.emosense_baselines [--quick] [--json PATH] \
        [--entmax-workdir DIR] [--softmax-workdir DIR] [--data-dir DIR]

Rows (all on the word-disjoint test split of emojax_senses):
  majority          R@k ranks emotions by training-label frequency; the emotion set predicted
                    for every scene is the most frequent training set
  logreg(MiniLM)    logistic regression on the frozen all-MiniLM-L6-v2 embeddings of the five
                    identifiers (concatenated, 5 x 384): multinomial for R@k, one-vs-rest with a
                    0.5 threshold for the emotion sets
  EmoSense entmax   a trained workdir (make quickstart), R@k from the senses->emotion retrieval
                    and from the head, sets = support of the alpha-entmax head
  EmoSense softmax  the same model trained with
                    emojax quickstart emosense --set=model.head_normalizer='softmax' \
                        --workdir=workdirs/quickstart/emosense_softmax   (sets: p > 1/8)
Workdirs not given or not trained are skipped (train them with `emojax quickstart emosense`).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from emojax.models.emosense import evaluation as ev


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="2000 training scenes for the baselines")
    p.add_argument("--json", default=None, help="write the rows to this JSON file")
    p.add_argument("--entmax-workdir", default="workdirs/quickstart/emosense")
    p.add_argument("--softmax-workdir", default="workdirs/quickstart/emosense_softmax")
    p.add_argument("--data-dir", default=None, help="TFDS data dir of emojax_senses")
    return p.parse_args()


def load_split(split: str, data_dir: str | None, limit: int | None = None) -> dict:
    from emojax.data import senses

    source = senses.load_source(split, data_dir=data_dir)
    n = len(source) if limit is None else min(limit, len(source))
    rows = [source[i] for i in range(n)]
    keys = ("word_ids", "label", "emotion_multi_hot")
    return {k: np.stack([np.asarray(r[k]) for r in rows]) for k in keys}


def majority(train: dict, test: dict) -> dict:
    counts = np.bincount(train["label"], minlength=8).astype(np.float64)
    scores = np.broadcast_to(counts, (len(test["label"]), 8))
    sets, freq = np.unique(train["emotion_multi_hot"], axis=0, return_counts=True)
    top_set = sets[np.argmax(freq)].astype(bool)
    predicted = np.broadcast_to(top_set, test["emotion_multi_hot"].shape)
    return {
        "r1": ev.recall_at(scores, test["label"], 1),
        "r5": ev.recall_at(scores, test["label"], 5),
        "macro_f1": ev.macro_f1(predicted, test["emotion_multi_hot"]),
    }


def logreg_minilm(train: dict, test: dict, cache_dir: str | None = None) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    from emojax.data import senses
    from emojax.models.emosense.text import identifier_table

    table = identifier_table(senses.vocabulary(), None, cache_dir)
    features = lambda split: table[split["word_ids"]].reshape(len(split["word_ids"]), -1)
    x_train, x_test = features(train), features(test)
    clf = LogisticRegression(max_iter=500, C=1.0).fit(x_train, train["label"])
    scores = np.full((len(x_test), 8), -np.inf)
    scores[:, clf.classes_] = clf.predict_log_proba(x_test)
    multi = OneVsRestClassifier(LogisticRegression(max_iter=500, C=1.0)).fit(
        x_train, train["emotion_multi_hot"]
    )
    return {
        "r1": ev.recall_at(scores, test["label"], 1),
        "r5": ev.recall_at(scores, test["label"], 5),
        "macro_f1": ev.macro_f1(multi.predict(x_test) > 0.5, test["emotion_multi_hot"]),
    }


def trained(workdir: str) -> dict | None:
    report = os.path.join(workdir, "report", "report.json")
    if not os.path.exists(report):
        return None
    with open(report) as f:
        m = json.load(f)
    return {
        "r1": m["senses_emotion_r1"],
        "r5": m["senses_emotion_r5"],
        "head_r1": m["head_r1"],
        "head_r5": m["head_r5"],
        "macro_f1": m["macro_f1"],
        "head_alpha": m["head_alpha"],
        "view_alpha": m["view_alpha"],
        "steps": json.load(open(os.path.join(workdir, "config.json")))["train"]["num_steps"],
    }


def main() -> None:
    args = parse_args()
    start = time.perf_counter()
    train = load_split("train", args.data_dir, 2000 if args.quick else None)
    test = load_split("test", args.data_dir)
    cache = os.path.join(args.entmax_workdir, "cache")
    rows = {
        "majority": majority(train, test),
        "logreg(MiniLM)": logreg_minilm(train, test, cache if os.path.isdir(cache) else None),
    }
    for name, workdir in (
        ("EmoSense entmax", args.entmax_workdir),
        ("EmoSense softmax", args.softmax_workdir),
    ):
        result = trained(workdir)
        if result is None:
            print(f"(skipping {name}: no report in {workdir}; run python -m emojax.quickstart)")
        else:
            rows[name] = result
    fmt = lambda v: "-" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))
    header = ["method", "R@1", "R@5", "head R@1", "head R@5", "macro-F1", "alpha head/view"]
    print(f"\nEmoSense results, test split ({len(test['label'])} scenes, word-disjoint)")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for name, r in rows.items():
        alphas = f"{r['head_alpha']:.3f} / {r['view_alpha']:.3f}" if "head_alpha" in r else "-"
        cells = [
            name,
            fmt(r["r1"]),
            fmt(r["r5"]),
            fmt(r.get("head_r1")),
            fmt(r.get("head_r5")),
            fmt(r["macro_f1"]),
            alphas,
        ]
        print("| " + " | ".join(cells) + " |")
    print(f"\n({time.perf_counter() - start:.0f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"test_examples": int(len(test["label"])), "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
