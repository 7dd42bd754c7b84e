"""Radiomics per sequence: equal to direct PyRadiomics calls, from files and from MRML nodes.

PyRadiomics' own example images (``radiomics.getTestCase``) are not shipped with the
installed package (they are downloaded on demand, impossible offline), so every
comparison here uses a phantom case written to NIfTI and a small synthetic image.
"""

import hashlib
import json
import re
import tempfile
import unittest
from pathlib import Path

import numpy as np
import SimpleITK as sitk

SEQUENCES = ("T1", "STIR")


def _direct(params, image, mask, label=1):
    """A plain PyRadiomics call, as a researcher would write it (ITK on one thread, as
    SpineMets runs it: multi-threaded ITK statistics vary in the last bits under load)."""
    import logging

    from radiomics.featureextractor import RadiomicsFeatureExtractor
    from SpineMetsClassifierLib.features.radiomics_features import single_threaded_itk

    logging.getLogger("radiomics").setLevel(logging.ERROR)
    extractor = RadiomicsFeatureExtractor(str(params))
    with single_threaded_itk():
        result = extractor.execute(image, mask, label=label)
    return {k: float(v) for k, v in result.items() if not k.startswith("diagnostics_")}


class RadiomicsFeaturesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        from SpineMetsPhantom import generate_case, write_case

        cls.tmp = tempfile.TemporaryDirectory()
        cls.dir = Path(cls.tmp.name)
        cls.case = generate_case(2, "case002")  # two lesions (C4 index lesion, C7), fractured C4
        cls.row = write_case(cls.case, cls.dir, "nii.gz")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def path(self, column):
        return self.dir / self.row[column]

    def settings(self, **kw):
        from SpineMetsClassifierLib.features.case import CaseSettings

        return CaseSettings(sequences=SEQUENCES, quantitative=False, segmentation=False, **kw)

    def from_files(self, **kw):
        from SpineMetsClassifierLib.features.case import extract_case, read_case_images

        settings = self.settings(**kw)
        images, labelmap, anatomy = read_case_images(
            {s: self.path(s) for s in SEQUENCES}, self.path("mask"), self.path("anatomy"), SEQUENCES
        )
        return extract_case(images, labelmap, anatomy, settings)

    def test_values_equal_direct_pyradiomics_call_on_the_files(self):
        from SpineMetsClassifierLib.features.resources import DEFAULT_RADIOMICS_PARAMS

        ours = self.from_files()
        for index, seq in enumerate(SEQUENCES):
            direct = _direct(DEFAULT_RADIOMICS_PARAMS, str(self.path(seq)), str(self.path("mask")))
            self.assertGreater(len(direct), 90)
            for key, value in direct.items():
                image_type, cls, feature = key.split("_", 2)
                if cls == "shape":
                    if index == 0:
                        self.assertEqual(ours[f"shape_{feature}"], value, key)
                    continue
                self.assertEqual(ours[f"{seq}_{key}"], value, f"{seq}_{key}")
        # shape once per lesion, no per-sequence copies
        self.assertFalse([k for k in ours if re.match(r"^(T1|STIR)_original_shape_", k)])
        self.assertEqual(ours["prov_shape_sequence"], "T1")

    def test_default_settings_file_and_synthetic_image(self):
        """A non-phantom image, a non-default label, PyRadiomics defaults written as a file."""
        from SpineMetsClassifierLib.features.case import CaseSettings, extract_case

        rng = np.random.default_rng(3)
        array = rng.normal(100, 20, size=(12, 40, 40)).astype(np.float32)
        image = sitk.GetImageFromArray(array)
        image.SetSpacing((0.8, 0.8, 2.5))
        image.SetOrigin((-10.0, 5.0, 30.0))
        labels = np.zeros(array.shape, np.uint8)
        labels[3:9, 10:25, 12:30] = 3
        labels[4:8, 28:34, 5:11] = 1
        mask = sitk.GetImageFromArray(labels)
        mask.CopyInformation(image)
        params = Path(self.tmp.name) / "defaults.yaml"
        params.write_text("setting:\n  binWidth: 25\n  label: 1\nimageType:\n  Original: {}\n")
        ours = extract_case({"T2": image}, mask, None, CaseSettings(params_path=str(params), label=3,
                                                                    quantitative=False, segmentation=False))
        direct = _direct(params, image, mask, label=3)
        self.assertEqual(ours["T2_original_glcm_Contrast"], direct["original_glcm_Contrast"])
        self.assertEqual(ours["shape_VoxelVolume"], direct["original_shape_VoxelVolume"])
        for key, value in direct.items():
            name = key.replace("original_shape_", "shape_") if "_shape_" in key else f"T2_{key}"
            self.assertEqual(ours[name], value, key)

    def test_mrml_nodes_give_the_same_values_as_files(self):
        from SpineMetsClassifierLib.features.case import CaseSettings, extract_case, read_case_images
        from SpineMetsClassifierLib.logic.cohort import CohortLogic

        from SpineMetsCore.dataio import read_image, read_segmentation, read_volume
        from SpineMetsCore.segmentations import find_segment_id, labelmap_to_segmentation, segment_ids
        from SpineMetsCore.tables import PROVENANCE_ATTRIBUTE, table_node_to_dataframe
        from SpineMetsPhantom import ANATOMY_LABELS

        logic = CohortLogic()
        volumes = {seq: read_volume(self.path(seq), name=f"case002_{seq}") for seq in SEQUENCES}
        lesions = read_segmentation(self.path("mask"), name="lesions")  # labelmap file: one segment per label
        anatomy_specs = {value: name for value, name in ANATOMY_LABELS.items() if value}
        anatomy, _ = labelmap_to_segmentation(read_image(self.path("anatomy")), anatomy_specs, name="anatomy")
        index_segment = find_segment_id(lesions, "Segment_1")
        segments_before = segment_ids(lesions)
        scene = logic.runtime.scene
        counts = {c: scene.GetNumberOfNodesByClass(c) for c in ("vtkMRMLTableNode", "vtkMRMLVolumeNode", "vtkMRMLSegmentationNode")}
        with tempfile.TemporaryDirectory() as tmp:
            csv = Path(tmp) / "case.csv"
            table = logic.extractCaseFeatures(
                volumes, lesions, [index_segment], anatomy, caseId="case002",
                edf={"age": "58", "sex": "m", "t1_signal": "Hypo"}, shellMm=3.0, csvPath=csv,
            )
            self.assertTrue(csv.is_file())
            self.assertTrue((Path(tmp) / "case.provenance.json").is_file())
        after = {c: scene.GetNumberOfNodesByClass(c) for c in counts}
        self.assertEqual(after, {**counts, "vtkMRMLTableNode": counts["vtkMRMLTableNode"] + 1})  # only the table
        self.assertEqual(segment_ids(lesions), segments_before)
        from_nodes = table_node_to_dataframe(table).iloc[0]
        self.assertEqual(from_nodes["case_id"], "case002")
        self.assertEqual((from_nodes["sex"], from_nodes["t1_signal"]), ("M", "hypo"))  # EDF normalised
        prov = json.loads(table.GetAttribute(PROVENANCE_ATTRIBUTE))
        self.assertEqual(prov["volumes"], {s: f"case002_{s}" for s in SEQUENCES})

        images, labelmap, anatomy_image = read_case_images(
            {s: self.path(s) for s in SEQUENCES}, self.path("mask"), self.path("anatomy"), SEQUENCES
        )
        from_files = extract_case(images, labelmap, anatomy_image, CaseSettings(sequences=SEQUENCES, shell_mm=3.0))
        compared = 0
        for key, value in from_files.items():
            if isinstance(value, str):
                self.assertEqual(from_nodes[key], value, key)
            else:
                self.assertAlmostEqual(float(from_nodes[key]), float(value), delta=1e-9 * max(1.0, abs(value)), msg=key)
            compared += 1
        self.assertGreater(compared, 300)
        # the same voxels: identical image and mask hashes
        self.assertEqual(from_nodes["prov_T1_image_sha256"], from_files["prov_T1_image_sha256"])
        self.assertEqual(from_nodes["prov_mask_sha256"], from_files["prov_mask_sha256"])

    def test_peritumoural_shell_is_a_physical_distance_ring(self):
        from scipy import ndimage
        from SpineMetsClassifierLib.features.masks import peritumoural_shell, select_label

        lesion = select_label(self.case.lesion_mask, 1)
        shell = peritumoural_shell(lesion, 4.0)
        inside = sitk.GetArrayViewFromImage(lesion) > 0
        ring = sitk.GetArrayViewFromImage(shell) > 0
        spacing = lesion.GetSpacing()[::-1]
        distance = ndimage.distance_transform_edt(~inside, sampling=spacing)
        self.assertFalse((ring & inside).any())
        np.testing.assert_array_equal(ring, (~inside) & (distance <= 4.0 + 1e-4))
        # 3.5 mm slices: a 3 mm shell has no through-plane neighbours, a 4 mm one has
        thin = sitk.GetArrayFromImage(peritumoural_shell(lesion, 3.0)) > 0
        k_lesion = set(np.nonzero(inside.any(axis=(1, 2)))[0])
        self.assertEqual(set(np.nonzero(thin.any(axis=(1, 2)))[0]), k_lesion)
        self.assertGreater(len(set(np.nonzero(ring.any(axis=(1, 2)))[0])), len(k_lesion))

    def test_shell_features_equal_direct_call_on_the_shell(self):
        from SpineMetsClassifierLib.features.masks import peritumoural_shell, select_label
        from SpineMetsClassifierLib.features.resources import DEFAULT_RADIOMICS_PARAMS

        ours = self.from_files(shell_mm=5.0)
        shell = peritumoural_shell(select_label(sitk.ReadImage(str(self.path("mask"))), 1), 5.0)
        direct = _direct(DEFAULT_RADIOMICS_PARAMS, sitk.ReadImage(str(self.path("T1"))), shell)
        self.assertEqual(ours["T1-peri5mm_original_firstorder_Median"], direct["original_firstorder_Median"])
        self.assertEqual(ours["T1-peri5mm_original_glszm_ZoneEntropy"], direct["original_glszm_ZoneEntropy"])
        self.assertNotEqual(ours["T1-peri5mm_original_firstorder_Median"], ours["T1_original_firstorder_Median"])

    def test_names_and_provenance(self):
        import radiomics
        from SpineMetsClassifierLib.features.resources import DEFAULT_RADIOMICS_PARAMS

        ours = self.from_files()
        pattern = re.compile(r"^(T1|STIR)(-peri[0-9.]+mm)?_[A-Za-z0-9-]+_(firstorder|glcm|glrlm|glszm|gldm|ngtdm)_[A-Za-z0-9]+$")
        names = [k for k in ours if not k.startswith(("prov_", "shape_")) and k != "qc_flags"]
        self.assertTrue(names)
        self.assertEqual([n for n in names if not pattern.match(n)], [])
        self.assertEqual(ours["prov_params_sha256"], hashlib.sha256(DEFAULT_RADIOMICS_PARAMS.read_bytes()).hexdigest())
        self.assertEqual(ours["prov_pyradiomics_version"], radiomics.__version__)
        geometry = json.loads(ours["prov_STIR_geometry"])
        image = self.case.images["STIR"]
        self.assertEqual(geometry["size"], list(image.GetSize()))
        np.testing.assert_allclose(geometry["origin"], image.GetOrigin(), atol=1e-5)
        np.testing.assert_allclose(geometry["direction"], image.GetDirection(), atol=1e-5)

    def test_parameter_files(self):
        from SpineMetsClassifierLib.features.radiomics_features import RadiomicsExtractor
        from SpineMetsClassifierLib.features.resources import FILTER_RADIOMICS_PARAMS

        from SpineMetsCore.errors import InputError

        filters = RadiomicsExtractor(FILTER_RADIOMICS_PARAMS)
        self.assertEqual(set(filters.image_types), {"Original", "LoG", "Wavelet"})
        self.assertEqual(filters.settings["binWidth"], 5)
        bad = Path(self.tmp.name) / "bad.yaml"
        bad.write_text("setting:\n  binWidht: 5\n")
        with self.assertRaises(InputError) as ctx:
            RadiomicsExtractor(bad)
        self.assertIn(str(bad), str(ctx.exception))
        with self.assertRaises(InputError) as ctx:
            RadiomicsExtractor(Path(self.tmp.name) / "missing.yaml")
        self.assertIn("does not exist", str(ctx.exception))


if __name__ == "__main__":
    unittest.main()
