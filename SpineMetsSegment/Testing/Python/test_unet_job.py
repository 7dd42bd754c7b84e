"""The background U-Net job (start/poll/cancel/result) and its MRML-free worker, headless.

The job runs the real worker in a real subprocess (the default launcher), as the
Slicer widget's timer does; the labelmap is imported by the module Logic's path
(one read, names and colours from the model card) and compared with the truth.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from SpineMetsSegmentLib.background import child_environment, launch, terminate
from SpineMetsSegmentLib.metrics import compute_metrics
from SpineMetsSegmentLib.unet import demo_model_path
from SpineMetsSegmentLib.unet.job import JobError, UNetJob
from SpineMetsSegmentLib.unet.worker import parse_image_args

from SpineMetsPhantom import generate_case, write_case

SEQUENCES = ("T1", "T2", "STIR", "T1CE")
FORBIDDEN_IN_WORKER = ("slicer", "pandas", "tqdm", "qt", "vtk", "sklearn")


def _alive(pid):
    """True while ``pid`` runs (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _worker_pid(marker):
    """The pid of the Python running the U-Net worker whose arguments include ``marker``."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if argv[0] == sys.executable and "SpineMetsSegmentLib.unet.worker" in argv and any(marker in a for a in argv):
            return int(entry.name)
    raise AssertionError(f"no worker process with {marker}")


class UNetJobTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.root = Path(cls.tmp.name)
        cls.case = generate_case(21, case_id="job")
        row = write_case(cls.case, cls.root / "case")
        cls.images = {s: cls.root / "case" / row[s] for s in SEQUENCES}
        cls.truth = sitk.Cast(cls.case.lesion_mask > 0, sitk.sitkUInt8)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_job_runs_the_worker_in_a_subprocess_and_reports_json_progress(self):
        job = UNetJob(self.images, demo_model_path(), self.root / "run1", force_cpu=True, python=sys.executable)
        self.assertEqual(job.command()[1:3], ["-m", "SpineMetsSegmentLib.unet.worker"])
        self.assertEqual(job.start().state, "running")
        fractions = []
        deadline = time.monotonic() + 300
        while job.poll().running:  # what the widget's QTimer does
            fractions.append(job.poll().fraction)
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.05)
        status = job.poll()
        self.assertEqual(status.state, "succeeded", status.message + "\n" + "\n".join(job.log[-10:]))
        self.assertEqual(status.fraction, 1.0)
        self.assertEqual(fractions, sorted(fractions), "progress never goes backwards")
        events = [json.loads(line)["event"] for line in job.log]
        self.assertEqual(events[0], "start")
        self.assertEqual(events[-1], "done")
        self.assertGreaterEqual(events.count("progress"), 2)
        result = job.result()
        self.assertEqual(result.labels, [{"value": 1, "name": "lesion", "color": [230, 51, 51]}])
        self.assertTrue(result.synthetic_training_data)
        labelmap = sitk.ReadImage(str(result.labelmap))
        self.assertEqual(labelmap.GetSize(), self.case.images["T1"].GetSize())
        np.testing.assert_allclose(labelmap.GetOrigin(), self.case.images["T1"].GetOrigin(), atol=1e-4)
        mask = sitk.Cast(labelmap == 1, sitk.sitkUInt8)
        self.assertGreater(compute_metrics(self.truth, mask).dice, 0.8)
        job.cleanup()
        self.assertTrue(result.labelmap.is_file(), "a workdir the caller gave is the caller's to remove")

    def test_worker_error_is_reported_as_failed_job_with_the_message(self):
        images = {"T1": self.images["T1"], "STIR": self.images["STIR"]}
        job = UNetJob(images, demo_model_path(), python=sys.executable)
        job.start()
        status = job.wait(timeout=120)
        self.assertEqual(status.state, "failed")
        self.assertIn("expects input sequences ['T1', 'T2', 'STIR', 'T1CE']", status.message)
        with self.assertRaisesRegex(JobError, "no U-Net result: the job is failed"):
            job.result()
        workdir = Path(job.workdir)
        job.cleanup()
        self.assertFalse(workdir.exists(), "a workdir the job made is removed")

    def test_worker_is_mrml_free(self):
        """The child runs with slicer, pandas, tqdm, scikit-learn, Qt and VTK unimportable.

        As in PythonSlicer (no application, no Qt) of a Slicer where only torch,
        MONAI and safetensors were installed. torch and MONAI probe tqdm, pandas and
        scikit-learn as optional imports; those probes must fail harmlessly.
        """
        out = self.root / "free" / "labelmap.nrrd"
        args = [f"--image={s}={p}" for s, p in self.images.items()]
        code = (
            "import importlib.abc, json, sys\n"
            f"BLOCKED = set({FORBIDDEN_IN_WORKER!r})\n"
            "class Block(importlib.abc.MetaPathFinder):\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] in BLOCKED:\n"
            "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
            "sys.meta_path.insert(0, Block())\n"
            "from SpineMetsSegmentLib.unet import worker\n"
            f"rc = worker.main({args + ['--model', str(demo_model_path()), '--out', str(out), '--force-cpu']!r})\n"
            "bad = sorted({m.split('.')[0] for m in sys.modules} & BLOCKED)\n"
            "print(json.dumps({'event': 'modules', 'rc': rc, 'bad': bad}))\n"
        )
        proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, **child_environment()},
                              capture_output=True, text=True, timeout=300)
        self.assertEqual(proc.returncode, 0, proc.stderr[-2000:])
        lines = [json.loads(line) for line in proc.stdout.splitlines()]
        self.assertEqual(lines[-1], {"event": "modules", "rc": 0, "bad": []})
        self.assertEqual(lines[-2]["event"], "done")
        self.assertGreater(compute_metrics(self.truth, sitk.Cast(sitk.ReadImage(str(out)) == 1, sitk.sitkUInt8)).dice, 0.8)

    def test_injected_launcher_and_cancel_stop_the_whole_tree(self):
        """Cancel also stops what the child started (PythonSlicer is a launcher)."""
        script = ("import json, subprocess, sys, time; "
                  "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); "
                  "print(json.dumps({'event': 'progress', 'done': 1, 'total': 4, 'fraction': 0.25, 'pid': p.pid}), flush=True); "
                  "time.sleep(120)")
        launched = []

        def launcher(args, env):
            launched.append((args, env))
            return launch([sys.executable, "-c", script], env)

        job = UNetJob({"T1": "t1.nrrd"}, "model", self.root / "cancel", python="PythonSlicer", launcher=launcher)
        job.start()
        self.assertEqual(launched[0][0][:3], ["PythonSlicer", "-m", "SpineMetsSegmentLib.unet.worker"])
        self.assertIn("--image", launched[0][0])
        self.assertIn("PYTHONPATH", launched[0][1])
        deadline = time.monotonic() + 30
        while job.poll().fraction < 0.25 and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(job.poll().fraction, 0.25)
        grandchild = json.loads(job.log[0])["pid"]
        self.assertEqual(job.cancel().state, "cancelled")
        self.assertEqual(job.poll().state, "cancelled")
        if os.name != "nt":
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and _alive(grandchild):
                time.sleep(0.1)
            self.assertFalse(_alive(grandchild), "the grandchild survived Cancel")

    @unittest.skipUnless(sys.platform.startswith("linux"), "a child dies with its parent on Linux only (PR_SET_PDEATHSIG)")
    def test_worker_dies_when_its_starter_is_killed(self):
        """SIGKILL of the process that started the job (Slicer) ends the real worker within seconds.

        The worker is held busy on a FIFO given as its T1 image (it blocks reading it, as
        on a long inference), directly and through a launcher that does not exec, as
        ``PythonSlicer`` (CTK's launcher) does.
        """
        launcher = self.root / "PythonSlicer"
        launcher.write_text(f"#!/bin/sh\n'{sys.executable}' \"$@\"\nexit $?\n")
        launcher.chmod(0o755)
        for name, python in (("direct", sys.executable), ("launcher", str(launcher))):
            with self.subTest(name):
                fifo = self.root / f"fifo_{name}_T1.nrrd"
                os.mkfifo(fifo)
                images = {**{s: str(p) for s, p in self.images.items()}, "T1": str(fifo)}
                starter_code = (
                    "import time\n"
                    "from SpineMetsSegmentLib.unet.job import UNetJob\n"
                    f"UNetJob({images!r}, {str(demo_model_path())!r}, {str(self.root / name)!r}, force_cpu=True,"
                    f" python={python!r}).start()\n"
                    "time.sleep(300)\n"
                )
                starter = subprocess.Popen([sys.executable, "-c", starter_code], env={**os.environ, **child_environment()})
                worker, fd = None, None
                try:
                    deadline = time.monotonic() + 180
                    while fd is None:  # the worker opened the FIFO: it is busy (and armed long before)
                        self.assertLess(time.monotonic(), deadline, "the worker never read its T1 image")
                        self.assertIsNone(starter.poll(), "the starting process ended early")
                        try:
                            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
                        except OSError:
                            time.sleep(0.2)
                    worker = _worker_pid(str(fifo))
                    self.assertTrue(_alive(worker))
                    starter.kill()
                    starter.wait()
                    deadline = time.monotonic() + 5
                    while _alive(worker) and time.monotonic() < deadline:
                        time.sleep(0.1)
                    self.assertFalse(_alive(worker), f"the worker outlived its killed starter ({name})")
                finally:
                    if starter.poll() is None:
                        starter.kill()
                        starter.wait()
                    if worker is not None and _alive(worker):
                        os.kill(worker, 9)
                    if fd is not None:
                        os.close(fd)

    def test_child_output_is_utf8_under_a_c_locale(self):
        """A LANG=C cluster, a Python without UTF-8 mode, a parent whose locale a library reset to "C"."""
        import locale

        text = "L\u00e4sion 3 mm\u00b3 \u2014 done"
        saved = locale.setlocale(locale.LC_ALL, None)
        locale.setlocale(locale.LC_ALL, "C")  # what GDCM's DICOM writer did to a process
        try:
            self.assertEqual(locale.getpreferredencoding(False), "ANSI_X3.4-1968")
            for utf8_mode in ("1", "0"):
                with self.subTest(PYTHONUTF8=utf8_mode):
                    env = {**child_environment(), "LC_ALL": "C", "LANG": "C", "PYTHONUTF8": utf8_mode}
                    proc = launch([sys.executable, "-c", f"print({ascii(text)})"], env)
                    self.assertEqual(proc.stdout.readline(), text + "\n")
                    self.assertEqual(proc.wait(timeout=60), 0)
                    proc.stdout.close()
        finally:
            locale.setlocale(locale.LC_ALL, saved)

    def test_terminate_returns_nonzero(self):
        proc = launch([sys.executable, "-c", "import time; time.sleep(60)"], {})
        self.assertNotEqual(terminate(proc), 0)

    def test_image_arguments(self):
        self.assertEqual(parse_image_args(["T2=/data/a=b.nii.gz"]), {"T2": Path("/data/a=b.nii.gz")})
        with self.assertRaisesRegex(Exception, "expected SEQUENCE=PATH"):
            parse_image_args(["stir.nrrd"])


if __name__ == "__main__":
    unittest.main()
