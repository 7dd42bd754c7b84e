"""The layers of docs/architecture.md, enforced on the source (AST), plus the CLI's lazy imports.

Core <- module Libs (Segment, Classifier) <- application (SpineMetsApp); the
phantom sits beside the Libs and is imported only by tests, benchmarks and the
application. Every ``import`` statement counts, also those inside functions.
"""

import ast
import subprocess
import sys
import unittest
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# package name -> source folder
PACKAGES = {
    "SpineMetsCore": REPO / "SpineMetsCore",
    "SpineMetsPhantom": REPO / "SpineMetsPhantom",
    "SpineMetsSegmentLib": REPO / "SpineMetsSegment" / "SpineMetsSegmentLib",
    "SpineMetsClassifierLib": REPO / "SpineMetsClassifier" / "SpineMetsClassifierLib",
    "SpineMetsApp": REPO / "SpineMetsApp",
}

# package -> the other SpineMets packages it may import
ALLOWED = {
    "SpineMetsCore": set(),
    "SpineMetsPhantom": {"SpineMetsCore"},
    "SpineMetsSegmentLib": {"SpineMetsCore"},
    "SpineMetsClassifierLib": {"SpineMetsCore"},
    "SpineMetsApp": {"SpineMetsCore", "SpineMetsPhantom", "SpineMetsSegmentLib", "SpineMetsClassifierLib"},
}

# Slicer module files: thin widgets over the Libs; they may use the phantom for sample data.
MODULE_FILES = {
    REPO / "SpineMetsSegment" / "SpineMetsSegment.py": {"SpineMetsCore", "SpineMetsSegmentLib", "SpineMetsPhantom"},
    REPO / "SpineMetsClassifier" / "SpineMetsClassifier.py": {
        "SpineMetsCore", "SpineMetsClassifierLib", "SpineMetsPhantom"},
}


def imported_packages(path: Path, package: str | None = None) -> dict[str, int]:
    """SpineMets top-level packages imported by ``path`` -> first line; relative imports resolve to ``package``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: dict[str, int] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                names = [package or ""]
            else:
                names = [node.module or ""]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top in PACKAGES:
                found.setdefault(top, node.lineno)
    return found


def python_files(package: str) -> list[Path]:
    return sorted(p for p in PACKAGES[package].rglob("*.py") if "__pycache__" not in p.parts)


class LayersTest(unittest.TestCase):
    def test_each_package_imports_only_lower_layers(self):
        problems = []
        for package in PACKAGES:
            files = python_files(package)
            self.assertTrue(files, f"{package}: no sources found in {PACKAGES[package]}")
            for path in files:
                for other, line in imported_packages(path, package).items():
                    if other != package and other not in ALLOWED[package]:
                        problems.append(f"{path.relative_to(REPO)}:{line} imports {other}")
        self.assertEqual(problems, [], "layering violations (see docs/architecture.md)")

    def test_module_files_import_their_lib_core_and_phantom_only(self):
        problems = []
        for path, allowed in MODULE_FILES.items():
            for other, line in imported_packages(path).items():
                if other not in allowed:
                    problems.append(f"{path.relative_to(REPO)}:{line} imports {other}")
        self.assertEqual(problems, [])

    def test_only_tests_and_benchmarks_import_the_app(self):
        problems = []
        for path in sorted(REPO.rglob("*.py")):
            rel = path.relative_to(REPO)
            if rel.parts[0] in (".venv", "build", "SpineMetsApp", "bench") or "Testing" in rel.parts:
                continue
            if any(part.startswith("build") for part in rel.parts[:1]):
                continue
            line = imported_packages(path).get("SpineMetsApp")
            if line:
                problems.append(f"{rel}:{line}")
        self.assertEqual(problems, [], "only tests, benchmarks and SpineMetsApp itself import SpineMetsApp")

    def test_error_class_names_are_unique(self):
        homes: dict[str, list[str]] = {}
        for package in PACKAGES:
            for path in python_files(package):
                tree = ast.parse(path.read_text(encoding="utf-8"))
                for node in ast.walk(tree):
                    if isinstance(node, ast.ClassDef) and node.name.endswith("Error"):
                        homes.setdefault(node.name, []).append(str(path.relative_to(REPO)))
        duplicates = {name: where for name, where in homes.items() if len(where) > 1}
        self.assertEqual(duplicates, {}, "one home per error class")

    def test_every_error_class_is_a_spinemets_error(self):
        """Every ``*Error`` class of every package derives (through its bases' names) from SpineMetsError."""
        bases: dict[str, list[str]] = {}
        where: dict[str, str] = {}
        for package in PACKAGES:
            for path in python_files(package):
                for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                    if isinstance(node, ast.ClassDef):
                        names = [b.attr if isinstance(b, ast.Attribute) else getattr(b, "id", "") for b in node.bases]
                        bases.setdefault(node.name, names)
                        where.setdefault(node.name, str(path.relative_to(REPO)))

        def rooted(name: str, seen: frozenset[str] = frozenset()) -> bool:
            if name == "SpineMetsError":
                return True
            if name in seen or name not in bases:
                return False
            return any(rooted(base, seen | {name}) for base in bases[name])

        outside = [f"{where[n]}: {n}" for n in bases if n.endswith("Error") and not rooted(n)]
        self.assertEqual(outside, [], "errors outside the SpineMetsError tree")


class LazyCliTest(unittest.TestCase):
    HEAVY = ("pandas", "sklearn", "torch", "shap", "monai", "matplotlib")

    def loaded_after(self, *argv: str) -> list[str]:
        code = (
            "import sys\n"
            "from SpineMetsApp.cli import main\n"
            "try:\n"
            f"    main({list(argv)!r})\n"
            "except SystemExit:\n"
            "    pass\n"
            f"print('LOADED=' + ','.join(m for m in {self.HEAVY!r} if m in sys.modules))\n"
        )
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        self.assertEqual(proc.returncode, 0, proc.stderr[-2000:])
        self.assertIn("usage: spinemets", proc.stdout)
        loaded = proc.stdout.rsplit("LOADED=", 1)[1].strip()
        return [m for m in loaded.split(",") if m]

    def test_help_imports_no_heavy_library(self):
        self.assertEqual(self.loaded_after("--help"), [])

    def test_segment_help_imports_no_heavy_library(self):
        self.assertEqual(self.loaded_after("segment", "--help"), [])

    def test_help_lists_every_command(self):
        from SpineMetsApp.commands import COMMANDS

        proc = subprocess.run([sys.executable, "-m", "SpineMetsApp.cli", "--help"], capture_output=True, text=True,
                              timeout=120)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        for name in COMMANDS:
            self.assertRegex(proc.stdout, rf"\n    {name}\s")  # a long name gets its help on the next line

    def test_each_command_file_registers_exactly_its_commands(self):
        import argparse
        import importlib

        from SpineMetsApp.commands import COMMANDS

        for module in sorted({c.module for c in COMMANDS.values()}):
            parser = argparse.ArgumentParser()
            sub = parser.add_subparsers()
            importlib.import_module(f"SpineMetsApp.commands.{module}").register(sub)
            self.assertEqual(sorted(sub.choices), sorted(n for n, c in COMMANDS.items() if c.module == module), module)


if __name__ == "__main__":
    unittest.main()
