"""Classification and top-k metrics vs scikit-learn (the reference) and brute-force definitions."""

import unittest

import numpy as np
from sklearn import metrics as skm

from SpineMetsCore.stats import (
    MissingValueError,
    SingleClassError,
    StatsInputError,
    binary_metrics,
    class_ranks,
    classification_metrics,
    confusion_matrix,
    roc_auc,
    roc_curve_points,
    top_k_accuracy,
)

CLASSES = ["lung", "breast", "prostate", "kidney"]


def make_multiclass(seed=0, n=200):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    logits = rng.normal(size=(n, 4))
    logits[np.arange(n), y] += 1.2
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    return np.array(CLASSES, dtype=object)[y], p


class TestAgainstSklearn(unittest.TestCase):
    def setUp(self):
        self.labels, self.p = make_multiclass()
        self.m = classification_metrics(self.labels, self.p, CLASSES, topk=3)
        self.pred = np.array(CLASSES, dtype=object)[self.p.argmax(axis=1)]

    def test_accuracy_precision_recall_f1(self):
        m, y, pred = self.m, self.labels, self.pred
        self.assertAlmostEqual(m["accuracy"], skm.accuracy_score(y, pred), places=12)
        for avg in ("macro", "weighted"):
            p, r, f, _ = skm.precision_recall_fscore_support(y, pred, labels=CLASSES, average=avg,
                                                             zero_division=0)
            self.assertAlmostEqual(m[f"precision_{avg}"], p, places=12)
            self.assertAlmostEqual(m[f"recall_{avg}"], r, places=12)
            self.assertAlmostEqual(m[f"f1_{avg}"], f, places=12)
        p, r, f, _ = skm.precision_recall_fscore_support(y, pred, labels=CLASSES, zero_division=0)
        for j, c in enumerate(CLASSES):
            self.assertAlmostEqual(m[f"precision[{c}]"], p[j], places=12)
            self.assertAlmostEqual(m[f"recall[{c}]"], r[j], places=12)
            self.assertAlmostEqual(m[f"f1[{c}]"], f[j], places=12)

    def sorted_columns(self):
        # sklearn wants probability columns in lexicographic label order
        order = np.argsort(CLASSES)
        return [CLASSES[i] for i in order], self.p[:, order]

    def test_auc_ovr(self):
        m = self.m
        labs, ps = self.sorted_columns()
        for avg in ("macro", "weighted"):
            ref = skm.roc_auc_score(self.labels, ps, multi_class="ovr", average=avg, labels=labs)
            self.assertAlmostEqual(m[f"auc_{avg}_ovr"], ref, places=12)
        for j, c in enumerate(CLASSES):
            self.assertAlmostEqual(m[f"auc[{c}]"], skm.roc_auc_score(self.labels == c, self.p[:, j]), places=12)

    def test_topk_accuracy_and_confusion(self):
        codes = np.array([CLASSES.index(v) for v in self.labels])
        for k in (1, 2, 3):
            ref = skm.top_k_accuracy_score(codes, self.p, k=k, labels=range(4))
            self.assertAlmostEqual(self.m[f"top{k}_accuracy"], ref, places=12)
            self.assertAlmostEqual(top_k_accuracy(self.labels, self.p, CLASSES, k), ref, places=12)
        self.assertAlmostEqual(self.m["top1_accuracy"], self.m["accuracy"], places=12)
        cm = confusion_matrix(self.labels, self.p, CLASSES)
        np.testing.assert_array_equal(cm, skm.confusion_matrix(self.labels, self.pred, labels=CLASSES))

    def test_brier(self):
        labs, ps = self.sorted_columns()
        onehot = (self.labels[:, None] == np.array(labs)[None, :]).astype(float)
        brier_1950 = np.mean(((ps - onehot) ** 2).sum(axis=1))
        self.assertAlmostEqual(self.m["brier"], brier_1950, places=12)
        try:  # multi-class brier_score_loss exists from scikit-learn 1.7
            ref = skm.brier_score_loss(self.labels, ps, labels=labs)
        except (TypeError, ValueError):
            ref = brier_1950
        self.assertAlmostEqual(self.m["brier"], ref, places=12)
        rng = np.random.default_rng(1)
        y = rng.integers(0, 2, 50)
        s = rng.random(50)
        m = classification_metrics(np.where(y == 1, "pos", "neg"), np.c_[1 - s, s], ["neg", "pos"])
        self.assertAlmostEqual(m["brier"], skm.brier_score_loss(y, s), places=12)
        self.assertEqual(m["auc"], m["auc[pos]"])  # default positive: the class sorting last
        self.assertAlmostEqual(m["sensitivity"], skm.recall_score(y, (s > 0.5).astype(int)), places=12)

    def test_topk_per_class_definitions(self):
        ranks = class_ranks(self.p)
        for k in (1, 2, 3):
            for j, c in enumerate(CLASSES):
                is_c = self.labels == c
                in_top = ranks[:, j] < k
                tp = np.sum(is_c & in_top)
                self.assertAlmostEqual(self.m[f"top{k}_recall[{c}]"], tp / is_c.sum(), places=12)
                self.assertAlmostEqual(self.m[f"top{k}_precision[{c}]"], tp / in_top.sum(), places=12)
                prec, rec = tp / in_top.sum(), tp / is_c.sum()
                self.assertAlmostEqual(self.m[f"top{k}_f1[{c}]"], 2 * prec * rec / (prec + rec), places=12)
        for key in ("recall", "precision", "f1"):
            for c in CLASSES:
                self.assertAlmostEqual(self.m[f"top1_{key}[{c}]"], self.m[f"{key}[{c}]"], places=12)
        m4 = classification_metrics(self.labels, self.p, CLASSES, topk=4)
        self.assertEqual(m4["top4_accuracy"], 1.0)
        self.assertNotIn("top5_accuracy", classification_metrics(self.labels, self.p, CLASSES, topk=5))


class TestConventions(unittest.TestCase):
    def test_ties_go_to_first_class(self):
        p = np.array([[0.4, 0.4, 0.2], [0.2, 0.4, 0.4], [1 / 3, 1 / 3, 1 / 3]])
        ranks = class_ranks(p)
        np.testing.assert_array_equal(ranks, [[0, 1, 2], [2, 0, 1], [0, 1, 2]])
        m = classification_metrics(["b", "c", "c"], p, ["a", "b", "c"], topk=2)
        self.assertAlmostEqual(m["accuracy"], 0.0)
        self.assertAlmostEqual(m["top1_accuracy"], m["accuracy"])
        self.assertAlmostEqual(m["top2_accuracy"], 2 / 3)

    def test_zero_division_is_zero(self):
        p = np.array([[0.9, 0.1, 0.0], [0.8, 0.1, 0.1], [0.1, 0.2, 0.7]])
        m = classification_metrics(["a", "b", "c"], p, ["a", "b", "c"])
        self.assertEqual(m["precision[b]"], 0.0)  # b never predicted
        self.assertEqual(m["f1[b]"], 0.0)

    def test_absent_class_auc_is_nan(self):
        p = np.array([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.5, 0.4, 0.1], [0.1, 0.8, 0.1]])
        m = classification_metrics(["a", "b", "a", "b"], p, ["a", "b", "c"])
        self.assertTrue(np.isnan(m["auc[c]"]))
        self.assertTrue(np.isnan(m["auc_macro_ovr"]))
        with self.assertRaises(SingleClassError):
            classification_metrics(["a", "b", "a", "b"], p, ["a", "b", "c"], require_all_classes=True)

    def test_numeric_labels_match_text_classes(self):
        p = np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
        m = classification_metrics([0, 1, 1.0], p, ["0", "1"])
        self.assertAlmostEqual(m["accuracy"], 2 / 3)

    def test_binary_metrics_threshold_is_inclusive(self):
        y = np.array([1, 1, 0, 0])
        s = np.array([0.5, 0.7, 0.5, 0.2])
        m = binary_metrics(y, s, threshold=0.5)
        self.assertEqual(m["sensitivity"], 1.0)
        self.assertEqual(m["specificity"], 0.5)
        self.assertAlmostEqual(m["auc"], skm.roc_auc_score(y, s))
        self.assertAlmostEqual(m["brier"], skm.brier_score_loss(y, s))
        self.assertAlmostEqual(m["f1"], skm.f1_score(y, s >= 0.5))

    def test_roc_curve_points_match_sklearn(self):
        rng = np.random.default_rng(4)
        y = rng.integers(0, 2, 60)
        s = np.round(rng.random(60), 1)
        fpr, tpr, _ = roc_curve_points(y, s)
        f_ref, t_ref, _ = skm.roc_curve(y, s, drop_intermediate=False)
        np.testing.assert_allclose(fpr, f_ref)
        np.testing.assert_allclose(tpr, t_ref)
        trapezoid = np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2)
        self.assertAlmostEqual(trapezoid, roc_auc(y, s), places=12)

    def test_errors_name_the_input(self):
        labels, p = make_multiclass(n=20)
        with self.assertRaises(StatsInputError) as ctx:
            classification_metrics(np.r_[labels[:-1], ["liver"]], p, CLASSES, truth_name="diagnosis")
        self.assertIn("diagnosis", str(ctx.exception))
        self.assertIn("liver", str(ctx.exception))
        bad = p.copy()
        bad[2, 1] = np.nan
        with self.assertRaises(MissingValueError) as ctx:
            classification_metrics(labels, bad, CLASSES)
        self.assertIn("breast", str(ctx.exception))
        bad[2, 1] = 1.5
        with self.assertRaises(StatsInputError):
            classification_metrics(labels, bad, CLASSES)
        with self.assertRaises(SingleClassError):
            classification_metrics(["lung"] * 20, p, CLASSES)
        with self.assertRaises(StatsInputError):
            classification_metrics(labels, p[:, :3], CLASSES)
        with self.assertRaises(SingleClassError):
            roc_auc(np.zeros(4), np.arange(4.0))


if __name__ == "__main__":
    unittest.main()
