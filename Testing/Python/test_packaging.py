"""Extension packaging: metadata agree across CMake/.s4ext/index JSON, pins, .ui bindings, packages."""

import ast
import json
import re
import unittest
import xml.etree.ElementTree as ET
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parents[2]
MODULES = ("SpineMetsSegment", "SpineMetsClassifier")


def cmake_set(name: str) -> str:
    text = (REPO / "CMakeLists.txt").read_text()
    match = re.search(rf'set\({name} "([^"]*)"\)', text)
    if not match:
        raise AssertionError(f"{name} not set in CMakeLists.txt")
    return match.group(1)


def s4ext() -> dict[str, str]:
    entries = {}
    for line in (REPO / "SpineMetsExtension.s4ext").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition(" ")
            entries[key] = value.strip()
    return entries


class PackagingTest(unittest.TestCase):
    def test_dependencies_and_category_agree(self):
        depends = cmake_set("EXTENSION_DEPENDS").split()
        index = json.loads((REPO / "SpineMetsExtension.json").read_text())
        self.assertEqual(
            index["$schema"],
            "https://raw.githubusercontent.com/Slicer/Slicer/main/Schemas/slicer-extension-catalog-entry-schema-v1.0.1.json#",
        )
        self.assertEqual(index["build_dependencies"], [] if depends == ["NA"] else depends)
        self.assertEqual(s4ext()["depends"].split(), depends)
        self.assertEqual(index["category"], cmake_set("EXTENSION_CATEGORY"))
        self.assertEqual(s4ext()["category"], index["category"])
        self.assertTrue(index["scm_url"].startswith("https://"))
        self.assertEqual(s4ext()["homepage"], cmake_set("EXTENSION_HOMEPAGE"))

    def test_layout_matches_slicer_template(self):
        for module in MODULES:
            for rel in (f"{module}.py", f"{module}Lib/__init__.py", f"Resources/UI/{module}.ui",
                        f"Resources/Icons/{module}.png", f"Resources/{module}Requirements.txt", "CMakeLists.txt",
                        "Testing/CMakeLists.txt", "Testing/Python/CMakeLists.txt"):
                self.assertTrue((REPO / module / rel).is_file(), f"{module}/{rel} missing")
            cmake = (REPO / module / "CMakeLists.txt").read_text()
            self.assertIn("slicerMacroBuildScriptedModule(", cmake)
            self.assertIn("WITH_GENERIC_TESTS", cmake)
            self.assertIn("slicer_add_python_unittest(SCRIPT ${MODULE_NAME}.py)", cmake)
        top = (REPO / "CMakeLists.txt").read_text()
        for needle in ("find_package(Slicer", "include(${Slicer_USE_FILE})", "Slicer_EXTENSION_GENERATE_CONFIG",
                       "Slicer_EXTENSION_CPACK", "EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS",
                       "EXTENSION_CONTRIBUTORS", "EXTENSION_DESCRIPTION"):
            self.assertIn(needle, top)
        self.assertIn("Apache License", (REPO / "LICENSE").read_text()[:200])
        self.assertIn("make test", (REPO / ".ci" / "run").read_text())

    def test_module_scripts_follow_template(self):
        for module in MODULES:
            tree = ast.parse((REPO / module / f"{module}.py").read_text())
            classes = {node.name for node in tree.body if isinstance(node, ast.ClassDef)}
            for suffix in ("", "Widget", "Logic", "Test", "ParameterNode"):
                self.assertIn(module + suffix, classes, f"{module}.py lacks class {module}{suffix}")
            widget = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == module + "Widget")
            qt_imports = [n for n in ast.walk(widget) if isinstance(n, (ast.Import, ast.ImportFrom))]
            names = {a.name for n in qt_imports for a in n.names} | {getattr(n, "module", None) for n in qt_imports}
            self.assertNotIn("SpineMetsCore.runtime", names, "the widget must not build a runtime itself")
            self.assertFalse([n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and any(a.name == "*" for a in n.names)],
                             f"{module}.py star-imports (explicit imports only)")
            lib = REPO / module / f"{module}Lib"
            for py in lib.rglob("*.py"):
                text = py.read_text()
                self.assertNotRegex(text, r"^\s*(import qt|import ctk|from qt |import PythonQt)", f"Qt import in {py}")

    def test_ui_bindings_match_parameter_node(self):
        for module in MODULES:
            tree = ast.parse((REPO / module / f"{module}.py").read_text())
            param_class = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == f"{module}ParameterNode")
            fields = {n.target.id for n in param_class.body if isinstance(n, ast.AnnAssign)}
            ui = ET.parse(REPO / module / "Resources" / "UI" / f"{module}.ui")
            bound = {
                prop.find("string").text
                for prop in ui.iter("property")
                if prop.get("name") == "SlicerParameterName"
            }
            self.assertTrue(bound, f"{module}.ui binds no parameter")
            self.assertLessEqual(bound, fields, f"{module}.ui binds unknown parameters {bound - fields}")

    def test_every_region_growing_control_reaches_the_algorithm(self):
        """The Segment module's advanced controls are exactly what the widget hands to region growing.

        (``smoothingIterations`` and ``fillHoles`` stayed in the UI after the algorithm stopped using them.)
        """
        module = "SpineMetsSegment"
        tree = ast.parse((REPO / module / f"{module}.py").read_text())
        method = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "segmentFromParameterNode")
        call = next(n for n in ast.walk(method) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "RegionGrowingParameters")
        passed = {kw.arg: kw.value.attr for kw in call.keywords if isinstance(kw.value, ast.Attribute)}
        algorithm = ast.parse((REPO / module / f"{module}Lib" / "region_growing.py").read_text())
        settings = next(n for n in algorithm.body if isinstance(n, ast.ClassDef) and n.name == "RegionGrowingParameters")
        fields = {n.target.id for n in settings.body if isinstance(n, ast.AnnAssign)}
        self.assertLessEqual(set(passed), fields, "the widget passes settings region growing does not have")
        ui = ET.parse(REPO / module / "Resources" / "UI" / f"{module}.ui")
        advanced = next(w for w in ui.iter("widget") if w.get("name") == "advancedCollapsibleButton")
        bound = {prop.find("string").text for prop in advanced.iter("property") if prop.get("name") == "SlicerParameterName"}
        self.assertEqual(bound, set(passed.values()), "advanced controls that do nothing, or settings without a control")
        param_class = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == f"{module}ParameterNode")
        self.assertFalse({"smoothingIterations", "fillHoles"} & {n.target.id for n in param_class.body
                                                                 if isinstance(n, ast.AnnAssign)})

    def test_pins(self):
        reqs = (REPO / "requirements.txt").read_text()
        self.assertRegex(reqs, r"(?m)^torch==2\.13\.0$")
        self.assertRegex(reqs, r"(?m)^slicer-core==5\.13\.31053\.0$")
        self.assertRegex(reqs, r"(?m)^vtk==9\.6\.2$")
        for line in reqs.splitlines():
            if line and not line.startswith("#"):
                self.assertIn("==", line, f"unpinned requirement {line!r}")
        pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
        torch_specs = [d for deps in pyproject["project"]["optional-dependencies"].values() for d in deps if d.startswith("torch")]
        self.assertEqual(torch_specs, ["torch==2.13.0"])
        for module in MODULES:
            text = (REPO / module / "Resources" / f"{module}Requirements.txt").read_text()
            for owned in ("numpy", "scipy", "SimpleITK", "vtk"):
                self.assertNotRegex(text, rf"(?mi)^{owned}\b", f"{module} must not reinstall Slicer's {owned}")
            # torch appears only as the version requirement handed to PyTorchUtils (test_dependencies.py)
            self.assertRegex(text, r"(?m)^(torch>=[0-9.]+$|(?!torch))")

    def test_requirements_install_under_distinct_names(self):
        installed = []
        for module in MODULES:
            cmake = (REPO / module / "CMakeLists.txt").read_text()
            self.assertIn("Resources/${MODULE_NAME}Requirements.txt", cmake)
            self.assertNotIn("Resources/requirements.txt", cmake)
            installed.append(f"Resources/{module}Requirements.txt")
        self.assertEqual(len(set(installed)), len(MODULES))

    def test_minimum_slicer_version_is_stated_and_needed(self):
        """zip(strict=...) needs Python >= 3.10: the extension states Slicer 5.10 (Python 3.12) everywhere."""
        uses_strict_zip = any(
            isinstance(node, ast.keyword) and node.arg == "strict"
            for py in REPO.glob("SpineMets*/**/*.py") for node in ast.walk(ast.parse(py.read_text()))
        )
        self.assertTrue(uses_strict_zip, "no zip(strict=...) left: the minimum version could be lowered")
        self.assertIn('set(SPINEMETS_MINIMUM_SLICER_VERSION "5.10")', (REPO / "CMakeLists.txt").read_text())
        self.assertIn("Requires 3D Slicer 5.10 or later (Python 3.12)", cmake_set("EXTENSION_DESCRIPTION"))
        self.assertIn("Requires 3D Slicer 5.10 or later (Python 3.12)", s4ext()["description"])
        self.assertIn("Minimum Slicer version: 5.10", (REPO / "SpineMetsExtension.s4ext").read_text())
        self.assertIn("3D Slicer 5.10 or later", (REPO / "README.md").read_text())
        pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
        self.assertEqual(pyproject["project"]["requires-python"], ">=3.10")
        for module in MODULES:
            self.assertIn("Slicer 5.10 or later", (REPO / module / f"{module}.py").read_text())

    def test_index_json_follows_catalog_schema_v1_0_1(self):
        """The catalog entry schema (Slicer/Schemas, v1.0.1) allows no other keys (no minimum version field)."""
        index = json.loads((REPO / "SpineMetsExtension.json").read_text())
        allowed = {"$schema": str, "category": str, "scm_url": str, "scm_revision": str, "scm_type": str,
                   "build_dependencies": list, "build_subdirectory": str, "enabled": bool, "tier": int}
        self.assertLessEqual({"$schema", "category", "scm_url"}, set(index))
        for key, value in index.items():
            self.assertIn(key, allowed, f"{key} is not in the catalog entry schema")
            self.assertIsInstance(value, allowed[key], key)
        self.assertIn(index["tier"], (1, 3, 5))
        self.assertTrue(all(isinstance(d, str) for d in index["build_dependencies"]))

    def test_screenshot_and_icon_urls_point_to_shipped_pngs(self):
        prefix = "https://raw.githubusercontent.com/spinemets/SlicerSpineMets/main/"
        urls = [cmake_set("EXTENSION_ICONURL"), *cmake_set("EXTENSION_SCREENSHOTURLS").split()]
        self.assertEqual(urls[1:], s4ext()["screenshoturls"].split())
        self.assertEqual(urls[0], s4ext()["iconurl"])
        for url in urls:
            self.assertTrue(url.startswith(prefix), url)
            path = REPO / url[len(prefix):]
            self.assertTrue(path.is_file(), f"{url} points to a missing file")
            self.assertEqual(path.read_bytes()[:8], b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG")
        self.assertGreater((REPO / "Resources" / "Screenshots" / "SpineMets.png").stat().st_size, 20_000)

    def test_every_package_is_listed_in_pyproject(self):
        pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
        listed = set(pyproject["tool"]["setuptools"]["packages"])
        dirs = pyproject["tool"]["setuptools"]["package-dir"]
        found = set()
        for top, rel in dirs.items():
            for init in (REPO / rel).rglob("__init__.py"):
                parts = init.parent.relative_to(REPO / rel).parts
                found.add(".".join((top, *parts)))
        self.assertEqual(found - listed, set(), "packages missing from pyproject [tool.setuptools] packages")


if __name__ == "__main__":
    unittest.main()
