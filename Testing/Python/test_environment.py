"""slicer-core and shap must import together: in the venv, and with desktop Slicer's own package."""

import os
import subprocess
import sys
import tempfile
import textwrap
import unittest
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_python(code: str, extra_path: list[str] | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    paths = (extra_path or []) + [str(REPO)] + env.get("PYTHONPATH", "").split(os.pathsep)
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env, timeout=300)


class EnvironmentTest(unittest.TestCase):
    def test_slicer_core_and_shap_in_one_interpreter(self):
        result = run_python(
            """
            import slicer
            scene = slicer.vtkMRMLScene()
            node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "x")
            assert node.GetName() == "x"
            import shap
            from slicer import Slicer, Alias, Obj
            import numpy as np
            e = shap.Explanation(values=np.ones((3, 2)), feature_names=["a", "b"])
            assert e[:, "b"].values.tolist() == [1.0, 1.0, 1.0]  # shap's slicing goes through Slicer
            print("OK", shap.__version__)
            """
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("OK", result.stdout)

    def test_install_guard_check_passes(self):
        script = REPO / "Resources" / "Scripts" / "ensure_slicer_namespace.py"
        result = subprocess.run([sys.executable, str(script), "--check-only"], capture_output=True, text=True, timeout=300)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("shap", result.stdout)

    def test_import_shap_with_desktop_slicer_package(self):
        """Desktop Slicer's own ``slicer`` package shadows interpretml's: import_shap bridges the names."""
        with tempfile.TemporaryDirectory() as tmp:
            pkg = Path(tmp) / "slicer"
            pkg.mkdir()
            # Stand-in for Slicer's bin/Python/slicer package: a plain package without shap's names.
            (pkg / "__init__.py").write_text("APP_PACKAGE_MARKER = 'desktop'\n")
            result = run_python(
                """
                import slicer
                assert slicer.APP_PACKAGE_MARKER == "desktop"
                try:
                    import shap
                except ImportError as exc:
                    print("plain import fails:", exc)
                else:
                    raise SystemExit("expected the plain import to fail under desktop Slicer's package")
                from SpineMetsCore.shap_compat import import_shap
                shap = import_shap()
                import numpy as np
                from sklearn.linear_model import LinearRegression
                X = np.random.default_rng(0).normal(size=(60, 3))
                y = X @ [3.0, 0.0, -1.0]
                model = LinearRegression().fit(X, y)
                sv = shap.LinearExplainer(model, X).shap_values(X)
                # Additivity: contributions + expected value reproduce the prediction.
                assert np.allclose(sv.sum(axis=1) + y.mean(), model.predict(X), atol=1e-8)
                assert slicer.APP_PACKAGE_MARKER == "desktop"  # Slicer's package kept, names only added
                assert [n for n in ("Slicer", "Alias", "Obj") if not hasattr(slicer, n)] == []
                print("OK")
                """,
                extra_path=[tmp],
            )
        self.assertEqual(result.returncode, 0, result.stderr + result.stdout)
        self.assertIn("plain import fails", result.stdout)
        self.assertIn("OK", result.stdout)


if __name__ == "__main__":
    unittest.main()
