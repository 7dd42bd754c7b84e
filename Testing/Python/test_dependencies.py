"""The dependency installer's decisions (what, in which order, with which constraints), with fakes.

No pip, no Slicer, no network: the confirm function, the pip runner, the torch
installer and the view of installed packages are injected.
"""

import unittest
from pathlib import Path

from SpineMetsCore.dependencies import (
    NO_DEPS,
    PYRADIOMICS_MESSAGE,
    DependencyError,
    DependencyInstaller,
    constraints_text,
    monai_requirement,
    plan_installation,
    read_requirements,
)

REPO = Path(__file__).resolve().parents[2]
SEGMENT_REQ = REPO / "SpineMetsSegment" / "Resources" / "SpineMetsSegmentRequirements.txt"
CLASSIFIER_REQ = REPO / "SpineMetsClassifier" / "Resources" / "SpineMetsClassifierRequirements.txt"

SLICER_510 = {"numpy": "2.0.2", "scipy": "1.13.1", "SimpleITK": "2.5.2", "vtk": "9.4.2"}
"""A fresh desktop Slicer 5.10: its own packages and nothing else."""


class FakeSlicer:
    """A Python environment that pip and PyTorchUtils change, recording every call."""

    def __init__(self, installed=None, radiomics=False, confirm=True, torch_version="2.8.0+cu128"):
        self.installed = dict(SLICER_510 if installed is None else installed)
        self.radiomics = radiomics
        self.answer = confirm
        self.torch_version = torch_version
        self.calls = []
        self.confirm_texts = []

    def version_of(self, name):
        lookup = {k.lower().replace("_", "-"): v for k, v in self.installed.items()}
        return lookup.get(name.lower().replace("_", "-"))

    def can_import(self, module):
        return module == "radiomics" and self.radiomics

    def confirm(self, text):
        self.confirm_texts.append(text)
        return self.answer

    def pip(self, args):
        args = list(args)
        constraints = Path(args[args.index("-c") + 1]).read_text()
        self.calls.append(("pip", args[2:], constraints))
        for req in args[2:]:
            if req.startswith("-"):
                continue
            name = req.split("=")[0].split(">")[0].split("<")[0]
            version = req.split("==")[1] if "==" in req else "99.0"
            if name == "monai":
                version = "1.6.1" if ">=1.6" in req else "1.5.2"
            self.installed[name] = version

    def torch(self, requirement):
        self.calls.append(("torch", requirement))
        if self.torch_version is None:
            return None
        self.installed["torch"] = self.torch_version
        return self.torch_version

    def installer(self, requester="SpineMetsSegment"):
        return DependencyInstaller(requester, self.confirm, self.pip, self.torch, self.version_of, self.can_import)


class RequirementFilesTest(unittest.TestCase):
    def test_each_module_has_its_own_file_with_what_it_imports(self):
        segment = [r.split(">")[0].split("=")[0] for r in read_requirements(SEGMENT_REQ)]
        classifier = [r.split(">")[0].split("=")[0] for r in read_requirements(CLASSIFIER_REQ)]
        self.assertEqual(segment, ["torch", "monai", "safetensors"])
        self.assertEqual(classifier, ["pyradiomics", "pandas", "PyYAML", "scikit-learn", "skops", "matplotlib", "shap"])
        self.assertNotEqual(SEGMENT_REQ.name, CLASSIFIER_REQ.name)


class PlanTest(unittest.TestCase):
    def test_fresh_slicer_segment_plan_torch_first_then_pinned_pip(self):
        env = FakeSlicer()
        plan = plan_installation(read_requirements(SEGMENT_REQ), "SpineMetsSegment", None, env.version_of, env.can_import)
        self.assertEqual([s.kind for s in plan.steps], ["torch", "pip"])
        self.assertEqual(plan.steps[0].requirements, ("torch>=2.4.1",))
        self.assertEqual(plan.steps[1].requirements, ("monai", "safetensors>=0.4"))
        self.assertTrue(plan.monai_after_torch)
        self.assertEqual(plan.constraints, SLICER_510)
        text = plan.summary()
        self.assertIn("torch>=2.4.1 through the PyTorch extension", text)
        self.assertIn("numpy 2.0.2, scipy 1.13.1, SimpleITK 2.5.2, vtk 9.4.2", text)
        self.assertIn("chosen to match the installed torch", text)

    def test_monai_matches_installed_torch(self):
        self.assertEqual(monai_requirement("2.13.0+cpu"), "monai>=1.6,<1.7")
        self.assertEqual(monai_requirement("2.8.0"), "monai>=1.6,<1.7")
        self.assertEqual(monai_requirement("2.5.1+cu121"), "monai>=1.5,<1.6")
        with self.assertRaisesRegex(DependencyError, "too old .* >=2.4.1"):
            monai_requirement("2.2.0")
        env = FakeSlicer({**SLICER_510, "torch": "2.5.1+cu121"})
        plan = plan_installation(read_requirements(SEGMENT_REQ), "S", None, env.version_of, env.can_import)
        self.assertEqual([s.kind for s in plan.steps], ["pip"])
        self.assertEqual(plan.steps[0].requirements, ("monai>=1.5,<1.6", "safetensors>=0.4"))
        self.assertEqual(plan.constraints["torch"], "2.5.1+cu121")
        self.assertFalse(plan.monai_after_torch)

    def test_nothing_to_do_when_satisfied(self):
        env = FakeSlicer({**SLICER_510, "torch": "2.13.0+cpu", "monai": "1.6.1", "safetensors": "0.8.0"})
        plan = plan_installation(read_requirements(SEGMENT_REQ), "S", None, env.version_of, env.can_import)
        self.assertTrue(plan.empty)

    def test_old_monai_is_upgraded_within_the_torch_range(self):
        env = FakeSlicer({**SLICER_510, "torch": "2.13.0", "monai": "1.4.0", "safetensors": "0.8.0"})
        plan = plan_installation(read_requirements(SEGMENT_REQ), "S", None, env.version_of, env.can_import)
        self.assertEqual(plan.packages(), ["monai>=1.6,<1.7"])

    def test_classifier_plan_shap_no_deps_last_and_pyradiomics_never_pip(self):
        env = FakeSlicer(radiomics=True)
        plan = plan_installation(read_requirements(CLASSIFIER_REQ), "SpineMetsClassifier", None, env.version_of, env.can_import)
        self.assertEqual([s.kind for s in plan.steps], ["pip", "pip"])
        first, last = plan.steps
        self.assertEqual(last.requirements, ("shap>=0.46",))
        self.assertEqual(last.options, ("--no-deps",))
        self.assertEqual(first.options, ())
        self.assertEqual(list(first.requirements[:5]), ["pandas>=2.0", "PyYAML>=6.0", "scikit-learn>=1.4", "skops>=0.10", "matplotlib>=3.8"])
        for dep in NO_DEPS["shap"]:
            if dep.split(">")[0].split("=")[0] not in ("scikit-learn", "pandas"):
                self.assertIn(dep, first.requirements)
        self.assertEqual(len(first.requirements), len({r.split(">")[0].split("=")[0] for r in first.requirements}))
        self.assertNotIn("scikit-learn", first.requirements, "listed once, with the module's own bound")
        self.assertFalse(any("radiomics" in r for r in plan.packages()))
        self.assertFalse(any(r.split("=")[0].lower() in ("numpy", "scipy", "simpleitk", "vtk") for r in plan.packages()))
        self.assertIn("interpretml's 'slicer' helper used by shap", plan.summary())
        self.assertIn("no restart needed", plan.summary())

    def test_pyradiomics_missing_is_a_clear_message_only_when_needed(self):
        env = FakeSlicer(radiomics=False)
        reqs = read_requirements(CLASSIFIER_REQ)
        plan = plan_installation(reqs, "C", None, env.version_of, env.can_import)
        self.assertEqual(plan.unavailable, [PYRADIOMICS_MESSAGE])
        self.assertIn("SlicerRadiomics", PYRADIOMICS_MESSAGE)
        only_eval = plan_installation(reqs, "C", ["pandas", "scikit-learn", "matplotlib"], env.version_of, env.can_import)
        self.assertEqual(only_eval.unavailable, [])
        self.assertEqual(only_eval.packages(), ["pandas>=2.0", "scikit-learn>=1.4", "matplotlib>=3.8"])

    def test_constraints_file_pins_exact_versions(self):
        self.assertEqual(constraints_text({"numpy": "2.0.2", "torch": "2.8.0+cu128"}), "numpy==2.0.2\ntorch==2.8.0+cu128\n")


class InstallerTest(unittest.TestCase):
    def test_segment_install_order_constraints_and_one_confirmation(self):
        env = FakeSlicer(torch_version="2.8.0+cu128")
        self.assertTrue(env.installer().ensure(SEGMENT_REQ))
        self.assertEqual(len(env.confirm_texts), 1)
        self.assertEqual(env.calls[0], ("torch", "torch>=2.4.1"))
        kind, args, constraints = env.calls[1]
        self.assertEqual(kind, "pip")
        self.assertEqual(args, ["monai>=1.6,<1.7", "safetensors>=0.4"])
        self.assertEqual(
            constraints, "numpy==2.0.2\nscipy==1.13.1\nSimpleITK==2.5.2\nvtk==9.4.2\ntorch==2.8.0+cu128\n"
        )
        self.assertEqual(len(env.calls), 2)
        env.calls.clear()
        self.assertTrue(env.installer().ensure(SEGMENT_REQ))
        self.assertEqual(env.calls, [], "a second call installs nothing and asks nothing")
        self.assertEqual(len(env.confirm_texts), 1)

    def test_declined_confirmation_installs_nothing(self):
        env = FakeSlicer(confirm=False)
        self.assertFalse(env.installer().ensure(SEGMENT_REQ))
        self.assertEqual(env.calls, [])
        self.assertNotIn("monai", env.installed)

    def test_declined_torch_stops_before_pip(self):
        env = FakeSlicer(torch_version=None)
        self.assertFalse(env.installer().ensure(SEGMENT_REQ))
        self.assertEqual(env.calls, [("torch", "torch>=2.4.1")])

    def test_classifier_install_shap_no_deps_after_its_dependencies(self):
        env = FakeSlicer(radiomics=True)
        self.assertTrue(env.installer("SpineMetsClassifier").ensure(CLASSIFIER_REQ))
        self.assertEqual([c[0] for c in env.calls], ["pip", "pip"])
        self.assertEqual(env.calls[1][1], ["--no-deps", "shap>=0.46"])
        self.assertIn("slicer==0.0.8", env.calls[0][1])
        for _, _, constraints in env.calls:
            self.assertIn("numpy==2.0.2\n", constraints)
            self.assertNotIn("torch", constraints, "no torch installed: nothing to pin")

    def test_missing_pyradiomics_raises_before_asking(self):
        env = FakeSlicer(radiomics=False)
        with self.assertRaisesRegex(DependencyError, "SlicerRadiomics"):
            env.installer("SpineMetsClassifier").ensure(CLASSIFIER_REQ)
        self.assertEqual(env.confirm_texts, [])

    def test_failed_install_is_reported(self):
        env = FakeSlicer({**SLICER_510, "torch": "2.13.0"})
        broken = DependencyInstaller("S", env.confirm, lambda args: None, env.torch, env.version_of, env.can_import)
        with self.assertRaisesRegex(DependencyError, "still missing after installation: monai"):
            broken.ensure(SEGMENT_REQ)


if __name__ == "__main__":
    unittest.main()
