"""The region growing's speed-ups give bit-identical results to the plain computations they replace."""

import types
import unittest
from unittest import mock

import numpy as np
import SimpleITK as sitk
from SpineMetsSegmentLib import region_growing as rg
from SpineMetsSegmentLib.seeds import RAS_TO_LPS


def plain_probability(feats, lesion, background, weights, cap):
    """The whole-array computation of every class pair (what the cached, column-wise one must equal)."""
    wsum = float(weights.sum())
    best = np.full(len(feats), -np.inf, dtype=np.float32)
    for fg_med, fg_spread in lesion:
        llr = np.full(len(feats), np.inf, dtype=np.float32)
        for bg_med, bg_spread in background:
            if np.all((np.abs(bg_med - fg_med) / fg_spread)[weights > 0] < 1.5):
                continue
            pooled = np.sqrt((bg_spread**2 + fg_spread**2) / 2.0)
            z_fg = np.minimum(((feats - fg_med) / pooled) ** 2, cap * cap)
            z_bg = np.minimum(((feats - bg_med) / pooled) ** 2, cap * cap)
            llr = np.minimum(llr, (0.5 * ((z_bg - z_fg) * weights).sum(axis=1) / wsum * len(weights)).astype(np.float32))
        best = np.maximum(best, np.where(np.isinf(llr), 0.0, llr))
    return (1.0 / (1.0 + np.exp(-np.clip(best, -30, 30)))).astype(np.float32)


def plain_output_grid(session, mask):
    """The whole-crop resampling onto the fine grid."""
    image = sitk.GetImageFromArray(mask.astype(np.float32))
    image.CopyInformation(session.crop)
    fine = sitk.Resample(image, session.output_grid, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    return sitk.GetArrayViewFromImage(fine) >= 0.5


def random_class(rng, channels, centre=0.0):
    return rng.normal(centre, 1.0, channels).astype(np.float32), rng.uniform(0.05, 0.6, channels)


class LesionProbabilityTest(unittest.TestCase):
    def check(self, feats, weights):
        rng = np.random.default_rng(feats.shape[1])
        channels = feats.shape[1]
        lesion = [random_class(rng, channels)]
        background = [random_class(rng, channels, 1.5) for _ in range(4)]
        background.append((lesion[0][0] + np.float32(0.01), lesion[0][1]))  # like the lesion: skipped
        cache = {}
        steps = [(lesion, background)]
        steps.append((lesion, [*background, random_class(rng, channels, -1.0)]))  # a background click
        steps.append((steps[-1][0] + [random_class(rng, channels)], steps[-1][1]))  # a foreground click
        steps.append((lesion, background[:3]))  # clicks undone, a class taken away
        for fg, bg in steps:
            expected = plain_probability(feats, fg, bg, weights, 10.0)
            self.assertTrue(np.array_equal(rg._lesion_probability(feats, fg, bg, weights, 10.0, cache), expected))
            self.assertTrue(np.array_equal(rg._lesion_probability(feats, fg, bg, weights, 10.0), expected))
            self.assertGreater(float(expected.max() - expected.min()), 0.5)  # a real decision, not a constant

    def test_rays_layout_four_sequences(self):
        feats = np.random.default_rng(0).normal(0.5, 1.2, (6, 7, 30, 4)).astype(np.float32).reshape(-1, 4)
        self.check(feats, np.array([1.0, 1.0, 0.5, 0.0]))

    def test_voxel_layout_one_sequence(self):
        channels = np.random.default_rng(1).normal(0.5, 1.2, (1, 9, 10, 11)).astype(np.float32)
        self.check(channels.reshape(1, -1).T, np.array([1.0]))


class OutputGridTest(unittest.TestCase):
    def check(self, size, spacing, shrink, mask_from):
        fine = sitk.Image(list(size), sitk.sitkFloat32)
        fine.SetSpacing(spacing)
        fine.SetOrigin((3.0, -7.0, 11.0))
        session = types.SimpleNamespace(shrink=list(shrink), output_grid=fine, crop=sitk.BinShrink(fine, list(shrink)))
        shape = session.crop.GetSize()[::-1]
        mask = mask_from(np.zeros(shape, dtype=bool))
        out = rg.RegionGrowingSession.to_output_grid(session, mask)
        expected = plain_output_grid(session, mask)
        self.assertEqual(out.shape, expected.shape)
        self.assertTrue(np.array_equal(out, expected))
        return int(expected.sum())

    def test_bounding_box_resampling_equals_whole_crop(self):
        def blob(m):
            m[1:3, 2:5, 3:7] = True
            return m

        def border(m):
            m[0, :, -1] = True
            m[-1, -1, :] = True
            return m

        def single(m):
            m[m.shape[0] // 2, m.shape[1] // 2, 0] = True
            return m

        for size, spacing, shrink in (((23, 17, 9), (0.3, 0.3, 2.0), (2, 2, 1)), ((20, 19, 8), (0.2, 0.25, 0.3), (3, 2, 2))):
            for make in (blob, border, single):
                with self.subTest(size=size, shrink=shrink, mask=make.__name__):
                    self.assertGreater(self.check(size, spacing, shrink, make), 0)
            self.assertEqual(self.check(size, spacing, shrink, lambda m: m), 0)


class SessionCacheTest(unittest.TestCase):
    def test_cached_clicks_equal_uncached(self):
        """A click sequence gives the same masks with the session's class-pair cache as without it."""
        size, spacing = (56, 52, 8), (0.3, 0.3, 2.0)  # fine in-plane voxels: the block-averaged path too
        rng = np.random.default_rng(3)
        k, j, i = np.meshgrid(*[np.arange(n) for n in size[::-1]], indexing="ij")
        mm = np.stack([i * spacing[0], j * spacing[1], k * spacing[2]], axis=-1) - np.array([8.0, 7.5, 7.0])
        inside = np.linalg.norm(mm / np.array([1.0, 1.0, 1.2]), axis=-1) <= 4.5
        images = {}
        for name, (lesion, other) in (("T1", (300.0, 800.0)), ("T2", (900.0, 400.0))):
            image = sitk.GetImageFromArray((np.where(inside, lesion, other) * (1 + 0.08 * rng.standard_normal(k.shape))).astype(np.float32))
            image.SetSpacing(spacing)
            images[name] = image
        ras = lambda point: tuple(float(v) for v in np.asarray(point) * RAS_TO_LPS)  # noqa: E731
        centre, roi = ras((8.0, 7.5, 7.0)), (*ras((1.5, 1.0, 0.5)), *ras((14.5, 14.0, 13.5)))
        clicks = [(ras((12.5, 7.5, 7.0)), False), (ras((4.0, 7.5, 7.0)), True), (ras((8.0, 12.5, 7.0)), False)]
        cached = rg.RegionGrowingSession(images, centre, roi)
        self.assertGreater(max(cached.shrink), 1)
        masks = [cached.to_output_grid(cached.segment_clicks(clicks[:n])[0]) for n in range(len(clicks) + 1)]
        with mock.patch.object(rg.RegionGrowingSession, "_pair_cache", lambda self, name: {}):
            plain = rg.RegionGrowingSession(images, centre, roi)
            for n, mask in enumerate(masks):
                self.assertTrue(np.array_equal(plain.segment_clicks(clicks[:n])[0], cached.segment_clicks(clicks[:n])[0]))
                self.assertTrue(np.array_equal(mask, plain_output_grid(plain, plain.segment_clicks(clicks[:n])[0])))
        self.assertGreater(int(masks[0].sum()), 100)
        self.assertGreater(len(cached._pair_caches["voxels"]), 1)  # the foreground click's class was cached


if __name__ == "__main__":
    unittest.main()
